"""``pipesl simulate``: JSON fields, M = 1 equals the analytic T, files written, clean errors."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipesl.cost import evaluate, plan_document
from pipesl.plan import dump_plan
from pipesl.problem import dump_problem
from strategies import random_plan, random_problem

runner = CliRunner()


def files(tmp_path: Path, seed: int, b: int | None = None) -> tuple[Path, Path]:
    problem = random_problem(random.Random(seed), n_nodes=6, n_layers=5, memory="unbounded",
                             batch_size=12)
    plan = random_plan(random.Random(seed), problem, micro_batch_size=b)
    prob_path, plan_path = tmp_path / "problem.json", tmp_path / "plan.json"
    dump_problem(problem, prob_path)
    dump_plan(plan_document(evaluate(problem, plan)), plan_path)
    return prob_path, plan_path


def invoke(*args: str) -> str:
    from pipesl.cli import app

    result = runner.invoke(app, ["simulate", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_json_one_micro_batch_is_the_analytic_t(tmp_path: Path, seed: int,
                                                 schedule: str) -> None:
    prob, plan = files(tmp_path, seed, b=12)  # b = B: M = 1
    doc = json.loads(invoke(str(prob), "--plan", str(plan), "--schedule", schedule, "--json"))
    assert doc["schedule"] == schedule and doc["num_micro_batches"] == 1
    assert math.isclose(doc["makespan_s"], doc["analytic_s"], rel_tol=1e-12)
    assert abs(doc["gap_s"]) <= 1e-12 * doc["analytic_s"]


@pytest.mark.parametrize("seed", range(8))
def test_json_bounds(tmp_path: Path, seed: int) -> None:
    prob, plan = files(tmp_path, seed, b=5)  # M = 3, last micro-batch padded to b
    doc = json.loads(invoke(str(prob), "--plan", str(plan), "--json"))
    m = doc["num_micro_batches"]
    assert m == 3
    for busy in doc["busy_s"].values():  # busy = M * load on every resource
        assert doc["makespan_s"] >= busy * (1 - 1e-12)
    assert doc["makespan_s"] <= m * doc["first_micro_batch_s"] * (1 + 1e-12)
    assert set(doc["utilisation"]) == set(doc["busy_s"])
    assert 0 <= doc["bubble_fraction"] < 1


def test_files_and_human_output(tmp_path: Path) -> None:
    prob, plan = files(tmp_path, 3, b=4)
    gantt, pmap, trace = tmp_path / "g.png", tmp_path / "m.png", tmp_path / "t.json"
    out = invoke(str(prob), "--plan", str(plan), "--schedule", "1f1b", "--gantt", str(gantt),
                 "--map", str(pmap), "--trace", str(trace))
    assert "makespan (simulated)" in out and "T (analytic, SPEC 3)" in out
    assert "wrote Gantt chart" in out and "wrote placement map" in out
    for path in (gantt, pmap):
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 20_000
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) > 0


def test_remainder_option(tmp_path: Path) -> None:
    prob, plan = files(tmp_path, 4, b=5)
    doc = json.loads(invoke(str(prob), "--plan", str(plan), "--json",
                            "--last-micro-batch", "remainder"))
    assert doc["last_micro_batch_size"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--schedule", "zero-bubble"], "valid names: gpipe, 1f1b"),
    (["--last-micro-batch", "half"], "must be 'full' or 'remainder'"),
    (["--gantt", "/no/such/folder/g.png"], "does not exist"),
])
def test_errors_exit_1_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    prob, plan = files(tmp_path, 1)
    run = subprocess.run([sys.executable, "-m", "pipesl", "simulate", str(prob), "--plan",
                          str(plan), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.startswith("error:") and message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
