"""`pipesl train` without --plan trains exactly the plan `pipesl plan` prints (issue 13): the
least simulated makespan of the schedule that runs, not the analytic T's plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipesl.cli import main


class _Stop(Exception):
    pass


def _train_plan(monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """The plan `pipesl train ARGS` would hand the workers (stopped before any process)."""
    import pipesl.cli.train as train_cli

    seen: list[Any] = []

    class Runtime:  # stands in for pipesl.runtime: records the plan, starts nothing
        RunConfig = dict

        @staticmethod
        def build_config(config: Any, **options: Any) -> Any:
            return options

        @staticmethod
        def make_job(problem: Any, plan: Any, *rest: Any, **kwargs: Any) -> None:
            seen.append(plan)
            raise _Stop

    monkeypatch.setattr(train_cli, "_runtime", lambda: Runtime)
    with pytest.raises(_Stop):
        main(["train", *args, "--steps", "1"])
    assert len(seen) == 1
    return seen[0]


def _plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    try:
        main(["plan", *args, "--json"])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def _shape(document: dict[str, Any]) -> tuple[Any, ...]:
    return (document["micro_batch_size"], document["stages"], document["routes"],
            document["label_route"])


def test_train_without_plan_trains_the_plan_pipesl_plan_prints(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pipesl.plan import plan_to_dict

    trained = plan_to_dict(_train_plan(monkeypatch, "relay-pair"))
    printed = _plan_json(capsys, "relay-pair")
    analytic = _plan_json(capsys, "relay-pair", "--objective", "analytic")
    assert printed["objective"] == "makespan"
    assert _shape(trained) == _shape(printed)
    # the scenario tells the objectives apart, so the check above could fail
    assert _shape(printed) != _shape(analytic)


def test_train_plans_for_the_schedule_it_runs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    from dataclasses import replace

    from pipesl import load_problem
    from pipesl.plan import plan_to_dict
    from pipesl.problem import dump_problem

    problem = load_problem("relay-line")
    assert problem.training.schedule == "1f1b"
    gpipe = tmp_path / "relay-line-gpipe.yaml"
    dump_problem(replace(problem, training=replace(problem.training, schedule="gpipe")), gpipe)
    trained = plan_to_dict(_train_plan(monkeypatch, "relay-line", "--schedule", "gpipe"))
    assert _shape(trained) == _shape(_plan_json(capsys, str(gpipe)))
    assert _shape(trained) != _shape(_plan_json(capsys, "relay-line"))  # 1f1b's plan differs


def test_worker_without_plan_refuses_a_search_stopped_by_its_time_limit(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import pipesl.cli.train as train_cli
    import pipesl.solvers as solvers

    real = solvers.solve

    def stopped(*args: Any, **kwargs: Any) -> Any:  # as if the time limit had been reached
        from dataclasses import replace

        return replace(real(*args, **kwargs), optimal=False)

    class Runtime:  # stands in for pipesl.runtime: no rank starts
        RunConfig = dict

        @staticmethod
        def build_config(config: Any, **options: Any) -> Any:
            return options

        @staticmethod
        def run_torchrun_worker(*args: Any, **kwargs: Any) -> None:
            raise AssertionError("the worker started without a plan every rank agrees on")

    monkeypatch.setattr(train_cli, "_runtime", lambda: Runtime)
    monkeypatch.setattr(solvers, "solve", stopped)
    with pytest.raises(SystemExit) as exit_info:
        main(["worker", "iot-digits"])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --plan"), lines
    assert "time" in lines[0] and "limit" in lines[0]
