"""Generated multi-hop edge networks, chain models and problems for benchmarks and sweeps.

Numbers follow the built-in ``edge-campus`` scenario (see its comments for sources): a
Jetson-class data owner (~0.4 TFLOP/s sustained), edge servers from embedded GPUs to
workstation GPUs (1-9 TFLOP/s sustained), Wi-Fi access links (100-600 Mbit/s, half duplex,
2-5 ms), wireless mesh backhaul (0.5-2 Gbit/s, half duplex, ~1 ms) and wired links
(1-10 Gbit/s, full duplex, < 0.5 ms). Everything is drawn from a seeded numpy Generator, so a
(generator, seed) pair is reproducible.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import networkx as nx
import numpy as np

from pipesl.problem.types import (
    ChainModel,
    Layer,
    Link,
    Network,
    Node,
    Problem,
    TrainingSpec,
)
from pipesl.problem.validate import validate_problem

__all__ = ["TOPOLOGIES", "edge_network", "edge_problem", "synthetic_model"]

Topology = Literal["geometric", "line", "ring", "star", "grid", "tree"]
TOPOLOGIES: tuple[str, ...] = ("geometric", "line", "ring", "star", "grid", "tree")
GiB = 2.0**30


def _graph(n: int, topology: str, rng: np.random.Generator) -> tuple[nx.Graph, dict]:
    seed = int(rng.integers(2**31))
    if topology == "line":
        g = nx.path_graph(n)
        pos = {i: (float(i), 0.0) for i in g}
    elif topology == "ring":
        g = nx.cycle_graph(n)
        pos = {i: (math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in g}
    elif topology == "star":
        g = nx.star_graph(n - 1)  # node 0 is the hub
        g = nx.relabel_nodes(g, {0: 1, 1: 0})  # the source (0) is a leaf, the hub is 1
        pos = nx.spring_layout(g, seed=seed)
    elif topology == "grid":
        side = max(2, math.ceil(math.sqrt(n)))
        grid = nx.grid_2d_graph(side, side)
        cells = sorted(grid)[:n]
        g = nx.convert_node_labels_to_integers(grid.subgraph(cells).copy(), ordering="sorted")
        pos = {i: (float(c[0]), float(c[1])) for i, c in enumerate(sorted(cells))}
        if not nx.is_connected(g):  # pragma: no cover - a prefix of a grid is connected
            raise AssertionError("grid prefix disconnected")
    elif topology == "tree":
        g = nx.random_labeled_tree(n, seed=seed) if n > 1 else nx.empty_graph(1)
        pos = nx.spring_layout(g, seed=seed)
    elif topology == "geometric":
        radius = min(1.0, 1.8 * math.sqrt(math.log(max(n, 2)) / (math.pi * max(n, 2))))
        coords = {i: (float(x), float(y)) for i, (x, y) in enumerate(rng.random((n, 2)))}
        g = nx.random_geometric_graph(n, radius, pos=coords, seed=seed)
        comps = sorted(nx.connected_components(g), key=min)
        for a, b in itertools.pairwise(comps):  # join components nearest-first
            u = min(a)
            v = min(b, key=lambda x: math.dist(coords[u], coords[x]))
            g.add_edge(u, v)
        pos = coords
    else:
        raise ValueError(f"unknown topology {topology!r}; choose one of {', '.join(TOPOLOGIES)}")
    return g, {k: (float(v[0]), float(v[1])) for k, v in pos.items()}


def edge_network(n_nodes: int, topology: Topology | str = "geometric", *, seed: int = 0,
                 compute_fraction: float = 0.35, memory_scale: float = 1.0,
                 bandwidth_scale: float = 1.0, flops_scale: float = 1.0) -> Network:
    """A connected multi-hop edge network; node ``dev0`` is the data owner.

    Parameters
    ----------
    n_nodes : int
        Number of nodes (>= 2).
    topology : str
        One of :data:`TOPOLOGIES`; in ``star`` every node hangs off one relay hub.
    seed : int
    compute_fraction : float
        Share of the non-source nodes that are edge servers; the rest are relays / APs.
    memory_scale, bandwidth_scale, flops_scale : float
        Multiply every server memory, every link bandwidth, every server FLOP/s.
    """
    if n_nodes < 2:
        raise ValueError("n_nodes must be >= 2")
    rng = np.random.default_rng(seed)
    g, pos = _graph(n_nodes, topology, rng)
    hub = 1 if topology == "star" else None
    others = [i for i in range(1, n_nodes) if i != hub]
    k = max(1, round(compute_fraction * (n_nodes - 1)))
    servers = set(rng.choice(others, size=min(k, len(others)), replace=False).tolist())
    nodes = []
    for i in range(n_nodes):
        if i == 0:
            nodes.append(Node("dev0", flops=0.38e12 * flops_scale, memory=5 * GiB,
                              overhead=3e-3, kind="device", pos=pos[i]))
        elif i in servers:
            tier = rng.choice(4)
            flops = [1.6e12, 2.4e12, 4.8e12, 8.9e12][tier] * rng.uniform(0.8, 1.2)
            mem = [16, 14, 14, 22][tier] * GiB * memory_scale
            nodes.append(Node(f"es{i}", flops=flops * flops_scale, memory=mem,
                              overhead=float(rng.uniform(0.5e-3, 2e-3)), kind="server",
                              pos=pos[i]))
        else:
            nodes.append(Node(f"r{i}", compute=False, kind="relay", pos=pos[i]))
    links = []
    for u, v in sorted(g.edges()):
        wireless = 0 in (u, v) or rng.random() < 0.5
        if 0 in (u, v):  # the device's Wi-Fi access link
            bw, lat, duplex = rng.uniform(1e8, 6e8), rng.uniform(2e-3, 5e-3), "half"
        elif wireless:  # mesh / mmWave backhaul
            bw, lat, duplex = rng.uniform(5e8, 2e9), rng.uniform(0.5e-3, 1.5e-3), "half"
        else:  # wired
            bw, lat, duplex = rng.choice([1e9, 2.5e9, 1e10]) * 0.94, rng.uniform(5e-5, 3e-4), \
                "full"
        links.append(Link(nodes[u].id, nodes[v].id, bandwidth=float(bw) * bandwidth_scale,
                          latency=float(lat), duplex=duplex))  # type: ignore[arg-type]
    return Network(tuple(nodes), tuple(links))


def synthetic_model(n_layers: int, kind: Literal["cnn", "transformer"] = "cnn", *,
                    seed: int = 0, input_bytes: float = 3 * 32 * 32 * 4) -> ChainModel:
    """A chain model shaped like real networks (per-sample FLOPs and bytes).

    ``cnn``: five stages of equal-size blocks whose activations shrink 4x and FLOPs stay
    roughly level, then a small head (VGG/ResNet-like). ``transformer``: an embedding, equal
    blocks, a head (GPT/ViT-like). Layers inside a stage share their output size, as in real
    models, so the planner's route cache sees few distinct sizes.
    """
    rng = np.random.default_rng(seed)
    layers = []
    if kind == "transformer":
        seq, width = 128, 768
        act = seq * width * 4.0
        layers.append(Layer("embed", 1e6, 2e6, act, 40e6, act))
        for i in range(1, n_layers - 1):
            f = 2 * 12 * seq * width * width * rng.uniform(0.95, 1.05)
            layers.append(Layer(f"block{i}", f, 2 * f, act, 28e6, 8 * act))
        layers.append(Layer("head", 2 * seq * width * 50257, 4 * seq * width * 50257,
                            seq * 50257 * 4.0, 154e6, seq * 50257 * 4.0))
        return ChainModel(f"transformer{n_layers}", seq * 8.0, tuple(layers[:n_layers]))
    stages = 5
    per = max(1, (n_layers - 1) // stages)
    channels, side = 64, 32
    for i in range(n_layers - 1):
        stage = min(i // per, stages - 1)
        ch = channels * 2**stage
        sd = max(1, side // 2**stage)
        out = ch * sd * sd * 4.0
        f = 2 * 9 * ch * ch * sd * sd * rng.uniform(0.9, 1.1)
        layers.append(Layer(f"conv{i + 1}", f, 2 * f, out, 9 * ch * ch * 4.0, 2 * out))
    layers.append(Layer("head", 2 * 512 * 10, 4 * 512 * 10, 40.0, 5130 * 4.0, 2048.0))
    return ChainModel(f"cnn{n_layers}", input_bytes, tuple(layers))


def edge_problem(n_nodes: int, n_layers: int, batch_size: int = 128, *, seed: int = 0,
                 topology: Topology | str = "geometric", kind: Literal["cnn", "transformer"] =
                 "cnn", schedule: str = "gpipe", labels_at_source: bool = False,
                 **network_options: float) -> Problem:
    """A whole generated problem: :func:`edge_network` + :func:`synthetic_model`."""
    net = edge_network(n_nodes, topology, seed=seed, **network_options)
    model = synthetic_model(n_layers, kind, seed=seed)
    training = TrainingSpec(source="dev0", batch_size=batch_size, schedule=schedule,  # type: ignore[arg-type]
                            labels_at="dev0" if labels_at_source else None)
    return validate_problem(Problem(net, model, training,
                                    name=f"{topology}-{n_nodes}n-{n_layers}l-s{seed}"))
