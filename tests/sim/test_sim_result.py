"""SimResult fields, the Chrome trace export and simulate's errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import Plan, Stage
from pipesl.problem import Problem
from pipesl.schedules import OneFOneB, ScheduleTable
from pipesl.sim import simulate
from strategies import random_plan, random_problem


def instance(seed: int = 3) -> tuple[Problem, Plan]:
    problem = random_problem(random.Random(seed), n_nodes=6, n_layers=5, memory="unbounded",
                             batch_size=16, labels="none")
    return problem, random_plan(random.Random(seed), problem, num_stages=3, micro_batch_size=4)


def test_to_dict_is_json_and_consistent() -> None:
    problem, plan = instance()
    result = simulate(problem, plan)
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    for key in ("makespan_s", "analytic_s", "gap_s", "schedule", "utilisation",
                "bubble_fraction", "busy_s", "memory"):
        assert key in doc
    assert doc["schedule"] == problem.training.schedule
    assert doc["gap_s"] == pytest.approx(doc["makespan_s"] - doc["analytic_s"])
    assert doc["num_tasks"] == len(result.trace)
    assert doc["num_micro_batches"] == 4
    assert set(doc["memory"]) == set(plan.nodes)
    busy = sum(result.busy_s[f"node:{n}"] for n in plan.nodes)
    assert result.bubble_fraction == pytest.approx(
        1 - busy / (plan.num_stages * result.makespan_s))


def test_chrome_trace_has_one_event_per_task(tmp_path: Path) -> None:
    problem, plan = instance()
    result = simulate(problem, plan, "1f1b")
    path = tmp_path / "trace.json"
    result.trace.dump_chrome(path)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    tasks = [e for e in events if e["ph"] == "X"]
    assert len(tasks) == len(result.trace)
    assert {e["name"][0] for e in tasks} == {"F", "B"}
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(names.values()) == sorted(result.trace.resources)
    last = max(e["ts"] + e["dur"] for e in tasks)
    assert last == pytest.approx(result.makespan_s * 1e6)
    assert all(e["dur"] >= 0 for e in tasks)


def test_records_are_sorted_and_typed() -> None:
    problem, plan = instance()
    records = simulate(problem, plan).trace.records()
    assert [r.start_s for r in records] == sorted(r.start_s for r in records)
    first = records[0]
    assert first.resource == f"node:{problem.training.source}"
    assert (first.kind, first.micro_batch, first.step_index, first.stage) == ("F", 0, 0, 0)
    assert first.duration_s == first.end_s - first.start_s > 0


def test_schedule_default_name_object_and_table() -> None:
    problem, plan = instance()
    by_name = simulate(problem, plan, "1f1b")
    by_object = simulate(problem, plan, OneFOneB())
    table = ScheduleTable.from_text(OneFOneB().table(3, 4).to_text())
    by_table = simulate(problem, plan, table)
    assert by_name.makespan_s == by_object.makespan_s == by_table.makespan_s
    assert by_table.schedule == "custom"
    assert all(m.spec_samples is None for m in by_table.memory.values())


def test_errors() -> None:
    problem, plan = instance()
    with pytest.raises(ProblemError, match="valid names"):
        simulate(problem, plan, "zero-bubble")
    with pytest.raises(ProblemError, match="the plan needs 3 x 4"):
        simulate(problem, plan, OneFOneB().table(2, 4))
    with pytest.raises(ProblemError, match="last_micro_batch"):
        simulate(problem, plan, last_micro_batch="half")  # type: ignore[arg-type]
    bad = Plan((Stage("nowhere", 1, problem.model.num_layers),), (), 4)
    with pytest.raises(PlanError):
        simulate(problem, bad)
