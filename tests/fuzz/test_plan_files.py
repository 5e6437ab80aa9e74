"""Fuzz plan files: ``load_plan`` then ``validate_plan`` (what ``pipesl evaluate`` runs).

Base plans are random valid plans of random problems (``tests/strategies.py``), written as the
decisions only or as the full SPEC document with its derived fields. Each mutation predicts a
ProblemError (a field of the file is malformed: ``<file>: plan.stages[1].first_layer: ...``),
a PlanError (the plan breaks a rule against its problem: ``plan.routes[0]: ...``) or a valid
load equal to the predicted plan.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from harness import FUZZ, SLOW, Accept, Reject, judge
from hypothesis import given
from hypothesis import strategies as st
from mutate import Lit, as_written, dump

from pipesl.cost import evaluate, plan_document
from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import Plan, load_plan, plan_to_dict, validate_plan
from pipesl.problem import Problem
from strategies import random_plan, random_problem


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plans")


def base_case(seed: int) -> tuple[Problem, Plan]:
    r = random.Random(seed)
    problem = random_problem(r, n_nodes=r.randint(2, 7), n_layers=r.randint(1, 6))
    return problem, random_plan(r, problem)


TOO_LARGE = "is too large: beyond the range of a double"


def plan_error(field: str, rule: str) -> Reject:
    return Reject(field, rule, PlanError)


def file_error(field: str, rule: str) -> Reject:
    return Reject(f"plan.{field}" if field else "plan", rule, ProblemError)


def layer_ranges(draw: Any, doc: dict[str, Any], problem: Problem, plan: Plan) -> Any:
    """Gaps, overlaps, a first stage not starting at 1, a last stage not ending at L,
    last < first; layers as wrong types."""
    stages = doc["stages"]
    k = draw(st.integers(0, len(stages) - 1))
    attr = draw(st.sampled_from(["first_layer", "last_layer"]))
    how = draw(st.sampled_from(["shift", "shift", "type", "missing"]))
    if how == "type":
        stages[k][attr] = draw(st.sampled_from(["1", 1.5, True, [1], {"a": 1}, Lit("1.0e+400")]))
        if isinstance(stages[k][attr], Lit):
            return Reject(f"plan.stages[{k}].{attr}", TOO_LARGE, ProblemError)
        return file_error(f"stages[{k}].{attr}", "must be an integer")
    if how == "missing":
        del stages[k][attr]
        return file_error(f"stages[{k}].{attr}", "is missing")
    delta = draw(st.integers(-10**6, 10**6).filter(lambda d: d != 0))
    stages[k][attr] += delta
    L = problem.model.num_layers
    new = stages[k][attr]
    expected_first = 1 if k == 0 else stages[k - 1]["last_layer"] + 1
    if attr == "first_layer":
        return plan_error(f"plan.stages[{k}].first_layer", f"must be {expected_first}")
    if new < stages[k]["first_layer"]:
        return plan_error(f"plan.stages[{k}].last_layer", "must be >= first_layer")
    if k + 1 < len(stages):
        return plan_error(f"plan.stages[{k + 1}].first_layer", f"must be {new + 1}")
    assert new != L
    return plan_error(f"plan.stages[{k}].last_layer", f"must end at layer {L}")


def placement(draw: Any, doc: dict[str, Any], problem: Problem, plan: Plan) -> Any:
    """Unknown nodes, relays, a node computing twice, stage 1 off the source."""
    stages = doc["stages"]
    net = problem.network
    k = draw(st.integers(0, len(stages) - 1))
    how = draw(st.sampled_from(["unknown", "relay", "twice", "swap", "type"]))
    relays = [n.id for n in net.nodes if not n.can_compute]
    if how == "relay" and not relays:
        how = "unknown"
    if how in ("twice", "swap") and len(stages) < 2:
        how = "unknown"
    if how == "type":
        stages[k]["node"] = draw(st.sampled_from([True, [1], {"a": 1}, 1.5, None]))
        if stages[k]["node"] is None:
            return file_error(f"stages[{k}].node", "is missing")
        return file_error(f"stages[{k}].node", "must be a node id")
    if how == "unknown":
        fresh = draw(st.text("xyz0123456789", min_size=1, max_size=8)
                     .filter(lambda x: x not in net.node_index))
        stages[k]["node"] = fresh
        return plan_error(f"plan.stages[{k}].node", "is not a node of the network")
    if how == "relay":
        stages[k]["node"] = draw(st.sampled_from(relays))
        return plan_error(f"plan.stages[{k}].node", "cannot compute")
    if how == "twice":
        i, j = sorted(draw(st.lists(st.integers(0, len(stages) - 1), min_size=2, max_size=2,
                                    unique=True)))
        stages[j]["node"] = stages[i]["node"]
        return plan_error(f"plan.stages[{j}].node", f"already computes stage {i + 1}")
    stages[0]["node"], stages[1]["node"] = stages[1]["node"], stages[0]["node"]
    return plan_error("plan.stages[0].node", "is not the source")


def routes(draw: Any, doc: dict[str, Any], problem: Problem, plan: Plan) -> Any:
    """Routes that are not simple, hops that are not links, wrong ends, a wrong count, routes
    longer than min-hop under ``routing: shortest``, wrong types."""
    net = problem.network
    stages = doc["stages"]
    rs = doc["routes"]
    how = draw(st.sampled_from(["count", "type", "loop", "hop", "ends", "unknown",
                                "longer"]))
    if not rs and how != "type":
        how = "count"
    if how == "count":
        if rs and draw(st.booleans()):
            rs.pop()
        else:
            rs.append([stages[-1]["node"], stages[0]["node"]])
        return plan_error("plan.routes", f"has {len(rs)} routes; {len(stages)} stages need "
                          f"{len(stages) - 1}")
    if how == "type":
        value = draw(st.sampled_from(["a-b", 5, {"a": 1}, [5.5], [[True]], [["a", ["b"]]]]))
        doc["routes"] = value
        if isinstance(value, list) and value and isinstance(value[0], list):
            j = 0 if value[0][0] is True else 1
            return file_error(f"routes[0][{j}]", "must be a node id")
        if isinstance(value, list):
            return file_error("routes[0]", "must be a list of node ids")
        return file_error("routes", "must be a list of routes")
    k = draw(st.integers(0, len(rs) - 1))
    route = rs[k]
    if how == "loop":  # go to a neighbour and come back: a walk, not a simple path
        u = route[0]
        w = draw(st.sampled_from(sorted(net.graph.neighbors(u))))
        rs[k] = [u, w, *route]
        return plan_error(f"plan.routes[{k}]", "visits a node twice")
    if how == "ends":
        rs[k] = list(reversed(route)) if len(route) > 1 else []
        return plan_error(f"plan.routes[{k}]", f"must run from {route[0]!r} to "
                          f"{route[-1]!r}")
    if how == "unknown" and len(route) >= 2:
        rs[k] = [route[0], "no-such-node", *route[1:]]
        return plan_error(f"plan.routes[{k}][1]", "is not a node of the network")
    if how == "longer" and problem.training.routing == "shortest":
        u, v = route[0], route[-1]
        paths = nx.all_simple_paths(net.graph, u, v, cutoff=len(route) + 3)
        longer = [p for p in paths if len(p) > len(route)]
        if longer:
            rs[k] = draw(st.sampled_from(sorted(longer)))
            return plan_error(f"plan.routes[{k}]", "but training.routing is 'shortest'")
    u, v = route[0], route[-1]
    if net.link_index(u, v) is None:  # skip the path: a direct hop over no link
        rs[k] = [u, v]
        return plan_error(f"plan.routes[{k}]", f"hop {u!r} -> {v!r} is not a link")
    rs.append([stages[-1]["node"], stages[0]["node"]])
    return plan_error("plan.routes", f"has {len(rs)} routes")


def fields(draw: Any, doc: dict[str, Any], problem: Problem, plan: Plan) -> Any:
    """micro_batch_size out of range or of the wrong type or missing, batch_size mismatch,
    misspelt keys, stages not a list, label routes that do not fit labels_at."""
    B = problem.training.batch_size
    fixed = problem.training.micro_batch_size
    how = draw(st.sampled_from(["b range", "b type", "b missing", "b valid", "batch", "extra",
                                "stage extra", "stages type", "stage type", "label"]))
    if how == "b range":
        doc["micro_batch_size"] = draw(st.sampled_from([0, -1, B + 1, B + 10**6]))
        return file_error("micro_batch_size", "must be between 1 and batch_size")
    if how == "b type":
        doc["micro_batch_size"] = value = draw(st.sampled_from(["4", 2.5, True, [1], 10**400]))
        if value == 10**400:
            return Reject("plan.micro_batch_size", TOO_LARGE, ProblemError)
        return file_error("micro_batch_size", "must be an integer")
    if how == "b missing":
        del doc["micro_batch_size"]
        if fixed is None:
            return file_error("micro_batch_size", "is missing")
        return Accept(replace(plan, micro_batch_size=fixed))
    if how == "b valid":
        b = draw(st.integers(1, B))
        doc["micro_batch_size"] = float(b) if draw(st.booleans()) else b
        return Accept(replace(plan, micro_batch_size=b))
    if how == "batch":
        doc["batch_size"] = B + draw(st.integers(1, 100))
        return file_error("batch_size", "does not match the problem's training.batch_size")
    if how == "extra":
        key = draw(st.sampled_from(["micro_batch_sise", "stage", "route", "label_rout",
                                    "objective", "plan"]))
        doc[key] = 1
        return file_error(key, "is not a known field of a plan")
    if how == "stage extra":
        k = draw(st.integers(0, len(doc["stages"]) - 1))
        doc["stages"][k]["layers"] = [1, 2]
        return file_error(f"stages[{k}].layers", "is not a known field of a plan")
    if how == "stages type":
        doc["stages"] = draw(st.sampled_from(["s", 5, {"node": "s"}, None]))
        return file_error("stages", "must be a list")
    if how == "stage type":
        doc["stages"][0] = draw(st.sampled_from(["s", 5, [1, 2]]))
        return file_error("stages[0]", "must be an object")
    labels = problem.training.labels_at
    last = plan.stages[-1].node
    if labels is None:
        doc["label_route"] = [last, "elsewhere"]
        return plan_error("plan.label_route", "is given but training.labels_at is null")
    if labels != last:
        doc["label_route"] = None
        return plan_error("plan.label_route", "is missing")
    doc["label_route"] = [last, "elsewhere"]
    return plan_error("plan.label_route", "must run from")


PLAN_CLASSES = {"plan: layer ranges": layer_ranges, "plan: placement": placement,
                "plan: routes": routes, "plan: fields": fields}


def run_plan_case(cls: str, data: Any, folder: Path) -> None:
    problem, plan = base_case(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    full = data.draw(st.booleans(), label="full document")
    doc = (plan_document(evaluate(problem, plan)) if full else plan_to_dict(plan))
    doc = json.loads(json.dumps(doc))
    expectation = PLAN_CLASSES[cls](data.draw, doc, problem, plan)
    fmt = data.draw(st.sampled_from(["json", "yaml"]), label="format")
    path = folder / f"plan.{fmt}"
    path.write_text(dump(doc, fmt), encoding="utf-8")
    expectation = as_written(expectation, "plan")
    where = "" if isinstance(expectation, Reject) and expectation.error is PlanError \
        else str(path)
    judge(cls, lambda: validate_plan(problem, load_plan(path, problem)), where, expectation)


@pytest.mark.parametrize("cls", list(PLAN_CLASSES))
@FUZZ
@given(data=st.data())
def test_plan_file_mutation(cls: str, folder: Path, data: Any) -> None:
    run_plan_case(cls, data, folder)


@pytest.mark.slow
@pytest.mark.parametrize("cls", list(PLAN_CLASSES))
@SLOW
@given(data=st.data())
def test_plan_file_mutation_long(cls: str, folder: Path, data: Any) -> None:
    run_plan_case(cls, data, folder)


def test_plan_round_trip_is_accepted(folder: Path) -> None:
    """The unmutated documents load as the plan (the oracle's baseline)."""
    for seed in range(20):
        problem, plan = base_case(seed)
        path = folder / "plan.json"
        path.write_text(json.dumps(plan_document(evaluate(problem, plan))))
        judge("plan: fields", lambda p=problem, f=path: validate_plan(p, load_plan(f, p)),
              str(path), Accept(plan))
