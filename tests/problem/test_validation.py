"""Every validation error of the problem loaders: its type, the field it names and the rule."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from pipesl.cost.fits import check_source_alone
from pipesl.exceptions import InfeasibleError, PipeslError, ProblemError
from pipesl.problem import load_model, load_network, load_problem, problem_from_dict
from pipesl.problem.parse import MAX_BATCH_SIZE
from pipesl.solvers import solve

BASE: dict[str, Any] = {
    "network": {
        "nodes": [
            {"id": "dev0", "flops": 1e12, "memory": 1e9, "overhead": 1e-3},
            {"id": "r1", "compute": False},
            {"id": "es2", "flops": 4e12, "memory": 8e9},
        ],
        "links": [
            {"source": "dev0", "target": "r1", "bandwidth": 1e8, "latency": 1e-3},
            {"source": "r1", "target": "es2", "bandwidth": 1e9, "duplex": "full"},
        ],
    },
    "model": {
        "name": "m",
        "input_bytes": 3072,
        "layers": [
            {"name": "l1", "fwd_flops": 1e9, "out_bytes": 1e4, "param_bytes": 1e3},
            {"name": "l2", "fwd_flops": 1e9, "bwd_flops": 2e9, "out_bytes": 10,
             "param_bytes": 1e3, "act_bytes": 10},
        ],
    },
    "training": {"source": "dev0", "batch_size": 32},
}

DELETE = object()


def mutated(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with ``("network.nodes[0].flops", value)`` changes (DELETE removes the key)."""
    doc = copy.deepcopy(BASE)
    for path, value in changes:
        parts = re.findall(r"[^.\[\]]+", path)
        target: Any = doc
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


def test_base_document_is_valid() -> None:
    problem = problem_from_dict(copy.deepcopy(BASE))
    assert problem.training.source == "dev0"


def expect(doc: Any, field: str, rule: str, error: type[Exception] = ProblemError) -> Exception:
    with pytest.raises(error) as info:
        problem_from_dict(doc)
    err = info.value
    message = str(err)
    if isinstance(err, ProblemError):
        assert err.field == field, message
    if field:
        assert message.startswith(f"{field}: "), message
    assert rule in message, message
    return err


NAN, INF = math.nan, math.inf

NUMBER_CASES = [
    # (field, value, rule)
    ("network.nodes[0].flops", -1.0, "is negative; must be >= 0"),
    ("network.nodes[0].flops", NAN, "is NaN"),
    ("network.nodes[0].flops", INF, "is infinite; must be a finite number"),
    ("network.nodes[0].flops", "fast", "is not a quantity"),
    ("network.nodes[0].flops", "8 GB", "unknown unit 'GB' for a flop_rate quantity"),
    ("network.nodes[0].flops", 1e31, "is too large"),
    ("network.nodes[0].memory", -1, "is negative; must be >= 0"),
    ("network.nodes[0].memory", NAN, "is NaN"),
    ("network.nodes[0].memory", -INF, "is infinite"),
    ("network.nodes[0].memory", "8 Gbps", "unknown unit 'Gbps' for a bytes quantity"),
    ("network.nodes[0].overhead", -1e-3, "is negative; must be >= 0"),
    ("network.nodes[0].overhead", NAN, "is NaN"),
    ("network.nodes[0].overhead", INF, "is infinite"),
    ("network.nodes[0].overhead", "2 GB", "unknown unit 'GB' for a seconds quantity"),
    ("network.links[0].bandwidth", 0, "is zero; must be > 0"),
    ("network.links[0].bandwidth", -1e8, "is negative; must be > 0"),
    ("network.links[0].bandwidth", NAN, "is NaN"),
    ("network.links[0].bandwidth", INF, "is infinite"),
    ("network.links[0].bandwidth", "8 GB", "unknown unit 'GB' for a bandwidth quantity"),
    ("network.links[0].bandwidth", "100 mbps", "unknown unit 'mbps'"),
    ("network.links[0].bandwidth", DELETE, "is missing; it is required"),
    ("network.links[0].latency", -1e-3, "is negative"),
    ("network.links[0].latency", NAN, "is NaN"),
    ("network.links[0].latency", INF, "is infinite"),
    ("model.input_bytes", -1, "is negative"),
    ("model.input_bytes", DELETE, "is missing"),
    ("model.layers[0].fwd_flops", -1, "is negative"),
    ("model.layers[0].fwd_flops", NAN, "is NaN"),
    ("model.layers[0].fwd_flops", "1 TFLOPS", "unknown unit 'TFLOPS' for a flops quantity"),
    ("model.layers[0].fwd_flops", DELETE, "is missing"),
    ("model.layers[0].bwd_flops", -2e9, "is negative"),
    ("model.layers[0].bwd_flops", INF, "is infinite"),
    ("model.layers[0].out_bytes", -1, "is negative"),
    ("model.layers[0].out_bytes", NAN, "is NaN"),
    ("model.layers[0].out_bytes", DELETE, "is missing"),
    ("model.layers[0].param_bytes", -1, "is negative"),
    ("model.layers[0].param_bytes", INF, "is infinite"),
    ("model.layers[1].act_bytes", -1, "is negative"),
    ("model.layers[1].act_bytes", NAN, "is NaN"),
    ("training.state_factor", -1.0, "must be a finite number in [0, "),
    ("training.state_factor", NAN, "must be a finite number in [0, "),
    ("training.state_factor", INF, "must be a finite number in [0, "),
    ("training.state_factor", "3", "must be a number"),
    ("training.state_factor", True, "must be a number"),
    ("training.state_factor", 10**400, "must be a finite number in [0, "),
]


@pytest.mark.parametrize(("field", "value", "rule"), NUMBER_CASES)
def test_numbers(field: str, value: Any, rule: str) -> None:
    expect(mutated((field, value)), field, rule)


def test_zero_is_fine_where_it_means_something() -> None:
    doc = mutated(("network.links[0].latency", 0), ("network.nodes[0].overhead", 0),
                  ("model.layers[0].fwd_flops", 0), ("model.layers[0].param_bytes", 0),
                  ("network.nodes[2].memory", 0), ("training.state_factor", 0))
    problem = problem_from_dict(doc)
    assert problem.model.layers[0].bwd_flops == 0       # 2 x 0
    assert problem.network.node("es2").memory == 0
    # Unbounded memory may be written as inf (YAML .inf) or omitted.
    doc = mutated(("network.nodes[2].memory", INF), ("network.nodes[0].memory", "inf"))
    problem = problem_from_dict(doc)
    assert math.isinf(problem.network.node("es2").memory)
    assert math.isinf(problem.network.node("dev0").memory)


STRUCTURE_CASES = [
    # Nodes.
    (("network.nodes", []), "network.nodes", "is empty; a network needs at least one node"),
    (("network.nodes", "dev0"), "network.nodes", "must be a list"),
    (("network.nodes", DELETE), "network.nodes", "is missing"),
    (("network.nodes[1]", "r1"), "network.nodes[1]", "must be a mapping"),
    (("network.nodes[1].id", "dev0"), "network.nodes[1].id",
     "is a duplicate id (also nodes[0])"),
    (("network.nodes[0].id", DELETE), "network.nodes[0].id", "is missing"),
    (("network.nodes[0].id", ""), "network.nodes[0].id", "must be a non-empty string"),
    (("network.nodes[0].id", True), "network.nodes[0].id", "must be a non-empty string"),
    (("network.nodes[0].id", ["dev0"]), "network.nodes[0].id", "must be a non-empty string"),
    (("network.nodes[0].id", "x" * 201), "network.nodes[0].id", "is longer than 200"),
    (("network.nodes[0].flop", 1e12), "network.nodes[0].flop", "is not a known field"),
    (("network.nodes[0].compute", "yes"), "network.nodes[0].compute", "must be true or false"),
    (("network.nodes[0].kind", 3), "network.nodes[0].kind", "must be a string"),
    (("network.nodes[0].pos", [1]), "network.nodes[0].pos",
     "must be a list of two finite numbers"),
    (("network.nodes[0].pos", [1, NAN]), "network.nodes[0].pos",
     "must be a list of two finite numbers"),
    (("network.nodes[0].pos", "0,0"), "network.nodes[0].pos",
     "must be a list of two finite numbers"),
    # Links.
    (("network.links", {"source": "dev0"}), "network.links", "must be a list"),
    (("network.links[0].target", "zz"), "network.links[0].target", "is not the id of a node"),
    (("network.links[0].source", "zz"), "network.links[0].source", "is not the id of a node"),
    (("network.links[0].source", DELETE), "network.links[0].source", "is missing"),
    (("network.links[0].target", "dev0"), "network.links[0]", "is a self-loop on 'dev0'"),
    (("network.links[0].bandwith", 1e8), "network.links[0].bandwith", "is not a known field"),
    (("network.links[0].duplex", "simplex"), "network.links[0].duplex",
     "must be one of half, full"),
    (("network.links[0].duplex", True), "network.links[0].duplex", "must be one of half, full"),
    # Model.
    (("model.layers", []), "model.layers", "is empty; a model needs at least one layer"),
    (("model.layers", "conv1"), "model.layers", "must be a list"),
    (("model.layers", {"name": "l1"}), "model.layers", "must be a list"),
    (("model.layers", DELETE), "model.layers", "is missing"),
    (("model.layers[0]", 5), "model.layers[0]", "must be a mapping"),
    (("model.layers[0].name", DELETE), "model.layers[0].name", "is missing"),
    (("model.layers[0].fwd_flop", 1), "model.layers[0].fwd_flop", "is not a known field"),
    (("model.params", 1), "model.params", "is not a known field"),
    # Training.
    (("training.source", DELETE), "training.source", "is missing"),
    (("training.source", "zz"), "training.source", "is not the id of a node in the network"),
    (("training.source", "r1"), "training.source", "cannot compute"),
    (("training.labels_at", "zz"), "training.labels_at",
     "is not the id of a node in the network"),
    (("training.labels_at", ["dev0"]), "training.labels_at", "must be a non-empty string"),
    (("training.batch_size", 0), "training.batch_size", "must be >= 1"),
    (("training.batch_size", -4), "training.batch_size", "must be >= 1"),
    (("training.batch_size", 1.5), "training.batch_size", "must be an integer"),
    (("training.batch_size", True), "training.batch_size", "must be an integer"),
    (("training.batch_size", "128"), "training.batch_size", "must be an integer"),
    (("training.batch_size", DELETE), "training.batch_size", "is missing"),
    (("training.batch_size", MAX_BATCH_SIZE + 1), "training.batch_size",
     f"must be <= {MAX_BATCH_SIZE}"),
    (("training.micro_batch_size", 0), "training.micro_batch_size", "must be >= 1"),
    (("training.micro_batch_size", 33), "training.micro_batch_size", "must be <= 32"),
    (("training.micro_batch_size", 2.5), "training.micro_batch_size", "must be an integer"),
    (("training.micro_batch_size", False), "training.micro_batch_size", "must be an integer"),
    (("training.schedule", "pipedream"), "training.schedule", "must be one of gpipe, 1f1b"),
    (("training.schedule", "GPipe"), "training.schedule", "must be one of gpipe, 1f1b"),
    (("training.routing", "fastest"), "training.routing", "must be one of optimize, shortest"),
    (("training.microbatch", 4), "training.microbatch", "is not a known field"),
    # The document.
    (("trainig", {}), "trainig", "is not a known field"),
    (("training", DELETE), "training", "is missing"),
    (("model", DELETE), "model", "is missing"),
    (("network", DELETE), "network", "is missing"),
    (("network", 5), "network", "must be a mapping"),
    (("network", ["dev0"]), "network", "must be a mapping"),
    (("training", "dev0"), "training", "must be a mapping"),
    (("network", "no-such-network.yaml"), "network", "is neither a file nor a built-in network"),
    (("model", "no-such-model"), "model", "is neither a file nor a built-in model"),
]


@pytest.mark.parametrize(("change", "field", "rule"), STRUCTURE_CASES)
def test_structure(change: tuple[str, Any], field: str, rule: str) -> None:
    expect(mutated(change), field, rule)


def test_compute_true_needs_flops() -> None:
    doc = mutated(("network.nodes[1].compute", True))
    expect(doc, "network.nodes[1].flops", "must be > 0 on a node with compute: true")
    # flops > 0 with compute: false is a relay, not an error.
    problem = problem_from_dict(mutated(("network.nodes[1].flops", 1e12)))
    assert not problem.network.node("r1").can_compute


@pytest.mark.parametrize("reverse", [False, True])
def test_duplicate_links_in_either_orientation(reverse: bool) -> None:
    doc = copy.deepcopy(BASE)
    dup = {"source": "r1", "target": "dev0"} if reverse else {"source": "dev0", "target": "r1"}
    doc["network"]["links"].append({**dup, "bandwidth": 1e9})
    expect(doc, "network.links[2]", "duplicates links[0] between")


def test_source_that_cannot_compute_because_flops_is_zero() -> None:
    expect(mutated(("network.nodes[0].flops", 0)), "training.source", "cannot compute")
    expect(mutated(("network.nodes[0].compute", False)), "training.source", "cannot compute")


def test_labels_unreachable_from_the_source() -> None:
    doc = copy.deepcopy(BASE)
    doc["network"]["nodes"].append({"id": "island", "flops": 1e12})
    doc["training"]["labels_at"] = "island"
    expect(doc, "training.labels_at", "is not reachable from the source 'dev0'")


# ---------------------------------------------------------------- infeasible problems

TOO_BIG = 1e12   # bytes of parameters: never fits in dev0's 1e9 bytes


def _isolated_source(links: list[dict[str, Any]], param_bytes: float) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["network"]["links"] = links
    doc["model"]["layers"][0]["param_bytes"] = param_bytes
    return doc


@pytest.mark.parametrize("links", [
    [],                                                                      # no links at all
    [{"source": "dev0", "target": "r1", "bandwidth": 1e8}],                  # relays only
])
def test_source_reaching_no_compute_node_with_a_model_too_big(
        links: list[dict[str, Any]]) -> None:
    # Validation needs no cost model: the problem loads, the cost model's memory rule
    # refuses it, and so does every planner.
    big = problem_from_dict(_isolated_source(links, TOO_BIG))
    with pytest.raises(InfeasibleError) as info:
        check_source_alone(big)
    err = info.value
    assert str(err).startswith("memory: ")
    assert "dev0" in str(err) and "reaches no other compute node" in str(err)
    assert isinstance(err, PipeslError)
    with pytest.raises(InfeasibleError, match="reaches no other compute node"):
        solve(big)
    # The same network is fine when the model fits on the source.
    problem = problem_from_dict(_isolated_source(links, 1e3))
    assert problem.training.source == "dev0"


def test_source_reaching_a_compute_node_is_not_checked_for_fit() -> None:
    doc = copy.deepcopy(BASE)
    doc["model"]["layers"][0]["param_bytes"] = TOO_BIG
    assert problem_from_dict(doc).model.layers[0].param_bytes == TOO_BIG


def test_infeasible_uses_the_smallest_allowed_micro_batch() -> None:
    # dev0 has 1e9 bytes. Parameters 3 x 2e3 = 6e3 bytes; activations 1e4 + 10 per sample.
    doc = _isolated_source([], 1e3)
    doc["model"]["layers"][0]["act_bytes"] = 1e8
    doc["training"].update(schedule="1f1b", batch_size=32)
    # 1F1B with one stage keeps b samples: b = 1 -> 1e8 + ... fits.
    check_source_alone(problem_from_dict(copy.deepcopy(doc)))
    # A fixed b = 16 needs 16 x 1e8 bytes: does not fit.
    doc["training"]["micro_batch_size"] = 16
    with pytest.raises(InfeasibleError, match=r"^memory: .*size \(16\)"):
        check_source_alone(problem_from_dict(copy.deepcopy(doc)))
    # GPipe keeps B = 32 samples whatever b.
    doc["training"].update(schedule="gpipe", micro_batch_size=None)
    with pytest.raises(InfeasibleError, match=r"^memory: "):
        check_source_alone(problem_from_dict(doc))


# ---------------------------------------------------------------- files


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _file_error(call: Any, path: Path, rule: str) -> ProblemError:
    with pytest.raises(ProblemError) as info:
        call(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert rule in message, message
    assert "\n" not in message
    return info.value


@pytest.mark.parametrize(("name", "content", "rule"), [
    ("bad.json", '{"network": {"nodes": [}', "is not valid JSON: Expecting value at line 1"),
    ("nan.json", '{"network": NaN}', "is not valid JSON: NaN is not a valid JSON number"),
    ("inf.json", '{"network": Infinity}', "is not valid JSON"),
    ("bad.yaml", "network:\n  nodes: [a, b\n", "is not valid YAML"),
    ("tab.yaml", "network:\n\t- a\n", "is not valid YAML"),
    ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    ("empty.yaml", "", "is empty; expected a mapping with keys network, model, training"),
    ("list.yaml", "- network\n- model\n", "must be a mapping"),
    ("scalar.json", "42", "must be a mapping"),
])
def test_malformed_problem_files(tmp_path: Path, name: str, content: str | bytes,
                                 rule: str) -> None:
    _file_error(load_problem, _write(tmp_path, name, content), rule)


def test_yaml_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "network:\n  nodes:\n    - {id: a\n")
    err = _file_error(load_problem, path, "is not valid YAML")
    assert re.search(r"at line \d+, column \d+", str(err))


def test_field_errors_in_a_file_name_the_file_and_the_field(tmp_path: Path) -> None:
    doc = mutated(("network.links[1].bandwidth", "8 GB"))
    path = _write(tmp_path, "p.json", json.dumps(doc))
    err = _file_error(load_problem, path, "network.links[1].bandwidth: '8 GB' has unknown unit")
    assert err.field == f"{path}: network.links[1].bandwidth"


def test_missing_file_directory_and_graphml_problem(tmp_path: Path) -> None:
    with pytest.raises(ProblemError, match="is neither an existing file nor a built-in scenario"):
        load_problem(tmp_path / "missing.yaml")
    with pytest.raises(ProblemError, match="is a directory"):
        load_problem(tmp_path)
    graphml = tmp_path / "n.graphml"
    nx.write_graphml(nx.path_graph(2), graphml)
    with pytest.raises(ProblemError, match="only a network can be given as GraphML"):
        load_problem(graphml)
    with pytest.raises(ProblemError, match="is neither an existing file nor a built-in network"):
        load_network(tmp_path / "missing.graphml")
    with pytest.raises(ProblemError, match="is neither an existing file nor a built-in model"):
        load_model(tmp_path / "missing.yaml")


def _node_link(**overrides: Any) -> dict[str, Any]:
    g = nx.Graph()
    g.add_node("a", flops=1e12)
    g.add_node("b", flops=1e12)
    g.add_edge("a", "b", bandwidth=1e8)
    data = nx.node_link_data(g, edges="edges")
    data.update(overrides)
    return data


@pytest.mark.parametrize(("doc", "rule"), [
    (_node_link(directed=True), "directed: must be false; links are undirected"),
    (_node_link(multigraph=True), "multigraph: must be false; one link per pair of nodes"),
    (_node_link(extra=1), "extra: is not a known field"),
    (_node_link(edges=[{"source": "a", "target": "b"}]),
     "network.links[0].bandwidth: is missing"),
    (_node_link(edges=[{"source": "a", "target": "c", "bandwidth": 1}]),
     "network.links[0].target: 'c' is not the id of a node"),
    (_node_link(nodes=[{"id": "a", "flops": -1}]), "network.nodes[0].flops: -1 is negative"),
    ([1, 2, 3], "must hold a network"),
])
def test_bad_node_link_networks(tmp_path: Path, doc: Any, rule: str) -> None:
    _file_error(load_network, _write(tmp_path, "net.json", json.dumps(doc)), rule)


def test_bad_graphml_networks(tmp_path: Path) -> None:
    _file_error(load_network, _write(tmp_path, "garbage.graphml", "<graphml><node"),
                "is not valid GraphML")
    _file_error(load_network, _write(tmp_path, "text.graphml", "hello"),
                "is not valid GraphML")
    directed = tmp_path / "directed.graphml"
    nx.write_graphml(nx.DiGraph([("a", "b")]), directed)
    _file_error(load_network, directed, "is a directed graph")
    multi = tmp_path / "multi.graphml"
    g = nx.MultiGraph()
    g.add_edge("a", "b", bandwidth=1e8)
    g.add_edge("a", "b", bandwidth=2e8)
    nx.write_graphml(g, multi)
    _file_error(load_network, multi, "is a multigraph")
    no_bw = tmp_path / "nobw.graphml"
    nx.write_graphml(nx.path_graph(2), no_bw)
    _file_error(load_network, no_bw, "network.links[0].bandwidth: is missing")


def test_bad_model_profile(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.yaml", "name: m\ninput_bytes: 10\nlayers: []\n")
    _file_error(load_model, path, "model.layers: is empty")
    path = _write(tmp_path, "m2.yaml", "model:\n  input_bytes: 10\n  layers: conv1\n")
    _file_error(load_model, path, "model.layers: 'conv1' must be a list")
