"""``pipesl plan`` on a problem with several data owners: the per-owner table, the joint
makespan with its bound and gap, the baselines, ``--json`` (loads back), ``--map``, and one
clear line for a method that does not apply."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

runner = CliRunner()

DOC: dict[str, Any] = {
    "name": "two-owners",
    "network": {
        "nodes": [{"id": "a", "flops": 2e10}, {"id": "b", "flops": 3e10},
                  {"id": "r", "compute": False},
                  {"id": "s1", "flops": 4e11}, {"id": "s2", "flops": 2e11}],
        "links": [{"source": "a", "target": "r", "bandwidth": 5e7, "latency": 1e-3},
                  {"source": "b", "target": "r", "bandwidth": 8e7, "latency": 1e-3},
                  {"source": "r", "target": "s1", "bandwidth": 1e8},
                  {"source": "r", "target": "s2", "bandwidth": 2e8, "duplex": "full"}],
    },
    "model": {"name": "m", "input_bytes": 4e3,
              "layers": [{"name": f"l{i}", "fwd_flops": 8e7, "out_bytes": 2e4,
                          "param_bytes": 1e4} for i in range(3)]},
    "training": {"sources": [{"node": "a", "batch_size": 4},
                             {"node": "b", "batch_size": 3, "name": "clinic-b"}]},
}


@pytest.fixture
def problem_file(tmp_path: Path) -> Path:
    path = tmp_path / "owners.json"
    path.write_text(json.dumps(DOC))
    return path


def invoke(*args: str) -> str:
    from pipesl.cli import app

    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_report_has_owners_bound_and_baselines(problem_file: Path) -> None:
    text = " ".join(invoke("plan", str(problem_file)).split())
    for word in ("clinic-b", "own makespan", "joint iteration", "lower bound", "gap",
                 "certified optimal", "independent (each owner planned alone",
                 "sequential SL (owners take turns"):
        assert word in text, word


def test_json_is_the_owners_plan_with_costs(problem_file: Path, tmp_path: Path) -> None:
    from pipesl.plan import OwnersPlan, load_plan
    from pipesl.problem import load_problem
    from pipesl.sim.owners import simulate_owners

    out = tmp_path / "plan.json"
    doc = json.loads(invoke("plan", str(problem_file), "--json", "--out", str(out)))
    problem = load_problem(problem_file)
    plan = load_plan(out, problem)
    assert isinstance(plan, OwnersPlan) and plan.num_owners == 2
    sim = simulate_owners(problem, plan)
    assert math.isclose(doc["objective_s"], sim.makespan_s, rel_tol=1e-12)
    assert doc["solver"]["optimal"] is True and doc["gap"] == 0
    assert set(doc["baselines"]) == {"independent", "sequential"}
    for base in doc["baselines"].values():
        assert base["makespan_s"] >= doc["objective_s"] * (1 - 1e-9)
    assert all("resource_loads" in e for e in doc["owners"])


@pytest.mark.parametrize("method", ["heuristic", "independent", "sequential"])
def test_other_methods(problem_file: Path, method: str) -> None:
    doc = json.loads(invoke("plan", str(problem_file), "--json", "--method", method))
    assert doc["method"] == method
    assert doc["lower_bound_s"] <= doc["objective_s"]


def test_map_draws_every_owner(problem_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "map.png"
    invoke("plan", str(problem_file), "--map", str(path), "--no-compare")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(("problem", "method", "words"), [
    (None, "milp", "plans a single data owner"),
    ("relay-line", "joint", "plans several data owners"),
])
def test_wrong_method_is_one_line(problem_file: Path, capsys: pytest.CaptureFixture[str],
                                  problem: str | None, method: str, words: str) -> None:
    from pipesl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["plan", problem or str(problem_file), "--method", method])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "--method" in err and words in " ".join(err.split())
    assert "Traceback" not in err


def test_owner_methods_help_matches_the_planner() -> None:
    from pipesl.cli.plan import OWNER_METHODS_HELP
    from pipesl.solvers.owners import OWNER_METHODS

    assert list(OWNER_METHODS_HELP) == list(OWNER_METHODS)
