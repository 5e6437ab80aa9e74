"""``pipesl plan`` reports the schedule makespan it optimised, the analytic T beside it, and
a speed-up on the same objective; ``--objective analytic`` keeps the paper's objective."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args: str) -> str:
    from pipesl.cli import app

    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_relay_line_objective_is_what_simulate_says(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.json"
    doc = json.loads(invoke("plan", "relay-line", "--json", "--out", str(plan_path)))
    assert doc["objective"] == "makespan" and doc["solver"]["optimal"] is True
    sim = json.loads(invoke("simulate", "relay-line", "--plan", str(plan_path), "--json"))
    assert math.isclose(doc["objective_s"], sim["makespan_s"], rel_tol=1e-9)
    assert math.isclose(doc["analytic_s"], sim["analytic_s"], rel_tol=1e-12)
    for b in (4, 8, 16, 32, 43, 64, 128):  # whatever b the user tries is no faster
        fixed = json.loads(invoke("plan", "relay-line", "--json", "-b", str(b)))
        assert fixed["objective_s"] >= doc["objective_s"] * (1 - 1e-9), b


def test_report_names_what_runs() -> None:
    text = " ".join(invoke("plan", "relay-line").split())
    assert "simulated makespan" in text and "analytic" in text
    assert "optimal (proven)" not in text
    assert "on the same objective" in text


def test_analytic_objective_keeps_the_paper_objective() -> None:
    doc = json.loads(invoke("plan", "relay-line", "--json", "--objective", "analytic"))
    assert doc["objective"] == "analytic"
    assert doc["objective_s"] == doc["analytic_s"]


def test_bad_objective_is_one_line(capsys) -> None:
    from pipesl.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["plan", "relay-line", "--objective", "fastest"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "--objective" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
