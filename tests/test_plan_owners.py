"""Multi-owner plans: ``OwnersPlan``, ``validate_owners_plan`` and the owners plan document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import (
    OwnersPlan,
    Plan,
    Stage,
    load_plan,
    load_single_plan,
    owners_plan_from_dict,
    owners_plan_to_dict,
    plan_to_dict,
    validate_owners_plan,
)
from pipesl.problem import Problem
from problem.test_owners import problem

# Owner a cuts after layer 1, owner b after layer 1; both then use s1 for 2-4 (shared rule).
PA = Plan((Stage("a", 1, 1), Stage("s1", 2, 4)), (("a", "r", "s1"),), 4)
PB = Plan((Stage("b", 1, 1), Stage("s1", 2, 4)), (("b", "r", "s1"),), 4, ("s1", "r", "b"))
GOOD = OwnersPlan((PA, PB))


def test_good_owners_plan_is_valid_and_returned() -> None:
    p = problem()
    assert validate_owners_plan(p, GOOD) is GOOD
    assert GOOD.num_owners == len(GOOD) == 2
    assert GOOD[1] is PB and list(GOOD) == [PA, PB]


def expect(p: Problem, plan: OwnersPlan, text: str) -> None:
    with pytest.raises(PlanError) as info:
        validate_owners_plan(p, plan)
    assert text in str(info.value), str(info.value)


def test_one_plan_per_owner() -> None:
    expect(problem(), OwnersPlan((PA,)), "plan.owners: has 1 plans; the problem has 2")


def test_each_owner_plan_is_checked_against_its_own_problem() -> None:
    wrong_source = Plan((Stage("s2", 1, 1), Stage("s1", 2, 4)), (("s2", "s1"),), 4,
                        ("s1", "r", "b"))
    expect(problem(), OwnersPlan((PA, wrong_source)),
           "plan.owners[1].stages[0].node: 's2' is not the source 'b'")
    too_big = Plan(PB.stages, PB.routes, 9, PB.label_route)  # owner b's batch is 8
    expect(problem(), OwnersPlan((PA, too_big)), "plan.owners[1].micro_batch_size")
    no_labels = Plan(PB.stages, PB.routes, 4)
    expect(problem(), OwnersPlan((PA, no_labels)), "plan.owners[1].label_route: is missing")


def test_no_stage_on_another_owners_node() -> None:
    on_b = Plan((Stage("a", 1, 1), Stage("b", 2, 4)), (("a", "r", "b"),), 4)
    expect(problem(replicas="per-owner"), OwnersPlan((on_b, PB)),
           "plan.owners[0].stages[1].node: 'b' is the node of data owner 1 (clinic-b)")


def test_shared_replicas_need_the_same_cut_and_server_stages() -> None:
    other_cut = Plan((Stage("b", 1, 2), Stage("s1", 3, 4)), (("b", "r", "s1"),), 4,
                     ("s1", "r", "b"))
    expect(problem(), OwnersPlan((PA, other_cut)),
           "plan.owners[1].stages[0].last_layer: is 2; with training.replicas: shared")
    other_server = Plan((Stage("b", 1, 1), Stage("s2", 2, 4)), (("b", "r", "s2"),), 4,
                        ("s2", "r", "b"))
    expect(problem(), OwnersPlan((PA, other_server)), "plan.owners[1].stages: differ")
    # The same plans are fine when every owner has its own replica.
    assert validate_owners_plan(problem(replicas="per-owner"), OwnersPlan((PA, other_cut)))
    assert validate_owners_plan(problem(replicas="per-owner"), OwnersPlan((PA, other_server)))


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    return path


def test_owners_plan_document_round_trip(tmp_path: Path) -> None:
    p = problem()
    doc = owners_plan_to_dict(p, GOOD)
    assert doc["mode"] == "parallel" and doc["replicas"] == "shared"
    assert [e["owner"] for e in doc["owners"]] == ["a", "clinic-b"]
    assert owners_plan_from_dict(json.loads(json.dumps(doc)), p) == GOOD
    assert owners_plan_from_dict(doc) == GOOD
    loaded = load_plan(write(tmp_path, doc | {"makespan_s": 1.0}), p)
    assert isinstance(loaded, OwnersPlan) and loaded == GOOD


def test_owners_plan_document_errors(tmp_path: Path) -> None:
    p = problem()
    doc = owners_plan_to_dict(p, GOOD)
    cases = [
        (doc | {"mode": "sequential"}, "plan.mode: 'sequential' does not match "
                                       "the problem's training.owners 'parallel'"),
        (doc | {"owners": doc["owners"][:1]}, "plan.owners: has 1 plans; the problem has 2"),
        (doc | {"owners": []}, "plan.owners: [] must be a non-empty list"),
        (doc | {"owner": 3}, "plan.owner: is not a known field of a plan"),
        (doc | {"owners": [doc["owners"][0], {**doc["owners"][1], "batch_size": 16}]},
         "plan.owners[1].batch_size: 16 does not match the problem's training.batch_size 8"),
        (plan_to_dict(PA), "plan: is a single-owner plan; the problem has 2 data owners"),
    ]
    for bad, text in cases:
        with pytest.raises(ProblemError) as info:
            load_plan(write(tmp_path, bad), p)
        assert text in str(info.value), str(info.value)
    with pytest.raises(ProblemError, match="is a plan for 2 data owners; pipesl evaluate"):
        load_single_plan(write(tmp_path, doc), None, "pipesl evaluate")


def test_one_owner_problem_reads_an_owners_document_as_its_single_plan(tmp_path: Path) -> None:
    p = problem(sources=[{"node": "a", "batch_size": 16}])
    assert not p.is_multi_owner
    doc = owners_plan_to_dict(p, OwnersPlan((PA,)))
    assert load_plan(write(tmp_path, doc), p) == PA
    assert load_plan(write(tmp_path, plan_to_dict(PA)), p) == PA
