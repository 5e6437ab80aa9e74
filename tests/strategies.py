"""Seeded random generators of valid pipesl problems and plans, for property tests.

Every generator is a plain function whose first argument ``rng`` is a :class:`random.Random`,
a :class:`numpy.random.Generator` or an int seed; the same seed gives the same object. The
hypothesis strategies at the bottom are built on them (a strategy draws a seed), so a failing
example is reported as a seed that reproduces it outside hypothesis.

>>> import random
>>> problem = random_problem(random.Random(7), n_nodes=5, n_layers=4, topology="star")
>>> plan = random_plan(random.Random(8), problem)
>>> plan.stages[0].node == problem.training.source
True

What the generated problems contain
-----------------------------------
* a connected network of ``n_nodes`` nodes laid out as a ``line`` (source at one end), a
  ``star`` (source on a leaf, the hub often a relay), a ``ring``, a ``tree`` or a ``mesh``
  (a random geometric graph made connected);
* relays (``compute: false``, written either as ``flops: 0`` or as ``flops > 0`` with
  ``compute: false``), at least one compute node besides the source when ``n_nodes >= 2``;
* links with random bandwidth and latency, half or full duplex, written in random orientation
  (so resource names ``link:u-v`` follow the input, not the route);
* a random chain model, random batch size, gpipe or 1f1b, optimize or shortest routing, a fixed
  or free micro-batch size, and ``labels_at`` (none, the source, or any node).

Generated plans are structurally valid (``pipesl.plan.validate_plan`` accepts them) but may
break memory when ``memory="tight"``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import networkx as nx
import numpy as np
from hypothesis import strategies as st

from pipesl.plan import Plan, Stage
from pipesl.problem import (
    ChainModel,
    Layer,
    Link,
    Network,
    Node,
    Problem,
    TrainingSpec,
    validate_problem,
)
from pipesl.problem.types import Duplex

__all__ = [
    "MEMORY_MODES",
    "TOPOLOGIES",
    "as_random",
    "memory_starved",
    "problems",
    "problems_and_plans",
    "random_model",
    "random_network",
    "random_plan",
    "random_problem",
    "random_route",
]

TOPOLOGIES = ("line", "star", "ring", "tree", "mesh")
"""Network shapes :func:`random_network` can build."""
MEMORY_MODES = ("unbounded", "loose", "tight")
"""``unbounded``: no memory field; ``loose``: every plan fits at every b; ``tight``: some don't."""

SOURCE = "dev0"
"""Id of the data owner in every generated problem."""

Rng = random.Random | np.random.Generator | int


def as_random(rng: Rng) -> random.Random:
    """A :class:`random.Random` from a Random (returned as is), a numpy Generator or a seed."""
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    if isinstance(rng, int) and not isinstance(rng, bool):
        return random.Random(rng)
    raise TypeError(f"rng must be a random.Random, a numpy Generator or an int, not {rng!r}")


def _log_uniform(r: random.Random, low: float, high: float) -> float:
    return math.exp(r.uniform(math.log(low), math.log(high)))


def _edges(r: random.Random, n: int, topology: str) -> list[tuple[int, int]]:
    """Undirected edges over nodes 0..n-1 (node 0 is the source); the graph is connected."""
    if n == 1:
        return []
    if topology == "line":
        return [(i, i + 1) for i in range(n - 1)]
    if topology == "ring":
        edges = [(i, i + 1) for i in range(n - 1)]
        if n >= 3:
            edges.append((n - 1, 0))
        return edges
    if topology == "star":
        # Node 1 is the hub; the source (node 0) is a leaf like the others.
        return [(1, i) for i in range(n) if i != 1]
    if topology == "tree":
        return [(r.randrange(i), i) for i in range(1, n)]
    if topology == "mesh":
        pos = {i: (r.random(), r.random()) for i in range(n)}
        g = nx.random_geometric_graph(n, 0.55, pos=pos, seed=r.randrange(2**31))
        comps = [sorted(c) for c in nx.connected_components(g)]
        for a, b in pairwise(comps):
            g.add_edge(r.choice(a), r.choice(b))
        return [(u, v) for u, v in g.edges()]
    raise ValueError(f"unknown topology {topology!r}; expected one of {TOPOLOGIES}")


def random_network(
    rng: Rng,
    n_nodes: int = 6,
    topology: str | None = None,
    *,
    relay_prob: float = 0.35,
    full_duplex_prob: float = 0.5,
    memory: float | Sequence[float] | None = None,
) -> Network:
    """A connected random network whose node ``"dev0"`` can compute (it is meant as source).

    Parameters
    ----------
    rng : random.Random, numpy Generator or int seed
    n_nodes : int
        Number of nodes (>= 1).
    topology : str, optional
        One of :data:`TOPOLOGIES`; random when None.
    relay_prob : float
        Chance that a node other than the source is a relay. With ``n_nodes >= 2`` at least
        one other node can compute. In a star the hub is a relay with chance 0.7.
    full_duplex_prob : float
        Chance that a link is full duplex.
    memory : float or (low, high), optional
        Memory of compute nodes in bytes: a number (same everywhere), a (low, high) range drawn
        log-uniformly per node, or None for unbounded memory.
    """
    r = as_random(rng)
    topology = topology or r.choice(TOPOLOGIES)
    if n_nodes < 1:
        raise ValueError("n_nodes must be >= 1")
    edges = _edges(r, n_nodes, topology)
    relay = [False] + [r.random() < relay_prob for _ in range(1, n_nodes)]
    if topology == "star" and n_nodes >= 3:
        relay[1] = r.random() < 0.7
    if n_nodes >= 2 and all(relay[1:]):
        relay[r.randrange(1, n_nodes)] = False
    names = [SOURCE] + [f"{'r' if relay[i] else 'es'}{i}" for i in range(1, n_nodes)]
    nodes = []
    for i, name in enumerate(names):
        if relay[i]:
            # Both spellings of a relay: flops 0, or flops > 0 with compute false.
            flops = 0.0 if r.random() < 0.5 else _log_uniform(r, 1e11, 1e13)
            nodes.append(Node(name, flops=flops, compute=False, kind="relay"))
            continue
        if memory is None:
            mem = math.inf
        elif isinstance(memory, int | float):
            mem = float(memory)
        else:
            mem = _log_uniform(r, memory[0], memory[1])
        overhead = 0.0 if r.random() < 0.3 else r.uniform(0.0, 5e-3)
        nodes.append(Node(name, flops=_log_uniform(r, 1e11, 1e14), memory=mem,
                          overhead=overhead, compute=True,
                          kind="device" if i == 0 else "server"))
    links = []
    for u, v in edges:
        if r.random() < 0.5:
            u, v = v, u
        latency = 0.0 if r.random() < 0.2 else r.uniform(1e-5, 5e-3)
        duplex: Duplex = "full" if r.random() < full_duplex_prob else "half"
        links.append(Link(names[u], names[v], bandwidth=_log_uniform(r, 1e6, 1e10),
                          latency=latency, duplex=duplex))
    return Network(tuple(nodes), tuple(links))


def random_model(rng: Rng, n_layers: int = 5) -> ChainModel:
    """A random chain of ``n_layers`` layers with per-sample FLOPs and bytes of CNN-like size."""
    r = as_random(rng)
    layers = []
    for i in range(1, n_layers + 1):
        fwd = _log_uniform(r, 1e5, 1e10)
        out = _log_uniform(r, 1e2, 1e6)
        layers.append(Layer(
            name=f"layer{i}",
            fwd_flops=fwd,
            bwd_flops=2.0 * fwd if r.random() < 0.5 else fwd * r.uniform(1.0, 3.0),
            out_bytes=out,
            param_bytes=0.0 if r.random() < 0.2 else _log_uniform(r, 1e2, 1e8),
            act_bytes=out if r.random() < 0.5 else _log_uniform(r, 1e2, 1e6),
        ))
    return ChainModel(f"random{n_layers}", _log_uniform(r, 1e2, 1e6), tuple(layers))


def memory_starved(problem: Problem) -> Problem:
    """``problem`` with 1 byte of memory on every compute node (relays as they are): no plan
    fits wherever the model needs any memory."""
    net = problem.network
    nodes = tuple(Node(n.id, n.flops, 1.0 if n.can_compute else n.memory, n.overhead,
                       n.compute, n.kind, n.pos) for n in net.nodes)
    return Problem(Network(nodes, net.links), problem.model, problem.training)


def random_problem(
    rng: Rng,
    n_nodes: int | None = None,
    n_layers: int | None = None,
    topology: str | None = None,
    *,
    schedule: str | None = None,
    routing: str | None = None,
    labels: str | None = None,
    batch_size: int | None = None,
    micro_batch_size: int | str | None = "random",
    memory: str | None = None,
    full_duplex_prob: float | None = None,
) -> Problem:
    """A valid random problem (validated by ``pipesl.problem.validate_problem``).

    Parameters
    ----------
    rng : random.Random, numpy Generator or int seed
    n_nodes, n_layers : int, optional
        Sizes; random in 1..8 nodes and 1..7 layers when None.
    topology : str, optional
        One of :data:`TOPOLOGIES`; random when None.
    schedule : {"gpipe", "1f1b"}, optional
        Random when None.
    routing : {"optimize", "shortest"}, optional
        Random when None.
    labels : {"none", "source", "any"}, optional
        ``labels_at``: null, the source (U-shaped SL), or any node; random when None.
    batch_size : int, optional
        B; random when None.
    micro_batch_size : int, None or "random"
        A fixed b, None (to optimise), or "random" (fixed half of the time).
    memory : str, optional
        One of :data:`MEMORY_MODES`; random when None.
    full_duplex_prob : float, optional
        Chance of a full-duplex link; 0.5 when None.
    """
    r = as_random(rng)
    n_nodes = n_nodes if n_nodes is not None else r.randint(1, 8)
    n_layers = n_layers if n_layers is not None else r.randint(1, 7)
    model = random_model(r, n_layers)
    batch = batch_size if batch_size is not None else r.choice([1, 2, 7, 16, 32, 100, 128, 256])
    state_factor = r.choice([0.0, 1.0, 2.0, 3.0, 4.5])
    mode = memory or r.choice(MEMORY_MODES)
    params = sum(x.param_bytes for x in model.layers)
    acts = sum(x.act_bytes for x in model.layers)
    # The most any stage can need: all layers, a window of at most 2B samples (1F1B with a b
    # that does not divide B keeps min(M, K-k+1) * b < 2B).
    worst = state_factor * params + 2 * batch * acts
    mem: float | tuple[float, float] | None
    if mode == "unbounded" or n_nodes == 1:
        mem = None
    elif mode == "loose":
        mem = (worst * 1.01 + 1.0, worst * 4 + 2.0)
    else:
        mem = (worst * 0.02 + 1.0, worst * 1.5 + 2.0)
    net = random_network(r, n_nodes, topology, memory=mem,
                         full_duplex_prob=0.5 if full_duplex_prob is None else full_duplex_prob)
    labels = labels or r.choice(["none", "none", "source", "any"])
    labels_at = {"none": None, "source": SOURCE,
                 "any": r.choice([n.id for n in net.nodes])}[labels]
    if micro_batch_size == "random":
        fixed: int | None = r.randint(1, batch) if r.random() < 0.5 else None
    else:
        fixed = micro_batch_size  # type: ignore[assignment]
    training = TrainingSpec(
        source=SOURCE,
        batch_size=batch,
        micro_batch_size=fixed,
        schedule=schedule or r.choice(["gpipe", "1f1b"]),  # type: ignore[arg-type]
        state_factor=state_factor,
        routing=routing or r.choice(["optimize", "shortest"]),  # type: ignore[arg-type]
        labels_at=labels_at,
    )
    problem = Problem(net, model, training, name=f"random-{topology or 'any'}")
    return validate_problem(problem)


def _random_simple_path(r: random.Random, g: nx.Graph, u: str, v: str) -> tuple[str, ...]:
    """A simple u-v path by depth-first search with shuffled neighbours."""
    path = [u]
    visited = {u}

    def shuffled(node: str) -> Any:
        nbrs = sorted(g.neighbors(node))
        r.shuffle(nbrs)
        return iter(nbrs)

    stack = [shuffled(u)]
    while stack:
        for w in stack[-1]:
            if w == v:
                return (*path, v)
            if w not in visited:
                visited.add(w)
                path.append(w)
                stack.append(shuffled(w))
                break
        else:
            stack.pop()
            path.pop()
    raise ValueError(f"{v!r} is not reachable from {u!r}")


def random_route(rng: Rng, problem: Problem, u: str, v: str) -> tuple[str, ...]:
    """A random route from ``u`` to ``v`` allowed by ``training.routing``.

    ``optimize``: a random simple path; ``shortest``: a random min-hop path.
    """
    r = as_random(rng)
    g = problem.network.graph
    if problem.training.routing == "shortest":
        return tuple(r.choice(sorted(nx.all_shortest_paths(g, u, v))))
    return _random_simple_path(r, g, u, v)


def random_plan(
    rng: Rng,
    problem: Problem,
    *,
    num_stages: int | None = None,
    micro_batch_size: int | None = None,
) -> Plan:
    """A random structurally valid plan of ``problem``.

    K is random in 1..min(L, number of compute nodes) unless ``num_stages`` is given; cuts,
    stage nodes (stage 1 on the source, the others distinct compute nodes) and routes are
    random. b is ``micro_batch_size``, else the problem's fixed b, else random in 1..B.
    Memory is not checked.
    """
    r = as_random(rng)
    net, tr = problem.network, problem.training
    L = problem.model.num_layers
    others = [n.id for n in net.compute_nodes if n.id != tr.source]
    k_max = min(L, 1 + len(others))
    k = num_stages if num_stages is not None else r.randint(1, k_max)
    if not 1 <= k <= k_max:
        raise ValueError(f"num_stages must be in 1..{k_max}")
    cuts = sorted(r.sample(range(1, L), k - 1))
    bounds = [0, *cuts, L]
    nodes = [tr.source, *r.sample(others, k - 1)]
    stages = tuple(Stage(nodes[i], bounds[i] + 1, bounds[i + 1]) for i in range(k))
    routes = tuple(random_route(r, problem, nodes[i], nodes[i + 1]) for i in range(k - 1))
    label_route: tuple[str, ...] | None = None
    if tr.labels_at is not None:
        if tr.labels_at != nodes[-1]:
            label_route = random_route(r, problem, nodes[-1], tr.labels_at)
        elif r.random() < 0.5:
            label_route = (nodes[-1],)
    b = micro_batch_size or tr.micro_batch_size or r.randint(1, tr.batch_size)
    return Plan(stages, routes, b, label_route)


# ---------------------------------------------------------------- hypothesis strategies

_SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def problems(**kwargs: Any) -> st.SearchStrategy[Problem]:
    """Strategy of :func:`random_problem` results; ``kwargs`` are passed to it."""
    return _SEEDS.map(lambda seed: random_problem(random.Random(seed), **kwargs))


def problems_and_plans(**kwargs: Any) -> st.SearchStrategy[tuple[Problem, Plan]]:
    """Strategy of (problem, plan) pairs; ``kwargs`` go to :func:`random_problem`."""

    def build(seeds: tuple[int, int]) -> tuple[Problem, Plan]:
        problem = random_problem(random.Random(seeds[0]), **kwargs)
        return problem, random_plan(random.Random(seeds[1]), problem)

    return st.tuples(_SEEDS, _SEEDS).map(build)
