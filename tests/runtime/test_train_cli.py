"""`pipesl train` end to end: the JSON it prints, measured against simulated time on an emulated
network with relays and shared links, the measured speed-up of pipelining, and clean errors.

The timed problem is iot-digits with the labels kept on the microcontroller (U-shaped): the
planner's plan sends the CNN's activations mcu -> mesh1 -> pi1 -> sw -> pi2 and the logits
back the same way, so both half-duplex radio links carry four transfers per micro-batch
(activation, logits, and both gradients) — two routes sharing each link — and relays mesh1,
pi1 (a compute node that relays) and sw. B = 64 and b = 13 leave a last micro-batch of 12.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipesl.cli import main
from pipesl.plan import dump_plan
from pipesl.problem import dump_problem, load_problem
from pipesl.sim import simulate
from pipesl.solvers import solve

STEPS = 5
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*args: str, timeout: float = 280) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipesl", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in this process (no subprocess start-up): exit 1, one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def ushaped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("iot-u")
    problem = load_problem("iot-digits").with_training(labels_at="mcu")
    dump_problem(problem, folder / "iot-u.yaml")
    result = solve(problem, objective="analytic")
    dump_plan(result.document(), folder / "plan.json")
    return folder / "iot-u.yaml", folder / "plan.json"


@pytest.fixture(scope="module")
def trained(ushaped: tuple[Path, Path]) -> dict[str, Any]:
    problem, plan = ushaped
    gantt = problem.parent / "measured.png"
    proc = run("train", str(problem), "--plan", str(plan), "--steps", str(STEPS), "--data",
               "digits", "--json", "--gantt", str(gantt))
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    doc["_gantt"] = gantt
    return doc


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_train_json_reports_measured_simulated_analytic_per_iteration(
        trained: dict[str, Any], ushaped: tuple[Path, Path]) -> None:
    assert len(trained["iterations"]) == STEPS
    for i, it in enumerate(trained["iterations"]):
        assert it["iteration"] == i
        for key in ("measured_s", "simulated_s", "analytic_s", "loss"):
            assert isinstance(it[key], float) and it[key] > 0, key
    problem = load_problem(str(ushaped[0]))
    plan = solve(problem, objective="analytic").plan
    sim = simulate(problem, plan, last_micro_batch="remainder")
    assert trained["simulated_s"] == pytest.approx(sim.makespan_s)
    assert trained["analytic_s"] == pytest.approx(sim.analytic_s)
    assert trained["emulate"] is True and trained["schedule"] == "gpipe"
    assert {n["node"] for n in trained["nodes"]} == {"mcu", "mesh1", "pi1", "sw", "pi2"}
    assert trained["plan"]["label_route"] == ["pi2", "sw", "pi1", "mesh1", "mcu"]
    assert {h["resource"] for h in trained["hops"]} >= {"link:mcu-mesh1", "link:mesh1-pi1"}
    assert all(s["passes"] > 0 for s in trained["stages"])
    assert trained["_gantt"].stat().st_size > 10_000


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_measured_iteration_time_is_within_10_percent_of_the_simulator(
        trained: dict[str, Any]) -> None:
    rows = trained["iterations"]
    errors = [it["measured_s"] / it["simulated_s"] - 1 for it in rows]
    print("measured/simulated - 1 per iteration:", [f"{e:+.2%}" for e in errors])
    assert abs(statistics.median(errors)) < 0.10
    # The emulation padded every pass: the real CNN compute is far below the planned times.
    for stage in trained["stages"]:
        assert stage["real_mean_s"] < stage["planned_s"]


@pytest.mark.distributed
@pytest.mark.timeout(300)
def test_measured_speedup_of_pipelining_matches_the_prediction(
        trained: dict[str, Any], ushaped: tuple[Path, Path]) -> None:
    from pipesl.runtime import build_config, train

    problem = load_problem(str(ushaped[0]))
    plan = solve(problem, objective="analytic").plan
    flat = train(problem, plan.with_micro_batch_size(problem.training.batch_size),
                 build_config(steps=3, data="digits"))
    pipelined = statistics.median(it["measured_s"] for it in trained["iterations"][1:])
    measured = flat.median_measured_s() / pipelined
    predicted = flat.simulated_s / trained["simulated_s"]
    print(f"speed-up of b = {plan.micro_batch_size} over b = B: measured {measured:.3f}, "
          f"predicted (simulator) {predicted:.3f}")
    assert predicted > 1.5
    assert measured == pytest.approx(predicted, rel=0.10)


@pytest.mark.timeout(120)
def test_bad_plan_exits_1_with_one_line(tmp_path: Path, ushaped: tuple[Path, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    plan = json.loads(ushaped[1].read_text())
    plan["routes"] = [["mcu", "pi1", "pi2"]]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(plan))
    line = one_line_error(capsys, "train", str(ushaped[0]), "--plan", str(bad))
    assert "plan.routes" in line


@pytest.mark.timeout(120)
def test_unknown_model_exits_1_with_one_line(ushaped: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, "train", str(ushaped[0]), "--plan", str(ushaped[1]),
                          "--model", "resnet9000")
    assert "resnet9000" in line and "zoo" in line
    line = one_line_error(capsys, "train", str(EXAMPLES / "tiny-line.yaml"), "--steps", "1")
    assert "--model" in line
