"""Loading problems, networks and model profiles in every format, and round trips."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import networkx as nx
import pytest
import yaml

from pipesl.exceptions import ProblemError
from pipesl.problem import (
    ChainModel,
    Layer,
    Link,
    Network,
    Node,
    Problem,
    TrainingSpec,
    compose_problem,
    dump_network,
    dump_problem,
    load_model,
    load_network,
    load_problem,
    problem_from_dict,
    problem_to_dict,
)
from strategies import TOPOLOGIES, random_network, random_problem

YAML_WITH_UNITS = """\
name: units
description: a problem written with unit strings
network:
  nodes:
    - id: dev0
      flops: "2 TFLOPS"
      memory: "4 GiB"
      overhead: "2 ms"
    - {id: r1, compute: false}
    - {id: es2, flops: "10 TFLOPS", memory: "8 GB", overhead: 0.5 ms}
  links:
    - {source: dev0, target: r1, bandwidth: "100 Mbps", latency: "1 ms"}
    - {source: r1, target: es2, bandwidth: "1 Gbit/s", latency: "50 us", duplex: full}
model:
  name: tiny
  input_bytes: "3 KiB"
  layers:
    - {name: conv1, fwd_flops: "1.5 GFLOP", out_bytes: "512 KiB", param_bytes: "7 kB"}
    - name: fc
      fwd_flops: 1e6            # YAML 1.1 reads this as a string; it is still a number
      bwd_flops: "3 MMACs"
      out_bytes: 40
      param_bytes: "8 Gbit"
      act_bytes: 100
training:
  source: dev0
  batch_size: 128
  micro_batch_size: 16
  schedule: 1f1b
  state_factor: 2.5
  routing: shortest
  labels_at: dev0
"""

EXPECTED = Problem(
    network=Network(
        nodes=(
            Node("dev0", flops=2e12, memory=4 * 2**30, overhead=2e-3),
            Node("r1", compute=False),
            Node("es2", flops=1e13, memory=8e9, overhead=5e-4),
        ),
        links=(
            Link("dev0", "r1", bandwidth=1e8, latency=1e-3),
            Link("r1", "es2", bandwidth=1e9, latency=50e-6, duplex="full"),
        ),
    ),
    model=ChainModel("tiny", 3 * 1024, (
        Layer("conv1", 1.5e9, 3e9, 512 * 1024, 7e3, 512 * 1024),
        Layer("fc", 1e6, 6e6, 40, 1e9, 100),
    )),
    training=TrainingSpec("dev0", 128, 16, "1f1b", 2.5, "shortest", "dev0"),
    name="units",
    description="a problem written with unit strings",
)


def assert_same_problem(a: Problem, b: Problem) -> None:
    """Equal up to float rounding in the last bits (units such as 50 us are inexact)."""
    assert a.name == b.name and a.description == b.description
    assert a.training == b.training
    assert [n.id for n in a.network.nodes] == [n.id for n in b.network.nodes]
    for x, y in zip(a.network.nodes, b.network.nodes, strict=True):
        assert (x.compute, x.kind, x.pos, x.can_compute) == (y.compute, y.kind, y.pos,
                                                             y.can_compute)
        assert (x.flops, x.memory, x.overhead) == pytest.approx((y.flops, y.memory, y.overhead))
    for e, f in zip(a.network.links, b.network.links, strict=True):
        assert (e.source, e.target, e.duplex) == (f.source, f.target, f.duplex)
        assert (e.bandwidth, e.latency) == pytest.approx((f.bandwidth, f.latency))
    assert a.model.name == b.model.name
    assert a.model.input_bytes == pytest.approx(b.model.input_bytes)
    for la, lb in zip(a.model.layers, b.model.layers, strict=True):
        assert la.name == lb.name
        assert (la.fwd_flops, la.bwd_flops, la.out_bytes, la.param_bytes, la.act_bytes) == \
            pytest.approx((lb.fwd_flops, lb.bwd_flops, lb.out_bytes, lb.param_bytes,
                           lb.act_bytes))


def test_yaml_problem_with_unit_strings(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_text(YAML_WITH_UNITS)
    problem = load_problem(path)
    assert_same_problem(problem, EXPECTED)
    assert problem.network.node("r1").can_compute is False
    assert problem.network.node("dev0").memory == 4294967296.0
    assert problem.model.layers[1].param_bytes == 1e9
    # Defaults: bwd = 2 x fwd, act = out, half duplex, latency 0, unbounded memory.
    assert problem.model.layers[0].bwd_flops == 2 * 1.5e9
    assert problem.model.layers[0].act_bytes == 512 * 1024
    assert problem.network.links[0].duplex == "half"
    assert math.isinf(problem.network.node("r1").memory)


def test_json_problem_with_si_numbers_and_defaults(tmp_path: Path) -> None:
    doc = {
        "network": {"nodes": [{"id": "a", "flops": 1e12}, {"id": "b", "flops": 2e12}],
                    "links": [{"source": "a", "target": "b", "bandwidth": 1e8}]},
        "model": {"input_bytes": 10, "layers": [{"name": "x", "fwd_flops": 5, "out_bytes": 4}]},
        "training": {"source": "a", "batch_size": 8},
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    problem = load_problem(path)
    assert problem.name == "p"           # the file stem when no name is given
    assert problem.model.name == "model"
    assert problem.training == TrainingSpec("a", 8)
    assert problem.training.micro_batch_size is None
    assert problem.training.schedule == "gpipe"
    assert problem.training.state_factor == 3.0
    assert problem.training.routing == "optimize"
    assert problem.training.labels_at is None
    assert problem.network.links[0] == Link("a", "b", 1e8, 0.0, "half")
    assert problem.network.nodes[0] == Node("a", 1e12)
    # A file without a recognised suffix is read as YAML (a superset of JSON).
    other = tmp_path / "p.problem"
    other.write_text(json.dumps(doc))
    assert load_problem(other).network == problem.network


def _nx_graph() -> nx.Graph:
    g = nx.Graph()
    g.add_node("dev0", flops=2e12, memory=8e9, overhead=0.002, compute=True, label="ignored")
    g.add_node("r1", compute=False)
    g.add_node("es2", flops=1e13, memory=1.6e10)
    g.add_edge("dev0", "r1", bandwidth=1e8, latency=0.001, duplex="half", color="ignored")
    g.add_edge("r1", "es2", bandwidth=1e9, latency=0.0, duplex="full")
    return g


NX_EXPECTED = Network(
    nodes=(Node("dev0", 2e12, 8e9, 0.002), Node("r1", compute=False),
           Node("es2", 1e13, 1.6e10)),
    links=(Link("dev0", "r1", 1e8, 0.001, "half"), Link("r1", "es2", 1e9, 0.0, "full")),
)


@pytest.mark.parametrize("edges_key", ["edges", "links"])
def test_node_link_json_network(tmp_path: Path, edges_key: str) -> None:
    data = nx.node_link_data(_nx_graph(), edges=edges_key)
    assert edges_key in data
    path = tmp_path / "net.json"
    path.write_text(json.dumps(data))
    assert load_network(path) == NX_EXPECTED


def test_node_link_json_with_integer_ids(tmp_path: Path) -> None:
    g = nx.path_graph(3)
    for n in g:
        g.nodes[n]["flops"] = 1e12
    for u, v in g.edges:
        g.edges[u, v]["bandwidth"] = 1e8
    path = tmp_path / "ints.json"
    path.write_text(json.dumps(nx.node_link_data(g)))
    net = load_network(path)
    assert [n.id for n in net.nodes] == ["0", "1", "2"]
    assert [(e.source, e.target) for e in net.links] == [("0", "1"), ("1", "2")]


def test_graphml_network(tmp_path: Path) -> None:
    path = tmp_path / "net.graphml"
    nx.write_graphml(_nx_graph(), path)
    assert load_network(path) == NX_EXPECTED


def test_graphml_compute_written_as_string(tmp_path: Path) -> None:
    g = _nx_graph()
    g.nodes["r1"]["compute"] = "false"     # a GraphML editor may store it as a string
    g.nodes["r1"]["flops"] = 1e12
    path = tmp_path / "net.graphml"
    nx.write_graphml(g, path)
    assert load_network(path).node("r1").can_compute is False


def test_spec_network_file_with_or_without_the_network_key(tmp_path: Path) -> None:
    section = {"nodes": [{"id": "a", "flops": "1 TFLOPS"}, {"id": "b", "flops": 1e12}],
               "links": [{"source": "a", "target": "b", "bandwidth": "10 Mbps"}]}
    expected = Network((Node("a", 1e12), Node("b", 1e12)), (Link("a", "b", 1e7),))
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(section))
    wrapped = tmp_path / "wrapped.yml"
    wrapped.write_text(yaml.safe_dump({"network": section}))
    as_json = tmp_path / "net.json"
    as_json.write_text(json.dumps(section))
    for path in (bare, wrapped, as_json):
        assert load_network(path) == expected, path


def test_model_profile_file(tmp_path: Path) -> None:
    section = {"name": "m", "input_bytes": "3 KiB", "description": "a profile",
               "source": "hand-written",
               "layers": [{"name": "a", "fwd_flops": "2 GMACs", "out_bytes": "1 MiB"}]}
    expected = ChainModel("m", 3072, (Layer("a", 4e9, 8e9, 2**20, 0.0, 2**20),))
    bare = tmp_path / "m.yaml"
    bare.write_text(yaml.safe_dump(section))
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"model": section}))
    assert load_model(bare) == expected
    assert load_model(wrapped) == expected
    assert expected.num_layers == 1
    assert expected.out_bytes(0) == 3072 and expected.out_bytes(1) == 2**20


def test_problem_file_references_network_and_model_files(tmp_path: Path) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "problems").mkdir()
    nx.write_graphml(_nx_graph(), tmp_path / "nets" / "campus.graphml")
    (tmp_path / "problems" / "tiny.yaml").write_text(yaml.safe_dump(
        {"name": "tiny", "input_bytes": 10,
         "layers": [{"name": "l1", "fwd_flops": 1e9, "out_bytes": 100},
                    {"name": "l2", "fwd_flops": 1e9, "out_bytes": 10}]}))
    path = tmp_path / "problems" / "p.yaml"
    path.write_text("network: ../nets/campus.graphml\nmodel: tiny.yaml\n"
                    "training: {source: dev0, batch_size: 32}\n")
    problem = load_problem(path)      # paths are relative to the problem file
    assert problem.network == NX_EXPECTED
    assert problem.model.name == "tiny"
    assert problem.model.num_layers == 2


def test_compose_problem_from_files_objects_and_mappings(tmp_path: Path) -> None:
    nx.write_graphml(_nx_graph(), tmp_path / "net.graphml")
    model = ChainModel("m", 10, (Layer("a", 1e9, 2e9, 100, act_bytes=100),))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(
        {"model": {"name": "m", "input_bytes": 10,
                   "layers": [{"name": "a", "fwd_flops": 1e9, "out_bytes": 100}]}}))
    from_files = compose_problem(tmp_path / "net.graphml", str(tmp_path / "m.yaml"),
                                 {"source": "dev0", "batch_size": 16, "schedule": "1f1b"},
                                 name="composed")
    from_objects = compose_problem(NX_EXPECTED, model,
                                   TrainingSpec("dev0", 16, schedule="1f1b"), name="composed")
    assert from_files == from_objects
    assert from_files.name == "composed"
    assert from_files.training.schedule == "1f1b"


def test_with_training_revalidates() -> None:
    problem = problem_from_dict(problem_to_dict(EXPECTED))
    assert problem.with_training(batch_size=64).training.batch_size == 64
    with pytest.raises(TypeError, match="unknown training fields"):
        problem.with_training(batchsize=64)
    with pytest.raises(ProblemError, match=r"training\.source"):
        problem.with_training(source="r1")


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_problem_round_trip_hand_written(tmp_path: Path, suffix: str) -> None:
    src = tmp_path / "units.yaml"
    src.write_text(YAML_WITH_UNITS)
    problem = load_problem(src)
    out = tmp_path / f"again{suffix}"
    dump_problem(problem, out)
    assert load_problem(out) == problem
    if suffix == ".json":
        doc = json.loads(out.read_text())
        assert doc["network"]["nodes"][0]["memory"] == 4 * 2**30   # SI numbers in output
        assert "memory" not in doc["network"]["nodes"][1]           # unbounded is omitted


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_problem_round_trip_random(tmp_path: Path, suffix: str) -> None:
    for seed in range(30):
        problem = random_problem(random.Random(seed))
        path = tmp_path / f"p{seed}{suffix}"
        dump_problem(problem, path)
        assert load_problem(path) == problem, seed
        assert problem_from_dict(problem_to_dict(problem)) == problem, seed


@pytest.mark.parametrize("suffix", [".graphml", ".json", ".yaml"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_network_round_trip(tmp_path: Path, suffix: str, topology: str) -> None:
    for seed in range(5):
        net = random_network(random.Random(seed), 7, topology, memory=(1e6, 1e10))
        path = tmp_path / f"{topology}{seed}{suffix}"
        dump_network(net, path)
        assert load_network(path) == net, (topology, seed)


@pytest.mark.parametrize("suffix", [".graphml", ".json", ".yaml"])
def test_network_round_trip_keeps_kind_and_position(tmp_path: Path, suffix: str) -> None:
    net = Network(
        (Node("a", 1e12, 1e9, 0.001, kind="device", pos=(0.0, 1.5)),
         Node("b", 0.0, compute=False, kind="relay", pos=(2.0, -1.0)),
         Node("c", 5e12, kind="server")),
        (Link("a", "b", 1e8, 1e-3), Link("c", "b", 2e8, 0.0, "full")),
    )
    path = tmp_path / f"net{suffix}"
    dump_network(net, path)
    assert load_network(path) == net


def test_network_graph_view() -> None:
    g = NX_EXPECTED.graph
    assert set(g.nodes) == {"dev0", "r1", "es2"}
    assert g.edges["es2", "r1"]["duplex"] == "full"
    assert g.edges["dev0", "r1"]["index"] == 0
    assert g.nodes["r1"]["compute"] is False
    assert NX_EXPECTED.link_between("r1", "dev0") == NX_EXPECTED.links[0]
    assert NX_EXPECTED.link_between("dev0", "es2") is None
    assert [n.id for n in NX_EXPECTED.compute_nodes] == ["dev0", "es2"]
    assert len(NX_EXPECTED) == 3 and [n.id for n in NX_EXPECTED] == ["dev0", "r1", "es2"]



GRAPHML = """<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="f" for="node" attr.name="flops" attr.type="double"/>
  <key id="c" for="node" attr.name="compute" attr.type="boolean"/>
  <key id="label" for="node" attr.name="label" attr.type="string"/>
  <key id="bw" for="edge" attr.name="bandwidth" attr.type="double"/>
  <key id="dx" for="edge" attr.name="duplex" attr.type="string"/>
  <graph edgedefault="undirected">
    <node id="a"><data key="f">1e12</data><data key="label">Device A</data></node>
    <node id="hub"><data key="c">false</data></node>
    <node id="b"><data key="f">2e12</data></node>
    <edge source="hub" target="a"><data key="bw">1e8</data></edge>
    <edge source="b" target="hub"><data key="bw">1e9</data><data key="dx">full</data></edge>
  </graph>
</graphml>
"""


def test_graphml_links_keep_the_files_order_and_orientation(tmp_path: Path) -> None:
    path = tmp_path / "hand.graphml"
    path.write_text(GRAPHML)
    net = load_network(path)
    assert net.links == (Link("hub", "a", 1e8), Link("b", "hub", 1e9, 0.0, "full"))
    assert net.nodes == (Node("a", 1e12), Node("hub", compute=False), Node("b", 2e12))


def test_dumped_files_are_read_by_networkx(tmp_path: Path) -> None:
    dump_network(NX_EXPECTED, tmp_path / "n.graphml")
    dump_network(NX_EXPECTED, tmp_path / "n.json")
    from_graphml = nx.read_graphml(tmp_path / "n.graphml")
    from_json = nx.node_link_graph(json.loads((tmp_path / "n.json").read_text()))
    for g in (from_graphml, from_json):
        assert set(g.nodes) == {"dev0", "r1", "es2"}
        assert g.edges["es2", "r1"]["bandwidth"] == 1e9
        assert g.edges["dev0", "r1"]["duplex"] == "half"
        assert g.nodes["r1"]["compute"] is False
        assert g.nodes["dev0"]["flops"] == 2e12
