"""Several data owners: parsing ``training.sources``, the owner views, and the one-owner rule."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipesl.cost import evaluate
from pipesl.exceptions import ProblemError
from pipesl.problem import DataOwner, Problem, problem_from_dict, problem_to_dict
from pipesl.sim import simulate
from pipesl.solvers import solve

# a, b: owners (devices); r: relay; s1, s2: servers.
DOC: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "a", "flops": 1e11},
            {"id": "b", "flops": 2e11},
            {"id": "r", "compute": False},
            {"id": "s1", "flops": 2e12},
            {"id": "s2", "flops": 3e12},
        ],
        "links": [
            {"source": "a", "target": "r", "bandwidth": 1e8},
            {"source": "b", "target": "r", "bandwidth": 5e7},
            {"source": "r", "target": "s1", "bandwidth": 1e8, "duplex": "full"},
            {"source": "r", "target": "s2", "bandwidth": 1e8},
            {"source": "s1", "target": "s2", "bandwidth": 1e9},
        ],
    },
    "model": {
        "name": "m",
        "input_bytes": 3e3,
        "layers": [{"name": f"l{i}", "fwd_flops": 1e8, "out_bytes": 2e3, "param_bytes": 1e4}
                   for i in (1, 2, 3, 4)],
    },
    "training": {
        "sources": [{"node": "a", "batch_size": 16},
                    {"node": "b", "batch_size": 8, "micro_batch_size": 4, "labels_at": "b",
                     "name": "clinic-b"}],
        "owners": "parallel",
        "replicas": "shared",
    },
}


def doc_with(**training: Any) -> dict[str, Any]:
    """DOC with training fields replaced (a None value removes the field)."""
    doc = copy.deepcopy(DOC)
    doc["training"].update(training)
    doc["training"] = {k: v for k, v in doc["training"].items() if v is not None}
    return doc


def problem(**training: Any) -> Problem:
    return problem_from_dict(doc_with(**training))


def test_sources_parse_into_owners_and_owner_zero_is_mirrored() -> None:
    p = problem()
    assert p.num_owners == 2 and p.is_multi_owner
    assert p.owners == (DataOwner("a", 16), DataOwner("b", 8, 4, "b", "clinic-b"))
    assert [o.label for o in p.owners] == ["a", "clinic-b"]
    tr = p.training
    assert (tr.source, tr.batch_size, tr.micro_batch_size, tr.labels_at) == ("a", 16, None, None)
    assert (tr.owners_mode, tr.replicas) == ("parallel", "shared")


def test_single_source_form_has_one_owner_and_is_its_own_owner_problem() -> None:
    p = problem(sources=None, source="a", batch_size=16)
    assert p.owners == (DataOwner("a", 16),)
    assert p.num_owners == 1 and not p.is_multi_owner
    assert p.owner_problem(0) is p
    with pytest.raises(IndexError):
        p.owner_problem(1)


def test_owner_problem_is_single_source_with_the_other_owners_as_relays() -> None:
    p = problem()
    q = p.owner_problem(1)
    assert q.training.sources == ()
    assert (q.training.source, q.training.batch_size, q.training.micro_batch_size,
            q.training.labels_at) == ("b", 8, 4, "b")
    assert q.training.schedule == p.training.schedule
    assert not q.network.node("a").can_compute  # owner 0's node only forwards for owner 1
    assert q.network.node("b").can_compute and q.network.node("s1").can_compute
    assert q.network.links == p.network.links and q.model == p.model
    assert not p.owner_problem(0).network.node("b").can_compute


def test_batch_and_micro_batch_defaults_apply_to_entries_without_them() -> None:
    p = problem(sources=[{"node": "a"}, "b"], batch_size=32, micro_batch_size=8)
    assert p.owners == (DataOwner("a", 32, 8), DataOwner("b", 32, 8))


def test_problem_document_round_trip_keeps_the_owners() -> None:
    p = problem(owners="sequential")
    again = problem_from_dict(problem_to_dict(p))
    assert again == p
    assert again.training.owners_mode == "sequential"


def test_with_training_on_mirrored_fields_changes_owner_zero() -> None:
    p = problem().with_training(micro_batch_size=2)
    assert p.owners[0] == DataOwner("a", 16, 2)
    assert p.training.micro_batch_size == 2
    assert p.owners[1] == problem().owners[1]


@pytest.mark.parametrize(("training", "field", "rule"), [
    ({"sources": [{"node": "r", "batch_size": 4}]}, "training.sources[0].node",
     "is not a compute node"),
    ({"sources": [{"node": "a", "batch_size": 4}, {"node": "zz", "batch_size": 4}]},
     "training.sources[1].node", "is not the id of a node"),
    ({"sources": [{"node": "a", "batch_size": 4}, {"node": "a", "batch_size": 4}]},
     "training.sources[1].node", "is a duplicate node (also sources[0])"),
    ({"source": "a"}, "training.sources", "is given beside source"),
    ({"sources": []}, "training.sources", "is empty"),
    ({"sources": [{"node": "a", "batch_sise": 4}]}, "training.sources[0].batch_sise",
     "did you mean batch_size?"),
    ({"sorces": 1}, "training.sorces", "did you mean sources or source?"),
    ({"owners": "both"}, "training.owners", "must be one of parallel, sequential"),
    ({"replicas": "one"}, "training.replicas", "must be one of per-owner, shared"),
    ({"labels_at": "a"}, "training.labels_at", "give labels_at per entry of sources"),
    ({"sources": [{"node": "a"}]}, "training.sources[0].batch_size", "is missing"),
    ({"sources": [{"node": "a", "batch_size": 4, "micro_batch_size": 5}]},
     "training.sources[0].micro_batch_size", "must be <= 4"),
    ({"sources": [{"node": "a", "batch_size": 4, "labels_at": "zz"}]},
     "training.sources[0].labels_at", "is not the id of a node"),
    ({"sources": [{"node": "a", "batch_size": 4}, {"node": "b", "batch_size": 4,
                                                   "labels_at": "a"}]},
     "training.sources[1].labels_at", "is the node of data owner 0"),
    ({"sources": [{"node": "a", "batch_size": 4, "name": "x"},
                  {"node": "b", "batch_size": 4, "name": "x"}]},
     "training.sources[1].name", "is a duplicate owner name"),
    ({"sources": "a"}, "training.sources", "must be a list"),
])
def test_bad_sources_name_the_field(training: dict[str, Any], field: str, rule: str) -> None:
    with pytest.raises(ProblemError) as info:
        problem(**training)
    assert info.value.field == field, str(info.value)
    assert rule in str(info.value)
    assert "\n" not in str(info.value)


def one_owner_pair(**training: Any) -> tuple[Problem, Problem]:
    plain = doc_with(**training)
    plain["training"] = {"source": "b", "batch_size": 12, "labels_at": "b",
                         **{k: v for k, v in training.items() if k != "sources"}}
    listed = doc_with(**training)
    listed["training"] = {"sources": [{"node": "b", "batch_size": 12, "labels_at": "b",
                                       "name": "solo"}], **training}
    return problem_from_dict(plain), problem_from_dict(listed)


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_one_owner_sources_problem_equals_the_source_form(schedule: str) -> None:
    plain, listed = one_owner_pair(schedule=schedule)
    assert not listed.is_multi_owner and listed.num_owners == 1
    assert listed.owner_problem(0).training == plain.training
    for objective in ("analytic", "makespan"):
        a = solve(plain, objective=objective)
        b = solve(listed, objective=objective)
        assert a.plan == b.plan, objective
        assert a.objective_s == b.objective_s, objective
    plan = solve(plain).plan
    assert evaluate(plain, plan) == evaluate(listed, plan)
    assert simulate(plain, plan).makespan_s == simulate(listed, plan).makespan_s


def test_unreachable_servers_counts_what_no_owner_reaches() -> None:
    from pipesl.problem.validate import unreachable_servers

    doc = copy.deepcopy(DOC)
    doc["network"]["nodes"] += [{"id": "c", "flops": 1e11}, {"id": "far", "flops": 1e12},
                                {"id": "lone", "flops": 1e12}]
    doc["network"]["links"].append({"source": "c", "target": "far", "bandwidth": 1e8})
    one = problem_from_dict({**doc, "training": {"source": "a", "batch_size": 4}})
    assert unreachable_servers(one) == ["c", "far", "lone"]
    doc["training"] = {"sources": [{"node": "a"}, {"node": "c"}], "batch_size": 4}
    assert unreachable_servers(problem_from_dict(doc)) == ["lone"]
