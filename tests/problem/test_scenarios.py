"""The built-in data files (scenarios, networks, model profiles) and the examples/ problems.

No torch: the model profiles are checked against hand counts and published totals, and
``tools/analytic_profiles.py`` must regenerate them byte for byte.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import sys
from pathlib import Path
from types import ModuleType

import networkx as nx
import pytest
import yaml

from pipesl.cost import evaluate
from pipesl.plan import Plan, Stage, load_plan
from pipesl.problem import (
    DEFAULT_SCENARIO,
    builtin_names,
    list_builtins,
    load_model,
    load_network,
    load_problem,
)
from pipesl.problem.scenarios import builtin_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TOOL = REPO / "tools" / "analytic_profiles.py"

EXPECTED = {
    "scenario": {"edge-campus", "relay-line", "star-hub", "mesh"},
    "network": {"edge-campus", "relay-line", "star-hub", "mesh"},
    "model": {"vgg16-cifar", "resnet50-imagenet"},
}
DRAWABLE_KINDS = {"device", "relay", "server", "switch"}


def _problem_graph(name: str | Path) -> tuple[nx.Graph, str]:
    problem = load_problem(name)
    return problem.network.graph, problem.training.source


# ---------------------------------------------------------------- every built-in loads


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_expected_builtins_are_shipped(kind: str) -> None:
    assert EXPECTED[kind] <= set(builtin_names(kind))


@pytest.mark.parametrize("name", builtin_names("scenario"))
def test_scenario_loads_by_name(name: str) -> None:
    problem = load_problem(name)
    assert problem.name == name
    # One line, shown by `pipesl scenarios`.
    assert problem.description and "\n" not in problem.description
    info = {b.name: b for b in list_builtins("scenario")}[name]
    assert info.description == problem.description
    # The scenario names a built-in network and model rather than inlining them.
    doc = yaml.safe_load(builtin_path("scenario", name).read_text())
    assert doc["network"] in builtin_names("network")
    assert doc["model"] in builtin_names("model")
    assert problem.network == load_network(doc["network"])
    assert problem.model == load_model(doc["model"])
    assert nx.is_connected(problem.network.graph)


@pytest.mark.parametrize("name", builtin_names("network"))
def test_network_loads_by_name_and_is_drawable(name: str) -> None:
    net = load_network(name)
    assert nx.is_connected(net.graph)
    for node in net.nodes:
        assert node.kind in DRAWABLE_KINDS, node
        assert node.pos is not None, node
        assert node.can_compute == (node.kind in ("device", "server")), node
    positions = [n.pos for n in net.nodes]
    assert len(set(positions)) == len(positions), "two nodes drawn on the same spot"
    assert len(net.compute_nodes) >= 3
    assert {e.duplex for e in net.links} == {"half", "full"}


@pytest.mark.parametrize("name", builtin_names("model"))
def test_model_loads_by_name(name: str) -> None:
    model = load_model(name)
    assert model.name == name
    assert model.num_layers >= 3
    assert len({x.name for x in model.layers}) == model.num_layers
    assert sum(x.fwd_flops for x in model.layers) > 0
    for layer in model.layers:
        assert layer.fwd_flops >= 0 and layer.bwd_flops >= 0
        assert layer.out_bytes > 0 and layer.act_bytes > 0
        assert layer.param_bytes % 4 == 0 and layer.out_bytes % 4 == 0
    if name in ("vgg16-cifar", "resnet50-imagenet"):  # analytic: bwd = 2 x fwd by convention
        for layer in model.layers:
            assert layer.fwd_flops > 0
            assert layer.bwd_flops == 2 * layer.fwd_flops


@pytest.mark.parametrize("name", builtin_names("scenario"))
def test_scenario_has_a_feasible_two_stage_plan(name: str) -> None:
    """Layer 1 on the source, the rest on the fastest other node over a shortest route."""
    problem = load_problem(name)
    net, tr = problem.network, problem.training
    server = max((n for n in net.compute_nodes if n.id != tr.source), key=lambda n: n.flops)
    route = tuple(nx.shortest_path(net.graph, tr.source, server.id))
    labels = None
    if tr.labels_at is not None:
        labels = tuple(nx.shortest_path(net.graph, server.id, tr.labels_at))
    L = problem.model.num_layers
    plan = Plan((Stage(tr.source, 1, 1), Stage(server.id, 2, L)), (route,), 1, labels)
    ev = evaluate(problem, plan)
    assert ev.feasible, ev.violations
    assert math.isfinite(ev.objective_s) and ev.objective_s > 0


# ---------------------------------------------------------------- topologies


def test_default_scenario_is_edge_campus_and_multi_hop() -> None:
    assert DEFAULT_SCENARIO == "edge-campus"
    problem = load_problem(DEFAULT_SCENARIO)
    g, source = problem.network.graph, problem.training.source
    assert 10 <= len(problem.network) <= 16
    assert problem.network.node(source).kind == "device"
    others = [n for n in problem.network.compute_nodes if n.id != source]
    assert len(others) >= 3
    for node in others:
        assert nx.shortest_path_length(g, source, node.id) >= 2, node.id
    # Heterogeneous servers; the device is the weakest compute node.
    assert len({n.flops for n in others}) == len(others)
    assert problem.network.node(source).flops < min(n.flops for n in others)
    tr = problem.training
    assert (tr.batch_size, tr.micro_batch_size, tr.schedule, tr.state_factor, tr.routing,
            tr.labels_at) == (128, None, "gpipe", 3.0, "optimize", None)
    assert problem.model.name == "vgg16-cifar"


def test_star_hub_hub_is_a_cut_vertex_on_every_route() -> None:
    g, _ = _problem_graph("star-hub")
    assert "hub" in set(nx.articulation_points(g))
    assert all("hub" in (u, v) for u, v in g.edges)
    assert nx.number_connected_components(g.subgraph(set(g) - {"hub"})) == len(g) - 1


def test_relay_line_is_a_chain_of_wireless_relays() -> None:
    problem = load_problem("relay-line")
    g, source = problem.network.graph, problem.training.source
    relays = [n.id for n in problem.network if n.kind == "relay"]
    assert 3 <= len(relays) <= 4
    chain = nx.shortest_path(g, source, relays[-1])
    assert chain == [source, *relays]
    for u, v in itertools.pairwise(chain):
        assert problem.network.link_between(u, v).duplex == "half"
    for node in problem.network.compute_nodes:
        if node.id != source:
            assert nx.shortest_path_length(g, source, node.id) >= 3
    assert problem.training.schedule == "1f1b"


def test_mesh_has_alternative_routes() -> None:
    problem = load_problem("mesh")
    g, source = problem.network.graph, problem.training.source
    for node in problem.network.compute_nodes:
        if node.id != source:
            assert nx.node_connectivity(g, source, node.id) >= 2, node.id
            assert len(list(nx.all_simple_paths(g, source, node.id, cutoff=6))) >= 3
    assert problem.model.name == "resnet50-imagenet"


def test_scenarios_cover_u_shape_1f1b_and_resnet() -> None:
    problems = [load_problem(name) for name in builtin_names("scenario")]
    assert any(p.training.labels_at == p.training.source for p in problems)
    assert any(p.training.schedule == "1f1b" for p in problems)
    assert any(p.model.name == "resnet50-imagenet" for p in problems)


# ---------------------------------------------------------------- analytic model profiles


def test_resnet50_totals_match_published_figures() -> None:
    model = load_model("resnet50-imagenet")
    assert model.input_bytes == 3 * 224 * 224 * 4
    assert [x.name for x in model.layers[:2]] == ["stem", "layer1.0"]
    assert model.num_layers == 1 + 16 + 1
    fwd = sum(x.fwd_flops for x in model.layers)
    assert fwd == pytest.approx(2 * 4.09e9, rel=0.02)
    params = sum(x.param_bytes for x in model.layers) / 4
    assert params == pytest.approx(25.557e6, rel=0.01)
    # Stem by hand: conv7x7/2 3->64 on 224x224 gives 64x112x112; maxpool3x3/2 -> 64x56x56.
    stem = model.layers[0]
    assert stem.fwd_flops == 2 * (64 * 112 * 112) * (3 * 7 * 7)
    assert stem.out_bytes == 64 * 56 * 56 * 4
    assert stem.param_bytes == (64 * 3 * 7 * 7 + 2 * 64) * 4
    assert model.layers[-1].out_bytes == 1000 * 4


def test_vgg16_cifar_first_layers_match_a_hand_count() -> None:
    model = load_model("vgg16-cifar")
    assert model.input_bytes == 3 * 32 * 32 * 4
    assert model.num_layers == 16  # 13 conv units (pools merged) + 3 linear units
    conv1 = model.layers[0]
    # conv3x3, 3 -> 64 channels, padding 1 on 32x32: 64*32*32 outputs, 3*3*3 MACs each.
    assert conv1.fwd_flops == 2 * 64 * 32 * 32 * 3 * 3 * 3  # 3,538,944
    assert conv1.out_bytes == 64 * 32 * 32 * 4  # 262,144
    assert conv1.param_bytes == (64 * 3 * 3 * 3 + 64) * 4  # 7,168 (weights + bias)
    assert conv1.act_bytes == 3 * 32 * 32 * 4  # its input, kept by the conv
    conv2 = model.layers[1]  # conv 64 -> 64 + ReLU + max-pool 2x2
    assert conv2.fwd_flops == 2 * 64 * 32 * 32 * 64 * 3 * 3
    assert conv2.out_bytes == 64 * 16 * 16 * 4
    conv_params = sum(x.param_bytes for x in model.layers[:13]) / 4
    assert conv_params == 14_714_688
    conv_fwd = sum(x.fwd_flops for x in model.layers[:13])
    assert conv_fwd == pytest.approx(2 * 0.31e9, rel=0.02)
    assert model.layers[-1].out_bytes == 10 * 4


def _load_tool(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("analytic_profiles", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules: register while testing.
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_analytic_profiles_regenerates_the_shipped_files(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _load_tool(monkeypatch)
    assert tool.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("[ok]") >= 6
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{name}.yaml" for name in EXPECTED["model"])
    for name in written:
        shipped = builtin_path("model", Path(name).stem)
        assert (tmp_path / name).read_bytes() == shipped.read_bytes(), name


# ---------------------------------------------------------------- examples/


@pytest.mark.parametrize("name", ["tiny-line.yaml", "tiny-star.json", "tiny-ushape.yaml"])
def test_examples_load(name: str) -> None:
    problem = load_problem(EXAMPLES / name)
    assert problem.name == Path(name).stem
    assert problem.model.num_layers >= 3


def test_tiny_star_routes_share_the_hub() -> None:
    g, _ = _problem_graph(EXAMPLES / "tiny-star.json")
    assert "hub" in set(nx.articulation_points(g))


def test_tiny_line_plan_objective_by_hand() -> None:
    problem = load_problem(EXAMPLES / "tiny-line.yaml")
    plan = load_plan(EXAMPLES / "tiny-line.plan.json", problem)
    b, B = 2, 8
    M = math.ceil(B / b)
    # SPEC section 3 with the literal numbers of tiny-line.yaml.
    t_src = b * (1e6 + 2e6 + 2e6 + 4e6) / 1e9 + 2 * 0.001
    x_src_r = 8 * b * 1000 / 1e6 + 0.001  # half duplex: load 2x
    x_r_srv = 8 * b * 1000 / 8e7 + 0.0  # full duplex: load x per direction
    t_srv = b * (4e6 + 8e6 + 1e6 + 2e6) / 4e9 + 2 * 0.0
    first = t_src + 2 * x_src_r + 2 * x_r_srv + t_srv
    bottleneck = max(t_src, 2 * x_src_r, x_r_srv, t_srv)
    expected = first + (M - 1) * bottleneck
    assert expected == pytest.approx(0.1639)  # the value written in tiny-line.yaml
    ev = evaluate(problem, plan)
    assert ev.micro_batch_size == b and ev.num_micro_batches == M
    assert ev.objective_s == pytest.approx(expected, rel=1e-12)
    assert ev.first_micro_batch_s == pytest.approx(first, rel=1e-12)
    assert ev.bottleneck_resource == "link:src-r"
    assert ev.feasible


def test_tiny_ushape_label_route_by_hand() -> None:
    problem = load_problem(EXAMPLES / "tiny-ushape.yaml")
    b = 2
    plan = Plan((Stage("src", 1, 1), Stage("srv", 2, 3)), (("src", "r", "srv"),), b,
                ("srv", "r", "src"))
    t_src = b * (1e6 + 2e6) / 1e9
    x_fwd = [8 * b * 1000 / 1e7, 8 * b * 1000 / 1e8]  # layer 1 out: src>r, r>srv
    t_srv = b * (1e7 + 2e7 + 1e6 + 2e6) / 1e10
    x_lab = [8 * b * 10 / 1e8, 8 * b * 10 / 1e7]  # layer 3 out: srv>r, r>src
    first = t_src + 2 * sum(x_fwd) + t_srv + 2 * sum(x_lab)
    loads = {
        "node:src": t_src,
        "link:src-r": 2 * x_fwd[0] + 2 * x_lab[1],  # both hops share the half-duplex link
        "link:r>srv": x_fwd[1] + x_lab[0],
        "link:srv>r": x_fwd[1] + x_lab[0],
        "node:srv": t_srv,
    }
    expected = first + (math.ceil(4 / b) - 1) * max(loads.values())
    ev = evaluate(problem, plan)
    assert ev.objective_s == pytest.approx(expected, rel=1e-12)
    assert ev.resource_loads == pytest.approx(loads, rel=1e-12)
