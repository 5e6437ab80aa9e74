"""Scripted network events: parsing, the error of every bad field, state per iteration, and
the network as it really is (``problem_at``)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pipesl.adapt.events import (
    LinkState,
    NetworkEvent,
    NetworkScript,
    NodeState,
    load_network_events,
    parse_network_events,
    without_nodes,
)
from pipesl.exceptions import ProblemError
from pipesl.problem import load_problem

# iot-dual: mcu ~~ mesh1 ~~ pi1 == pi2 == ap ~~ mcu; the source is mcu.
LINKS = (("mcu", "mesh1"), ("mesh1", "pi1"), ("mcu", "ap"), ("ap", "pi2"), ("pi1", "pi2"))
NODES = ("mcu", "mesh1", "pi1", "ap", "pi2")
VALID = {"iteration": 0, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.5}


@pytest.fixture(scope="module")
def problem():
    return load_problem("iot-dual")


def _link(problem, u: str, v: str):
    link = problem.network.link_between(u, v)
    assert link is not None
    return link


# --- parsing -------------------------------------------------------------------------------


def test_parse_reads_every_kind_of_event() -> None:
    script = parse_network_events([
        {"iteration": 10, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.1},
        {"iteration": 4, "until": 5, "link": ["mesh1", "pi1"], "latency_factor": 3},
        {"iteration": 0, "link": ["mesh1", "pi1"], "jitter": 0.3},
        {"iteration": 8, "node": "pi1", "flops_factor": 0.5, "jitter": 0.1},
        {"iteration": 20, "node_leaves": "pi2"},
    ])
    assert script.events == (
        NetworkEvent(10, link=("mcu", "mesh1"), bandwidth_factor=0.1),
        NetworkEvent(4, link=("mesh1", "pi1"), latency_factor=3.0, until=5),
        NetworkEvent(0, link=("mesh1", "pi1"), jitter=0.3),
        NetworkEvent(8, node="pi1", flops_factor=0.5, jitter=0.1),
        NetworkEvent(20, node="pi2", leaves=True),
    )
    assert isinstance(script.events[1].latency_factor, float)
    assert [e.describe() for e in script.events] == [
        "link mcu-mesh1 bandwidth x0.1 from iteration 10",
        "link mesh1-pi1 latency x3 in iterations 4-4",
        "link mesh1-pi1 jitter ±30% from iteration 0",
        "node pi1 flops x0.5, jitter ±10% from iteration 8",
        "pi2 leaves at iteration 20",
    ]
    assert script and not NetworkScript()


def test_to_list_round_trips_through_parse_yaml_and_json(tmp_path) -> None:
    doc = [
        {"iteration": 3, "until": 7, "link": ["pi1", "mesh1"], "bandwidth_factor": 0.25,
         "latency_factor": 2.0, "jitter": 0.9},
        {"iteration": 0, "node": "pi2", "flops_factor": 1.5},
        {"iteration": 5, "node_leaves": "pi1"},
        {"iteration": 6, "link": ["mcu", "ap"], "latency_factor": 0.0},
    ]
    script = parse_network_events(doc)
    assert parse_network_events(script.to_list()) == script
    assert script.to_list() == doc
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"events": script.to_list()}))
    (tmp_path / "s.json").write_text(json.dumps(script.to_list()))
    assert load_network_events(tmp_path / "s.yaml") == script
    assert load_network_events(tmp_path / "s.json") == script


_FACTOR = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)
_LINK_EVENT = st.fixed_dictionaries(
    {"iteration": st.integers(0, 50), "link": st.sampled_from(LINKS).map(list)},
    optional={"bandwidth_factor": _FACTOR, "latency_factor": _FACTOR,
              "jitter": st.floats(0.0, 0.9)})
_NODE_EVENT = st.fixed_dictionaries(
    {"iteration": st.integers(0, 50), "node": st.sampled_from(NODES)},
    optional={"flops_factor": _FACTOR, "jitter": st.floats(0.0, 0.9)})
_LEAVE_EVENT = st.fixed_dictionaries({"iteration": st.integers(0, 50),
                                      "node_leaves": st.sampled_from(NODES)})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_LINK_EVENT.filter(lambda d: len(d) > 2),
                         _NODE_EVENT.filter(lambda d: len(d) > 2), _LEAVE_EVENT), max_size=6))
def test_round_trip_property(doc: list[dict]) -> None:
    script = parse_network_events(doc)
    assert len(script.events) == len(doc)
    again = parse_network_events(json.loads(json.dumps(script.to_list())))
    assert again == script


# --- every bad field: a ProblemError naming the field path and the rule ---------------------

BAD = [
    ({"link": ["mcu", "mesh1"], "bandwidth_factor": 0.5}, ".iteration", "is missing"),
    ({**VALID, "iteration": -1}, ".iteration", "integer >= 0"),
    ({**VALID, "iteration": True}, ".iteration", "integer >= 0"),
    ({**VALID, "iteration": 2.0}, ".iteration", "integer >= 0"),
    ({**VALID, "iteration": "3"}, ".iteration", "integer >= 0"),
    ({**VALID, "iteration": 5, "until": 5}, ".until", "must be after iteration (5)"),
    ({**VALID, "iteration": 5, "until": 2}, ".until", "must be after iteration (5)"),
    ({**VALID, "until": -1}, ".until", "integer >= 0"),
    ({**VALID, "until": 1.5}, ".until", "integer >= 0"),
    ({**VALID, "node": "pi1"}, "", "exactly one of link, node, node_leaves"),
    ({"iteration": 1, "node": "pi1", "node_leaves": "pi1"}, "", "exactly one of"),
    ({"iteration": 1, "bandwidth_factor": 0.5}, "", "exactly one of"),
    ({**VALID, "bandwith_factor": 0.5}, ".bandwith_factor", "is not a field of a network event"),
    ({**VALID, "link": "mcu-mesh1"}, ".link", "pair of node ids"),
    ({**VALID, "link": ["mcu"]}, ".link", "pair of node ids"),
    ({**VALID, "link": ["mcu", "mesh1", "pi1"]}, ".link", "pair of node ids"),
    ({**VALID, "link": ["mcu", 3]}, ".link", "pair of node ids"),
    ({**VALID, "link": ["mcu", ""]}, ".link", "pair of node ids"),
    ({**VALID, "link": {"mcu": "mesh1"}}, ".link", "pair of node ids"),
    ({**VALID, "bandwidth_factor": 0}, ".bandwidth_factor", "must be > 0"),
    ({**VALID, "bandwidth_factor": -0.5}, ".bandwidth_factor", "must be > 0"),
    ({**VALID, "bandwidth_factor": math.nan}, ".bandwidth_factor", "must be a number"),
    ({**VALID, "bandwidth_factor": True}, ".bandwidth_factor", "must be a number"),
    ({**VALID, "bandwidth_factor": "0.5"}, ".bandwidth_factor", "must be a number"),
    ({**VALID, "bandwidth_factor": None}, ".bandwidth_factor", "must be a number"),
    ({**VALID, "latency_factor": -1.0}, ".latency_factor", "must be >= 0"),
    ({**VALID, "latency_factor": math.nan}, ".latency_factor", "must be a number"),
    ({"iteration": 1, "node": "pi1", "flops_factor": 0}, ".flops_factor", "must be > 0"),
    ({"iteration": 1, "node": "pi1", "flops_factor": False}, ".flops_factor",
     "must be a number"),
    ({"iteration": 1, "node": "pi1", "flops_factor": "fast"}, ".flops_factor",
     "must be a number"),
    ({**VALID, "jitter": 0.95}, ".jitter", "<= 0.9"),
    ({**VALID, "jitter": -0.1}, ".jitter", ">= 0"),
    ({"iteration": 1, "node": "pi1", "jitter": 1.0}, ".jitter", "<= 0.9"),
    ({"iteration": 1, "node_leaves": "pi1", "until": 5}, ".until", "does not apply to a "
     "departure"),
    ({"iteration": 1, "node_leaves": "pi1", "flops_factor": 0.5}, ".flops_factor",
     "does not apply to a departure"),
    ({"iteration": 1, "node_leaves": ""}, ".node_leaves", "must be a node id"),
    ({"iteration": 1, "node_leaves": ["pi1"]}, ".node_leaves", "must be a node id"),
    ({"iteration": 1, "node": 7, "flops_factor": 0.5}, ".node", "must be a node id"),
    ({"iteration": 1, "node": "pi1", "bandwidth_factor": 0.5}, ".bandwidth_factor",
     "does not apply to a node"),
    ({**VALID, "flops_factor": 0.5}, ".flops_factor", "does not apply to a link"),
    ({"iteration": 1, "link": ["mcu", "mesh1"]}, "", "changes nothing"),
    ({"iteration": 1, "node": "pi1", "until": 4}, "", "changes nothing"),
    ("drop mcu-mesh1", "", "must be a mapping"),
]


@pytest.mark.parametrize(("event", "field", "rule"), BAD)
def test_bad_event_names_field_and_rule(event, field: str, rule: str) -> None:
    # The bad event is the second one, so the path must carry its index.
    with pytest.raises(ProblemError) as info:
        parse_network_events([VALID, event])
    assert info.value.field == f"network_events[1]{field}"
    assert rule in info.value.rule
    assert str(info.value).startswith(f"network_events[1]{field}:")
    assert "\n" not in str(info.value)


def test_not_a_list_and_the_file_name_in_the_path(tmp_path) -> None:
    with pytest.raises(ProblemError, match="must be a list of events") as info:
        parse_network_events({"iteration": 1, "node_leaves": "pi1"})
    assert info.value.field == "network_events"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump([VALID, {"iteration": 2, "link": ["mcu", "mesh1"],
                                            "bandwidth_factor": 0}]))
    with pytest.raises(ProblemError) as info:
        load_network_events(path)
    assert info.value.field == f"{path}[1].bandwidth_factor"


# --- validate against a problem -----------------------------------------------------------


def test_validate_accepts_links_either_way_round_and_returns_itself(problem) -> None:
    script = parse_network_events([
        {"iteration": 0, "link": ["mesh1", "mcu"], "bandwidth_factor": 0.5},
        {"iteration": 0, "node": "mesh1", "jitter": 0.2},
        {"iteration": 3, "node_leaves": "pi2"},
    ])
    assert script.validate(problem) is script


@pytest.mark.parametrize(("event", "field", "rule"), [
    ({"iteration": 0, "link": ["mcu", "pi2"], "bandwidth_factor": 0.5}, "link",
     "is not a link of the network"),
    ({"iteration": 0, "link": ["mcu", "nowhere"], "jitter": 0.1}, "link",
     "is not a link of the network"),
    ({"iteration": 0, "node": "pi9", "flops_factor": 0.5}, "node",
     "is not a node of the network"),
    ({"iteration": 4, "node_leaves": "pi9"}, "node_leaves", "is not a node of the network"),
    ({"iteration": 4, "node_leaves": "mcu"}, "node_leaves", "is the source"),
])
def test_validate_rejects_what_the_network_lacks(problem, event, field: str, rule: str,
                                                  tmp_path) -> None:
    script = parse_network_events([VALID, event])
    with pytest.raises(ProblemError) as info:
        script.validate(problem)
    assert info.value.field == f"network_events[1].{field}"
    assert rule in info.value.rule
    path = tmp_path / "s.json"
    path.write_text(json.dumps(script.to_list()))
    with pytest.raises(ProblemError, match=rule.split()[0]):
        load_network_events(path, problem)
    assert load_network_events(path) == script  # without a problem: not checked


# --- state per iteration ----------------------------------------------------------------------


def test_state_later_event_overrides_earlier_per_field() -> None:
    script = parse_network_events([
        # file order differs from start order: the later start wins, not the later line
        {"iteration": 5, "link": ["mesh1", "mcu"], "bandwidth_factor": 0.25},
        {"iteration": 2, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.5,
         "latency_factor": 2.0},
        {"iteration": 1, "node": "pi1", "flops_factor": 0.5, "jitter": 0.2},
        {"iteration": 3, "node": "pi1", "flops_factor": 0.8},
    ])
    assert script.state_at(0) == ({}, {})
    assert script.state_at(1) == ({}, {"pi1": NodeState(0.5, 0.2)})
    assert script.state_at(2) == ({("mcu", "mesh1"): LinkState(0.5, 2.0)},
                                  {"pi1": NodeState(0.5, 0.2)})
    links, nodes = script.state_at(7)
    assert links == {("mcu", "mesh1"): LinkState(0.25, 2.0, 0.0)}  # latency kept
    assert nodes == {"pi1": NodeState(0.8, 0.2)}  # jitter kept


def test_state_equal_starts_follow_file_order() -> None:
    script = parse_network_events([
        {"iteration": 2, "link": ["mcu", "ap"], "bandwidth_factor": 0.5},
        {"iteration": 2, "link": ["ap", "mcu"], "bandwidth_factor": 0.1},
    ])
    assert script.state_at(2)[0] == {("ap", "mcu"): LinkState(0.1)}


def test_until_is_exclusive_and_a_transient_event_falls_back() -> None:
    script = parse_network_events([
        {"iteration": 2, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.5},
        {"iteration": 4, "until": 6, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.1},
    ])
    factors = [script.state_at(i)[0].get(("mcu", "mesh1"), LinkState()).bandwidth_factor
               for i in range(8)]
    assert factors == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1, 0.5, 0.5]
    assert script.events[1].active(5) and not script.events[1].active(6)


def test_factor_one_restores_the_nominal_figures(problem) -> None:
    script = parse_network_events([
        {"iteration": 2, "link": ["mcu", "mesh1"], "bandwidth_factor": 0.5},
        {"iteration": 2, "node": "pi2", "flops_factor": 3.0},
        {"iteration": 5, "link": ["mcu", "mesh1"], "bandwidth_factor": 1},
        {"iteration": 5, "node": "pi2", "flops_factor": 1},
    ])
    assert script.state_at(5) == ({("mcu", "mesh1"): LinkState(1.0)}, {"pi2": NodeState(1.0)})
    assert script.problem_at(problem, 3).network != problem.network
    assert script.problem_at(problem, 5).network == problem.network


# --- the network as it is ---------------------------------------------------------------------


def test_problem_at_scales_exactly_the_named_link_and_node(problem) -> None:
    script = parse_network_events([
        {"iteration": 3, "link": ["mesh1", "mcu"], "bandwidth_factor": 0.25,
         "latency_factor": 3.0, "jitter": 0.5},
        {"iteration": 3, "node": "pi1", "flops_factor": 0.5, "jitter": 0.5},
        {"iteration": 3, "link": ["ap", "pi2"], "jitter": 0.5},
    ])
    assert script.problem_at(problem, 2) == problem
    now = script.problem_at(problem, 3)
    for old, new in zip(problem.network.links, now.network.links, strict=True):
        assert (new.source, new.target, new.duplex) == (old.source, old.target, old.duplex)
        if {old.source, old.target} == {"mcu", "mesh1"}:
            assert new.bandwidth == 16e6 * 0.25
            assert new.latency == 0.004 * 3.0
        else:  # jitter alone changes no figure
            assert (new.bandwidth, new.latency) == (old.bandwidth, old.latency)
    for was, node in zip(problem.network.nodes, now.network.nodes, strict=True):
        assert node.flops == (400e6 * 0.5 if was.id == "pi1" else was.flops)
        assert (node.memory, node.overhead) == (was.memory, was.overhead)
    assert now.model == problem.model and now.training == problem.training
    assert _link(problem, "mcu", "mesh1").bandwidth == 16e6  # the input is left alone


def test_problem_at_removes_departed_nodes_and_their_links(problem) -> None:
    script = parse_network_events([{"iteration": 3, "node_leaves": "pi1"},
                                   {"iteration": 1, "node": "pi1", "flops_factor": 0.5}])
    before = script.problem_at(problem, 2)
    assert "pi1" in before.network.node_index
    after = script.problem_at(problem, 3)
    assert [n.id for n in after.network.nodes] == ["mcu", "mesh1", "ap", "pi2"]
    assert [(e.source, e.target) for e in after.network.links] == [
        ("mcu", "mesh1"), ("mcu", "ap"), ("ap", "pi2")]
    kept = script.problem_at(problem, 3, drop_departed=False)
    assert [n.id for n in kept.network.nodes] == list(NODES)
    assert kept.network.node("pi1").flops == 200e6
    assert without_nodes(problem, ["pi1"]).network == after.network


def test_departure_and_departed() -> None:
    script = parse_network_events([
        {"iteration": 5, "node_leaves": "pi2"},
        {"iteration": 7, "node_leaves": "pi1"},
        {"iteration": 3, "node_leaves": "pi1"},  # the earliest departure counts
        {"iteration": 0, "node": "mesh1", "jitter": 0.1},
    ])
    assert script.departure("pi1") == 3
    assert script.departure("pi2") == 5
    assert script.departure("mesh1") is None and script.departure("mcu") is None
    assert script.departed(2) == ()
    assert script.departed(3) == ("pi1",)
    assert script.departed(4) == ("pi1",)
    assert script.departed(100) == ("pi2", "pi1")  # file order, once each
    assert script.state_at(100) == ({}, {"mesh1": NodeState(1.0, 0.1)})
