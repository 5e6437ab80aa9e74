"""Graph files from other tools: misspelt SPEC attributes are refused (not silently
defaulted), foreign attributes ignored, Topology Zoo files read as they are."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipesl.exceptions import ProblemError
from pipesl.problem import load_network
from pipesl.problem.graphml import FIBRE_SPEED, great_circle_m

EXAMPLES = Path(__file__).parents[2] / "examples"

GRAPHML = """<?xml version="1.0"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="f" for="node" attr.name="flops" attr.type="double"/>
  <key id="o" for="{owner}" attr.name="{name}" attr.type="double"/>
  <key id="b" for="edge" attr.name="bandwidth" attr.type="double"/>
  <key id="c" for="edge" attr.name="color" attr.type="string"/>
  <graph edgedefault="undirected">
    <node id="a"><data key="f">1e12</data><data key="o">0.5</data></node>
    <node id="b"><data key="f">1e12</data></node>
    <edge source="a" target="b"><data key="b">1e9</data><data key="c">red</data></edge>
  </graph>
</graphml>
"""


@pytest.mark.parametrize(("owner", "name", "meant"), [
    ("node", "overhed", "overhead"), ("node", "memroy", "memory"), ("node", "Memory", "memory"),
    ("edge", "latncy", "latency"), ("all", "bandwith", "bandwidth")])
def test_a_misspelt_graphml_attribute_is_refused_with_its_close_match(
        tmp_path: Path, owner: str, name: str, meant: str) -> None:
    path = tmp_path / "net.graphml"
    path.write_text(GRAPHML.format(owner=owner, name=name))
    with pytest.raises(ProblemError) as info:
        load_network(path)
    message = str(info.value)
    assert name in message and f"did you mean {meant}" in message and "\n" not in message


def test_foreign_graphml_attributes_are_still_ignored(tmp_path: Path) -> None:
    path = tmp_path / "net.graphml"
    path.write_text(GRAPHML.format(owner="node", name="weight"))
    net = load_network(path)
    assert [n.id for n in net.nodes] == ["a", "b"] and net.links[0].bandwidth == 1e9


def _node_link(node: dict[str, object], edge: dict[str, object]) -> str:
    return json.dumps({"directed": False, "multigraph": False, "graph": {},
                       "nodes": [{"id": "a", "flops": 1e12, **node}, {"id": "b", "flops": 1e12}],
                       "edges": [{"source": "a", "target": "b", "bandwidth": 1e9, **edge}]})


@pytest.mark.parametrize(("node", "edge", "field", "meant"), [
    ({"memroy": "1 GB"}, {}, "network.nodes[0].memroy", "memory"),
    ({}, {"latncy": 0.01}, "network.links[0].latncy", "latency"),
    ({"overhed": 0.1}, {}, "network.nodes[0].overhed", "overhead"),
])
def test_a_misspelt_node_link_attribute_is_refused(tmp_path: Path, node: dict[str, object],
                                                   edge: dict[str, object], field: str,
                                                   meant: str) -> None:
    path = tmp_path / "net.json"
    path.write_text(_node_link(node, edge))
    with pytest.raises(ProblemError) as info:
        load_network(path)
    assert field in str(info.value) and f"did you mean {meant}" in str(info.value)


def test_node_link_foreign_attributes_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "net.json"
    path.write_text(_node_link({"label": "A", "color": "red"}, {"weight": 3}))
    assert load_network(path).node("a").flops == 1e12


def test_a_topology_zoo_file_reads_speeds_labels_and_positions() -> None:
    net = load_network(EXAMPLES / "zoo-mini.graphml")
    assert [n.id for n in net.nodes] == ["New York", "Chicago", "Washington DC", "Atlanta"]
    assert net.node("Chicago").pos == (-87.65005, 41.85003)  # (longitude, latitude)
    speeds = {e.ends: e.bandwidth for e in net.links}
    assert speeds[frozenset(("New York", "Chicago"))] == 10e9  # LinkSpeedRaw
    assert speeds[frozenset(("New York", "Washington DC"))] == 2.5e9  # 2.5 G
    assert speeds[frozenset(("Washington DC", "Atlanta"))] == 622e6  # 622 M
    assert speeds[frozenset(("Chicago", "Atlanta"))] == 1e9
    assert all(e.latency == 0 for e in net.links)  # no great-circle latency unless asked
    assert not net.compute_nodes  # a bare topology: every node a relay until flops are given


def test_great_circle_latency_on_request() -> None:
    net = load_network(EXAMPLES / "zoo-mini.graphml", geo_latency=True)
    link = net.link_between("New York", "Chicago")
    assert link is not None
    # New York - Chicago is about 1145 km along the great circle.
    assert 1.13e6 < link.latency * FIBRE_SPEED < 1.16e6
    assert link.latency == pytest.approx(
        great_circle_m(-74.00597, 40.71427, -87.65005, 41.85003) / FIBRE_SPEED, rel=1e-12)


def test_great_circle_distance_by_hand() -> None:
    # A quarter of the equator, and one degree of latitude.
    assert great_circle_m(0, 0, 90, 0) == pytest.approx(math.pi / 2 * 6_371_000.0, rel=1e-12)
    assert great_circle_m(10, 0, 10, 1) == pytest.approx(math.pi / 180 * 6_371_000.0, rel=1e-9)


def test_zoo_labels_are_not_ids_when_they_repeat(tmp_path: Path) -> None:
    text = (EXAMPLES / "zoo-mini.graphml").read_text().replace("Atlanta", "Chicago")
    path = tmp_path / "dup.graphml"
    path.write_text(text)
    assert [n.id for n in load_network(path).nodes] == ["0", "1", "2", "3"]


def test_a_bad_zoo_link_speed_is_named(tmp_path: Path) -> None:
    text = (EXAMPLES / "zoo-mini.graphml").read_text().replace(
        '<data key="d9">M</data>', '<data key="d9">X</data>')
    path = tmp_path / "bad.graphml"
    path.write_text(text)
    with pytest.raises(ProblemError, match=r"links\[2\]\.LinkSpeed"):
        load_network(path)
