"""The adaptation experiment end to end: ``pipesl experiment adaptation --quick`` (emulation).

Scenario iot-dual (cnn-digits, B = 64). The quick config plays each case for 14 iterations:
the bottleneck link of the initial optimal plan (mcu-mesh1) keeps a fifth of its bandwidth
from iteration 4; the plan's compute node besides the source (pi2) leaves at iteration 5.
Every claim is checked on the rows the CLI wrote (CSV), recomputed here rather than read
from the experiment's own summary where that is possible.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipesl.cli import app, main
from pipesl.experiments.adaptation import bottleneck_link, departing_node, iterations_to_target
from pipesl.experiments.suite import default_config
from pipesl.problem import load_problem
from pipesl.solvers import solve

QUICK = default_config("adaptation", quick=True)
COLUMNS = {"record", "case", "arm", "iteration", "segment", "kept", "after_event", "measured_s",
           "throughput_sps", "model_s", "simulated_s", "loss", "started_s", "arrived_s", "plan",
           "node", "detail", "trigger", "switch", "old_objective_s", "new_objective_s",
           "relaunch_s"}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("adaptation")
    res = CliRunner().invoke(app, ["experiment", "adaptation", "--quick", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "adaptation"


@pytest.fixture(scope="module")
def rows(outputs: Path) -> list[dict[str, str]]:
    return _read(outputs / "adaptation.csv")


@pytest.fixture(scope="module")
def summary(outputs: Path) -> dict[str, dict[str, str]]:
    return {r["case"]: r for r in _read(outputs / "adaptation-summary.csv")}


def _its(rows: list[dict[str, str]], case: str, arm: str) -> list[dict[str, Any]]:
    """Kept iteration rows of one arm, by iteration, numbers parsed."""
    out = [{**r, "iteration": int(r["iteration"]), "segment": int(r["segment"]),
            "measured_s": float(r["measured_s"])}
           for r in rows if r["record"] == "iteration" and r["case"] == case
           and r["arm"] == arm and r["kept"] == "True"]
    return sorted(out, key=lambda r: r["iteration"])


def test_the_cases_follow_the_initial_plan() -> None:
    problem = load_problem(QUICK.scenario)
    plan = solve(problem, objective="analytic").plan
    assert bottleneck_link(problem, plan) == ("mcu", "mesh1")
    assert departing_node(problem, plan) == "pi2"


def test_iterations_to_target_needs_the_throughput_to_stay() -> None:
    series = [(4, 150.0), (5, 40.0), (6, 120.0), (7, 50.0), (8, 130.0), (9, 125.0)]
    assert iterations_to_target(series, 5, 112.0) == 3
    assert iterations_to_target(series, 5, 200.0) is None
    assert iterations_to_target([(5, 150.0)], 5, 100.0) == 0


def test_without_torch_the_experiment_fails_with_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # find_spec("torch") -> None
    with pytest.raises(SystemExit) as info:
        main(["experiment", "adaptation", "--quick", "--no-plots", "--out", "/nonexistent"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs torch" in err


@pytest.mark.distributed
@pytest.mark.timeout(420)
def test_outputs_are_written(outputs: Path, rows: list[dict[str, str]]) -> None:
    names = sorted(p.name for p in outputs.iterdir())
    assert names == ["adaptation-summary.csv", "adaptation.csv", "adaptation.md",
                     "adaptation.png"]
    assert set(rows[0]) >= COLUMNS
    assert {r["record"] for r in rows} == {"iteration", "replan", "failure"}
    assert {(r["case"], r["arm"]) for r in rows} == {
        (c, a) for c in QUICK.cases for a in ("static", "adapted", "optimum")}
    md = (outputs / "adaptation.md").read_text()
    assert "exact_beaten = 0" in md and "| bandwidth-drop |" in md
    assert (outputs / "adaptation.png").stat().st_size > 20_000


@pytest.mark.distributed
@pytest.mark.timeout(420)
def test_after_a_bandwidth_drop_the_adapted_run_reaches_the_new_optimum(
        rows: list[dict[str, str]], summary: dict[str, dict[str, str]]) -> None:
    case, event = "bandwidth-drop", QUICK.drop_iteration
    switches = [r for r in rows if r["record"] == "replan" and r["case"] == case
                and r["switch"] == "True"]
    assert len(switches) >= 1
    assert all(int(r["iteration"]) >= event for r in switches)  # no switch before the drop
    adapted, optimum = _its(rows, case, "adapted"), _its(rows, case, "optimum")
    static = _its(rows, case, "static")
    steps = list(range(QUICK.steps))
    assert [r["iteration"] for r in adapted] == steps
    assert [r["iteration"] for r in optimum] == steps == [r["iteration"] for r in static]
    new = min(r["iteration"] for r in adapted if r["segment"] > 0)
    assert event < new <= event + 3
    post = statistics.median(r["measured_s"] for r in adapted if r["iteration"] >= new)
    best = statistics.median(r["measured_s"] for r in optimum if r["iteration"] >= event)
    stale = statistics.median(r["measured_s"] for r in static if r["iteration"] >= event)
    assert post == pytest.approx(best, rel=0.10)
    # ... and at the simulator's makespan of its plan on the faded network (emulation).
    simulated = statistics.median(float(r["simulated_s"]) for r in adapted
                                  if r["iteration"] >= new)
    assert post == pytest.approx(simulated, rel=0.05)
    assert stale > 2 * best  # the drop really hurt the static plan
    # Iterations after the drop until the adapted throughput reaches 90 % of the optimum's
    # median and stays there (B / t >= 0.9 B / t_best  <=>  t <= t_best / 0.9).
    ok = [r["measured_s"] <= best / QUICK.target for r in adapted if r["iteration"] >= event]
    first = next(i for i in range(len(ok)) if all(ok[i:]))
    assert first <= QUICK.within
    assert int(summary[case]["iterations_to_target"]) == first
    assert summary[case]["within"] == "True"


@pytest.mark.distributed
@pytest.mark.timeout(420)
def test_after_a_departure_the_adapted_run_resumes_without_the_node(
        rows: list[dict[str, str]], summary: dict[str, dict[str, str]]) -> None:
    case, event, node = "node-departure", QUICK.departure_iteration, "pi2"
    failure = next(r for r in rows if r["record"] == "failure" and r["case"] == case)
    assert failure["arm"] == "static" and failure["node"] == node and node in failure["detail"]
    static = _its(rows, case, "static")
    assert [r["iteration"] for r in static] == list(range(event))
    adapted = _its(rows, case, "adapted")
    assert [r["iteration"] for r in adapted] == list(range(QUICK.steps))
    assert int(summary[case]["lost_iterations"]) <= 1
    resumed = min(r["iteration"] for r in adapted if r["segment"] > 0)
    assert resumed > 0 and resumed >= event - 1  # from the checkpoint, not from scratch
    assert int(summary[case]["resumed_from"]) == resumed
    assert all(node not in r["plan"] for r in adapted if r["segment"] > 0)
    assert all(node not in r["plan"] for r in _its(rows, case, "optimum"))
    triggers = [r["trigger"] for r in rows if r["record"] == "replan" and r["case"] == case]
    assert "failure" in triggers
