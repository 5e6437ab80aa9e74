"""Plans: the SPEC section 4 JSON round trip and every rule of ``validate_plan``."""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import pytest

from pipesl.cost import evaluate, plan_document
from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import Plan, Stage, load_plan, plan_from_dict, plan_to_dict, validate_plan
from pipesl.problem import Problem, problem_from_dict
from strategies import random_plan, random_problem

# s (source) - r (relay) - e1, r - e2, e1 - e2, e2 - e3 ; labels optional.
DOC: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "s", "flops": 1e12},
            {"id": "r", "compute": False},
            {"id": "e1", "flops": 2e12},
            {"id": "e2", "flops": 3e12},
            {"id": "e3", "flops": 3e12},
        ],
        "links": [
            {"source": "s", "target": "r", "bandwidth": 1e8},
            {"source": "r", "target": "e1", "bandwidth": 1e8},
            {"source": "r", "target": "e2", "bandwidth": 1e8, "duplex": "full"},
            {"source": "e1", "target": "e2", "bandwidth": 1e9},
            {"source": "e2", "target": "e3", "bandwidth": 1e9},
        ],
    },
    "model": {
        "name": "m",
        "input_bytes": 100,
        "layers": [{"name": f"l{i}", "fwd_flops": 1e8, "out_bytes": 1e3} for i in (1, 2, 3)],
    },
    "training": {"source": "s", "batch_size": 16},
}


def problem(**training: Any) -> Problem:
    doc = copy.deepcopy(DOC)
    doc["training"].update(training)
    return problem_from_dict(doc)


GOOD = Plan((Stage("s", 1, 1), Stage("e1", 2, 2), Stage("e2", 3, 3)),
            (("s", "r", "e1"), ("e1", "e2")), 4)


def test_good_plan_is_valid_and_returned() -> None:
    assert validate_plan(problem(), GOOD) is GOOD
    assert GOOD.num_stages == 3
    assert GOOD.nodes == ("s", "e1", "e2")
    assert GOOD.stages[1].layer_slice == slice(1, 2)
    assert GOOD.stages[0].num_layers == 1
    assert GOOD.with_micro_batch_size(8).micro_batch_size == 8
    assert GOOD.all_routes() == GOOD.routes


def test_plan_json_round_trip_through_the_spec_document() -> None:
    prob = problem(labels_at="s")
    plan = Plan(GOOD.stages, GOOD.routes, 4, ("e2", "r", "s"))
    doc = plan_document(evaluate(prob, plan),
                        solver={"name": "hand", "optimal": False, "seconds": 0.0})
    text = json.dumps(doc)
    assert plan_from_dict(json.loads(text), prob) == plan
    assert plan_from_dict(json.loads(text)) == plan
    assert plan_from_dict(plan_to_dict(plan)) == plan
    assert plan.all_routes() == (*plan.routes, ("e2", "r", "s"))


def test_plan_round_trip_on_random_plans(tmp_path: Any) -> None:
    for seed in range(40):
        prob = random_problem(random.Random(seed), n_nodes=6, n_layers=5)
        plan = random_plan(random.Random(seed + 1000), prob)
        doc = plan_document(evaluate(prob, plan))
        path = tmp_path / f"plan{seed}.json"
        path.write_text(json.dumps(doc))
        assert load_plan(path, prob) == plan, seed


def test_plan_yaml_file_loads(tmp_path: Any) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text("micro_batch_size: 4\nstages:\n"
                    "  - {node: s, first_layer: 1, last_layer: 1}\n"
                    "  - {node: e2, first_layer: 2, last_layer: 3}\n"
                    "routes: [[s, r, e2]]\n")
    assert load_plan(path) == Plan((Stage("s", 1, 1), Stage("e2", 2, 3)),
                                   (("s", "r", "e2"),), 4)


def test_plan_from_dict_uses_the_problems_fixed_micro_batch_size() -> None:
    doc = plan_to_dict(GOOD)
    del doc["micro_batch_size"]
    assert plan_from_dict(doc, problem(micro_batch_size=2)).micro_batch_size == 2
    with pytest.raises(ProblemError, match=r"plan\.micro_batch_size: is missing"):
        plan_from_dict(doc, problem())
    with pytest.raises(ProblemError, match=r"plan\.micro_batch_size: is missing"):
        plan_from_dict(doc)


@pytest.mark.parametrize(("doc", "field", "rule"), [
    ([1, 2], "plan", "must be a JSON object"),
    ({"stages": "s"}, "plan.stages", "must be a list"),
    ({"stages": [5]}, r"plan.stages\[0\]", "must be an object"),
    ({"stages": [{"node": "s", "first_layer": 1}]}, r"plan.stages\[0\].last_layer",
     "is missing"),
    ({"stages": [{"node": ["s"], "first_layer": 1, "last_layer": 3}]},
     r"plan.stages\[0\].node", "must be a node id"),
    ({"stages": [{"node": "s", "first_layer": 1.5, "last_layer": 3}]},
     r"plan.stages\[0\].first_layer", "must be an integer"),
    ({"stages": [{"node": "s", "first_layer": True, "last_layer": 3}]},
     r"plan.stages\[0\].first_layer", "must be an integer"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}], "routes": "s-e1",
      "micro_batch_size": 1}, "plan.routes", "must be a list of routes"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}], "routes": [["s", 1.5]],
      "micro_batch_size": 1}, r"plan.routes\[0\]\[1\]", "must be a node id"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}], "label_route": "s",
      "micro_batch_size": 1}, "plan.label_route", "must be a list of node ids"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}],
      "micro_batch_size": "4"}, "plan.micro_batch_size", "must be an integer"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}],
      "micro_batch_size": 17}, "plan.micro_batch_size", "must be between 1 and batch_size"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}],
      "micro_batch_size": 0}, "plan.micro_batch_size", "must be between 1 and batch_size"),
    ({"stages": [{"node": "s", "first_layer": 1, "last_layer": 3}], "batch_size": 32,
      "micro_batch_size": 4}, "plan.batch_size", "does not match"),
])
def test_malformed_plan_documents(doc: Any, field: str, rule: str) -> None:
    with pytest.raises(ProblemError) as info:
        plan_from_dict(doc, problem())
    assert re.match(field, info.value.field)
    assert re.search(rule, str(info.value))


def _plan(stages: list[tuple[str, int, int]], routes: list[tuple[str, ...]], b: int = 4,
          label: tuple[str, ...] | None = None) -> Plan:
    return Plan(tuple(Stage(*s) for s in stages), tuple(routes), b, label)


TWO = [("s", 1, 1), ("e1", 2, 3)]
R = [("s", "r", "e1")]


@pytest.mark.parametrize(("plan", "field", "rule"), [
    (_plan([], []), "plan.stages", "is empty"),
    (_plan([("s", 1, 1), ("e1", 3, 3)], R), r"plan.stages\[1\].first_layer",
     "must be 2"),                                                       # gap
    (_plan([("s", 1, 2), ("e1", 2, 3)], R), r"plan.stages\[1\].first_layer",
     "must be 3"),                                                       # overlap
    (_plan([("s", 2, 3)], []), r"plan.stages\[0\].first_layer", "must be 1"),
    (_plan([("s", 1, 1), ("e1", 2, 2)], R), r"plan.stages\[1\].last_layer",
     "must end at layer 3"),
    (_plan([("s", 1, 4)], []), r"plan.stages\[0\].last_layer", "must end at layer 3"),
    (_plan([("s", 1, 1), ("e1", 2, 1), ("e2", 2, 3)], [*R, ("e1", "e2")]),
     r"plan.stages\[1\].last_layer", "must be >= first_layer"),
    (_plan([("e1", 1, 1), ("s", 2, 3)], [("e1", "r", "s")]), r"plan.stages\[0\].node",
     "is not the source"),
    (_plan([("s", 1, 1), ("r", 2, 3)], [("s", "r")]), r"plan.stages\[1\].node",
     "cannot compute"),                                                  # a relay computing
    (_plan([("s", 1, 1), ("zz", 2, 3)], [("s", "zz")]), r"plan.stages\[1\].node",
     "is not a node"),
    (_plan([("s", 1, 1), ("e1", 2, 2), ("s", 3, 3)], [*R, ("e1", "r", "s")]),
     r"plan.stages\[2\].node", "already computes stage 1"),
    (_plan(TWO, []), "plan.routes", "has 0 routes; 2 stages need 1"),
    (_plan(TWO, [*R, ("e1", "e2")]), "plan.routes", "has 2 routes"),
    (_plan(TWO, [("r", "e1")]), r"plan.routes\[0\]", "must run from 's' to 'e1'"),
    (_plan(TWO, [("s", "r")]), r"plan.routes\[0\]", "must run from 's' to 'e1'"),
    (_plan(TWO, [()]), r"plan.routes\[0\]", "must run from 's' to 'e1'"),
    (_plan(TWO, [("s", "e1")]), r"plan.routes\[0\]", "is not a link"),   # non-link hop
    (_plan(TWO, [("s", "zz", "e1")]), r"plan.routes\[0\]\[1\]", "is not a node"),
    (_plan(TWO, [("s", "r", "e2", "r", "e1")]), r"plan.routes\[0\]",
     "visits a node twice"),                                            # non-simple
    (_plan(TWO, R, b=0), "plan.micro_batch_size", r"must be an integer in \[1, "),
    (_plan(TWO, R, b=17), "plan.micro_batch_size", r"batch_size=16"),
    (_plan(TWO, R, b=True), "plan.micro_batch_size", "must be an integer"),
    (_plan(TWO, R, b=2.0), "plan.micro_batch_size", "must be an integer"),  # type: ignore[arg-type]
    (_plan(TWO, R, label=("e1", "r", "s")), "plan.label_route",
     "is given but training.labels_at is null"),
])
def test_structurally_invalid_plans(plan: Plan, field: str, rule: str) -> None:
    with pytest.raises(PlanError) as info:
        validate_plan(problem(), plan)
    message = str(info.value)
    assert re.match(field + ":", message), message
    assert re.search(rule, message), message
    # evaluate refuses them the same way.
    with pytest.raises(PlanError):
        evaluate(problem(), plan)


def test_shortest_routing_refuses_a_longer_route_and_accepts_any_shortest() -> None:
    prob = problem(routing="shortest")
    longer = _plan([("s", 1, 1), ("e2", 2, 3)], [("s", "r", "e1", "e2")])
    with pytest.raises(PlanError, match=r"plan\.routes\[0\]: has 3 hops but training\.routing "
                                        r"is 'shortest' and 's' -> 'e2' takes 2"):
        validate_plan(prob, longer)
    validate_plan(problem(routing="optimize"), longer)
    validate_plan(prob, _plan([("s", 1, 1), ("e2", 2, 3)], [("s", "r", "e2")]))


def test_label_route_rules() -> None:
    prob = problem(labels_at="s")
    with pytest.raises(PlanError, match=r"plan\.label_route: is missing; training\.labels_at "
                                        r"is 's' and the last stage runs on 'e1'"):
        validate_plan(prob, _plan(TWO, R))
    with pytest.raises(PlanError, match=r"plan\.label_route: must run from 'e1' to 's'"):
        validate_plan(prob, _plan(TWO, R, label=("e1", "r")))          # wrong end
    with pytest.raises(PlanError, match=r"plan\.label_route: must run from 'e1' to 's'"):
        validate_plan(prob, _plan(TWO, R, label=("e2", "r", "s")))     # wrong start
    with pytest.raises(PlanError, match=r"plan\.label_route: hop 'e1' -> 's' is not a link"):
        validate_plan(prob, _plan(TWO, R, label=("e1", "s")))
    validate_plan(prob, _plan(TWO, R, label=("e1", "r", "s")))
    # Labels on the last stage's node: no route needed, or the trivial one.
    at_e1 = problem(labels_at="e1")
    validate_plan(at_e1, _plan(TWO, R))
    validate_plan(at_e1, _plan(TWO, R, label=("e1",)))
    with pytest.raises(PlanError, match="visits a node twice"):
        validate_plan(at_e1, _plan(TWO, R, label=("e1", "r", "e1")))
    # Shortest routing applies to the label route too.
    short = problem(labels_at="s", routing="shortest")
    with pytest.raises(PlanError, match=r"plan\.label_route: has 3 hops .* takes 2"):
        validate_plan(short, _plan([("s", 1, 1), ("e2", 2, 3)], [("s", "r", "e2")],
                                   label=("e2", "e1", "r", "s")))


def test_load_plan_errors(tmp_path: Any) -> None:
    with pytest.raises(ProblemError, match="does not exist"):
        load_plan(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ProblemError, match="is not valid JSON"):
        load_plan(bad)
