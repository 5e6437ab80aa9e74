"""``pipesl show`` and ``pipesl simulate`` on a problem with several data owners."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipesl.plan import OwnersPlan, Plan, Stage, dump_plan, owners_plan_to_dict, plan_to_dict
from pipesl.problem import load_problem, problem_to_dict
from pipesl.sim import simulate_owners

runner = CliRunner()

PLANS = OwnersPlan((
    Plan((Stage("cam0", 1, 1), Stage("edge0", 2, 5)), (("cam0", "ap0", "edge0"),), 8),
    Plan((Stage("cam1", 1, 2), Stage("edge1", 3, 5)), (("cam1", "ap0", "ap1", "edge1"),), 4),
    Plan((Stage("cam2", 1, 1), Stage("edge1", 2, 5)), (("cam2", "ap1", "edge1"),), 16)))


def run(*args: str, code: int = 0) -> str:
    from pipesl.cli import app

    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result.stdout if code == 0 else result.stderr


def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "owners.json"
    dump_plan(owners_plan_to_dict(load_problem("campus-owners"), PLANS), path)
    return path


def test_show_lists_the_owners() -> None:
    out = run("show", "campus-owners")
    assert "Data owners (3)" in out and "owners: parallel, replicas: per-owner" in out
    for node in ("cam0", "cam1", "cam2"):
        assert node in out
    doc = json.loads(run("show", "campus-owners", "--json"))
    assert doc == json.loads(json.dumps(problem_to_dict(load_problem("campus-owners"))))
    assert [s["node"] for s in doc["training"]["sources"]] == ["cam0", "cam1", "cam2"]


def test_simulate_reports_the_joint_iteration(tmp_path: Path) -> None:
    problem = load_problem("campus-owners")
    expected = simulate_owners(problem, PLANS)
    doc = json.loads(run("simulate", "campus-owners", "--plan", str(plan_file(tmp_path)),
                         "--json"))
    assert doc["num_owners"] == 3 and doc["mode"] == "parallel"
    assert doc["makespan_s"] == expected.makespan_s
    assert doc["lower_bound_s"] == expected.lower_bound_s
    assert expected.lower_bound_s <= expected.makespan_s * (1 + 1e-12)
    assert [o["micro_batch_size"] for o in doc["owners"]] == [8, 4, 16]
    assert set(doc["memory"]) == {"cam0", "cam1", "cam2", "edge0", "edge1"}
    text = run("simulate", "campus-owners", "--plan", str(plan_file(tmp_path)))
    assert "3 data owners" in text and "lower bound" in text and "Memory per node" in text


def test_simulate_writes_an_owner_coloured_gantt_chart(tmp_path: Path) -> None:
    chart = tmp_path / "gantt.png"
    out = run("simulate", "campus-owners", "--plan", str(plan_file(tmp_path)), "--gantt",
              str(chart))
    assert "wrote Gantt chart" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_draws_every_owner_on_the_map(tmp_path: Path) -> None:
    drawing = tmp_path / "map.png"
    out = run("simulate", "campus-owners", "--plan", str(plan_file(tmp_path)), "--map",
              str(drawing))
    assert "wrote placement map" in out
    assert drawing.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run ``pipesl ARGS`` through ``main`` (domain errors become one line); its stderr."""
    from pipesl.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(args))
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return " ".join(lines[0].split())


def test_single_owner_plan_and_commands_are_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    single = tmp_path / "single.json"
    single.write_text(json.dumps(plan_to_dict(PLANS.plans[0])))
    line = error_line(capsys, "simulate", "campus-owners", "--plan", str(single))
    assert "is a single-owner plan; the problem has 3 data owners" in line
    line = error_line(capsys, "evaluate", "campus-owners", str(plan_file(tmp_path)))
    assert "training.sources: has 3 data owners; pipesl evaluate takes a problem with one" in line
