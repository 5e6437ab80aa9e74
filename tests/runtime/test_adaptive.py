"""Adaptive training end to end (``train_adaptive``, ``pipesl train --adapt``), in emulation.

Scenario iot-dual (cnn-digits, B = 64): the optimal plan runs mcu[1] -> (mcu, mesh1, pi1,
pi2) -> pi2[2-5] with the HaLow link mcu-mesh1 as its bottleneck. Two scripted changes, never
told to the planner:

* the bottleneck link fades to a fifth of its bandwidth at iteration 3: the run must notice it
  from the measured transfers, re-plan on the measured bandwidth, stop at an iteration boundary
  and go on under the new optimum, losing nothing;
* pi2 leaves at iteration 4: its worker dies, the run re-plans without it and resumes from the
  checkpoint after iteration 4 (one every iteration), losing only the iteration in flight.

Either way the trained parameters equal a single-process reference run's (float64): the
switch moved the parameters and the optimiser state exactly.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from pipesl.adapt.events import parse_network_events
from pipesl.cost import evaluate
from pipesl.problem import load_problem
from pipesl.runtime import (
    AdaptConfig,
    AdaptiveResult,
    build_config,
    train_adaptive,
    train_reference,
)
from pipesl.solvers import solve

STEPS = 9
CONFIG = build_config(steps=STEPS, dtype="float64", data="digits", lr=0.1, momentum=0.5,
                   time_scale=1.0, return_state=True)
FADE = [{"iteration": 3, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.2}]
LEAVE = [{"iteration": 4, "node_leaves": "pi2"}]


def _links(plan: object) -> set[frozenset[str]]:
    routes = plan.routes  # type: ignore[attr-defined]
    return {frozenset(pair) for route in routes for pair in pairwise(route)}


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, torch.Tensor], list[float]]:
    return train_reference(load_problem("iot-dual"), CONFIG)


@pytest.fixture(scope="module")
def faded() -> AdaptiveResult:
    # The relaunch cost is left out of the decision here: on a busy machine it could make a
    # switch over the few iterations left not pay off, which is right but not under test.
    return train_adaptive(load_problem("iot-dual"), None, CONFIG,
                          adapt=AdaptConfig(warm_spares=False, count_relaunch=False),
                          events=parse_network_events(FADE))


@pytest.fixture(scope="module")
def departed() -> AdaptiveResult:
    return train_adaptive(load_problem("iot-dual"), None, CONFIG,
                          adapt=AdaptConfig(warm_spares=False),
                          events=parse_network_events(LEAVE))


def _same_parameters(result: AdaptiveResult,
                     reference: tuple[dict[str, torch.Tensor], list[float]]) -> None:
    state, losses = reference
    assert result.state is not None and set(result.state) == set(state)
    for key, value in state.items():
        assert torch.allclose(result.state[key], value, rtol=1e-10, atol=1e-12), key
    assert result.losses == pytest.approx(losses, rel=1e-10)


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_a_faded_bottleneck_is_measured_and_the_job_moves_to_the_new_optimum(
        faded: AdaptiveResult) -> None:
    problem = load_problem("iot-dual")
    first = solve(problem, objective="analytic").plan
    assert frozenset(("mcu", "mesh1")) in _links(first)  # the link that fades is used
    truth = parse_network_events(FADE).problem_at(problem, 3)
    optimum = solve(truth, objective="analytic")
    assert [s.ended_by for s in faded.segments] == ["switch", "done"]
    switch = [r for r in faded.replans if r.switch]
    assert len(switch) == 1 and switch[0].trigger == "drift"
    # Window of 3 iterations with the first skipped: iterations 2-4 hold two faded ones.
    assert switch[0].iteration == 4 and "mcu>mesh1" in switch[0].detail
    # Re-planned on the measured bandwidth: the true optimum of the changed network.
    assert switch[0].new_objective_s == pytest.approx(optimum.objective_s, rel=1e-6)
    measured = faded.problem.network.link_between("mcu", "mesh1")
    nominal = problem.network.link_between("mcu", "mesh1")
    assert measured is not None and nominal is not None
    assert measured.bandwidth == pytest.approx(0.2 * nominal.bandwidth, rel=0.02)
    new = faded.segments[1]
    assert new.start_iteration == 5 and frozenset(("mcu", "mesh1")) not in _links(new.plan)
    assert evaluate(truth, new.plan).objective_s == pytest.approx(optimum.objective_s,
                                                                  rel=1e-9)
    # Every iteration ran once (nothing lost), the new plan's at its planned time.
    assert [r.iteration for _, r, _ in faded.reports] == list(range(STEPS))
    # Load-robust timing: emulation pads every pass and paces every link, so an iteration never
    # ends before its plan says (a loaded machine only makes it later); and the new plan's
    # median beats the static plan on the faded network. How close measured comes to the plan
    # on an idle machine is a figure for benchmarks/runtime.py, not a test tolerance.
    after = [it for it in faded.iterations if it.iteration >= 5]
    scale = CONFIG.emulation.time_scale
    for it in after:
        assert it.measured_s >= 0.97 * it.simulated_s
    faded_static = evaluate(truth, first).objective_s
    print(f"fade: static plan {faded_static * 1e3:.1f} ms on the faded network, new optimum "
          f"{optimum.objective_s * 1e3:.1f} ms, measured after the switch "
          f"{[round(it.measured_s / scale * 1e3, 1) for it in after]} ms (unscaled)")
    assert statistics.median(it.measured_s / scale for it in after) < faded_static


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_a_faded_run_switches_without_changing_the_training(
        faded: AdaptiveResult, reference: tuple[dict[str, torch.Tensor], list[float]]) -> None:
    _same_parameters(faded, reference)


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_a_departed_server_is_replaced_and_training_resumes_from_the_checkpoint(
        departed: AdaptiveResult, reference: tuple[dict[str, torch.Tensor], list[float]]
        ) -> None:
    first, second = departed.segments
    assert first.ended_by == "failure" and first.failure is not None and "pi2" in first.failure
    assert first.end_iteration == 4 and first.lost_iterations == 0
    assert second.ended_by == "done" and second.start_iteration == 4
    assert "pi2" not in {s.node for s in second.plan.stages}
    assert all("pi2" not in route for route in second.plan.routes)
    truth = parse_network_events(LEAVE).problem_at(load_problem("iot-dual"), 4)
    assert evaluate(truth, second.plan).objective_s == pytest.approx(
        solve(truth, objective="analytic").objective_s, rel=1e-9)
    assert [it.iteration for it in departed.iterations] == list(range(STEPS))
    _same_parameters(departed, reference)


@pytest.mark.parametrize(("args", "field", "rule"), [
    (["--events", "EVENTS", "--no-emulate"], "--events", "needs --emulate"),
    (["--adapt", "--audit", "AUDIT"], "--audit", "is not supported with --adapt"),
    (["--events", "BAD"], "BAD[0].bandwidth_factor", "must be > 0"),
    (["--events", "UNKNOWN"], "UNKNOWN[0].link", "is not a link of the network"),
])
def test_bad_adaptation_options_end_in_one_line(tmp_path: Path, args: list[str], field: str,
                                                rule: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """In process (``pipesl.cli.main``): every check runs before any worker starts."""
    from pipesl.cli import main

    files = {"EVENTS": "- {iteration: 1, link: [mcu, mesh1], bandwidth_factor: 0.5}\n",
             "BAD": "- {iteration: 1, link: [mcu, mesh1], bandwidth_factor: -1}\n",
             "UNKNOWN": "- {iteration: 1, link: [mcu, pi2], bandwidth_factor: 0.5}\n"}
    argv = []
    for a in args:
        if a in files:
            path = tmp_path / f"{a.lower()}.yaml"
            path.write_text(files[a])
            argv.append(str(path))
            field = field.replace(a, str(path))
        elif a == "AUDIT":
            argv.append(str(tmp_path / "audit.jsonl"))
        else:
            argv.append(a)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "iot-dual", *argv])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), lines
    assert rule in lines[0]


@pytest.mark.distributed  # its fixture trains (processes)
@pytest.mark.timeout(300)
def test_the_adaptive_report_renders_segments_replans_and_iterations(
        departed: AdaptiveResult, tmp_path: Path) -> None:
    from rich.console import Console

    from pipesl.cli.adaptive import (
        adaptive_summary,
        adaptive_tables,
        replan_lines,
        write_adaptive_outputs,
    )

    console = Console(width=200, record=True)
    tables = adaptive_tables(departed)
    for table in tables:
        console.print(table)
    # Iterations are numbered from 0 in tables, as in the JSON and the --events scripts.
    iterations = [str(c) for c in tables[0].columns[0]._cells]
    assert iterations == [str(i) for i in range(STEPS)]
    text = console.export_text()
    assert "mcu:1 pi2:2-5 via mcu-mesh1-pi1-pi2, b=8" in text  # segment 1's plan
    assert "mcu:1 pi1:2-5 via mcu-mesh1-pi1, b=8" in text  # segment 2's, without pi2
    assert "failure" in text and "switch" in text
    lines = replan_lines(departed)
    assert len(lines) == 1 and "pi2" in lines[0] and "no longer valid" in lines[0]
    assert "1 failure(s) survived" in adaptive_summary(departed)
    out = tmp_path / "adaptive.json"
    written = write_adaptive_outputs(departed, out=out, gantt=tmp_path / "g.png")
    assert len(written) == 2 and (tmp_path / "g.png").stat().st_size > 10_000
    doc = json.loads(out.read_text())
    assert [s["ended_by"] for s in doc["segments"]] == ["failure", "done"]
    assert doc["events"] == LEAVE
    assert sorted(r["iteration"] for r in doc["iterations"] if r["kept"]) == list(range(STEPS))


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_cli_train_adapt_survives_a_departure(tmp_path: Path) -> None:
    events = tmp_path / "leave.yaml"
    events.write_text("- {iteration: 3, node_leaves: pi2}\n")
    run = subprocess.run([sys.executable, "-m", "pipesl", "train", "iot-dual", "--adapt",
                          "--events", str(events), "--steps", "6", "--data", "digits",
                          "--json"], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(run.stdout)
    assert [s["ended_by"] for s in doc["segments"]] == ["failure", "done"]
    assert doc["segments"][1]["start_iteration"] == 3
    assert doc["replans"][0]["trigger"] == "failure" and doc["replans"][0]["switch"]
    assert sorted(r["iteration"] for r in doc["iterations"] if r["kept"]) == list(range(6))
    assert doc["config"]["checkpoint_every"] == 1  # --adapt's default
