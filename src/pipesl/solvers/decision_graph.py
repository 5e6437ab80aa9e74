"""The layered decision graph, materialised as a networkx DiGraph (for small problems).

The paper: "vertices are splitting/placement decisions, edges are computation and
communication costs". Here, for a micro-batch size b:

* ``("arr", l, n)`` — layer l's output has arrived at compute node n, which computes next
  (the source ``("arr", 0, source)`` holds the raw input);
* ``("dep", j, n)`` — n has just computed layer j;
* ``("via", j, u, o)`` — a route from o carrying layer j's output is at node u;
* ``"end"`` — the sink.

Edges carry ``weight`` (stage time t, summed), ``load`` (the stage's bottleneck load: t for a
compute stage or a half-duplex hop, t / 2 = x for a full-duplex hop) and the affine form
``alpha``, ``beta`` of t from cost.py:

* compute ``arr(l, n) -> dep(j, n)``: n runs layers l+1..j (absent when it does not fit in
  memory: exact for GPipe, with the smallest window for 1F1B);
* zero-cost ``dep(j, n) -> via(j, n, n)`` (start a route) and ``via(j, m, o) -> arr(j, m)``
  for a compute node m != o (stop and compute);
* link ``via(j, u, o) -> via(j, v, o)``: one hop over link u-v (``routing: shortest``: only
  hops that stay on a min-hop path from o);
* ``dep(L, n) -> end`` without ``labels_at``; with it, routes ``via(L, ., n)`` to the label
  node and then ``end``.

Source-to-sink paths are exactly the plans whose stages sit on consecutive-distinct nodes,
priced hop by hop: BASP on this graph with lam = M - 1 solves SPEC section 3 exactly when the
best path shares no link and reuses no node, and is a lower bound otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np

from pipesl.cost import CostTables
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem

__all__ = ["build_decision_graph", "plan_from_path"]


def build_decision_graph(problem: Problem, b: int, tables: CostTables | None = None
                         ) -> tuple[nx.DiGraph, Hashable, Hashable]:
    """The decision graph for micro-batch size ``b``; returns (graph, source, sink).

    Size: O(L^2 C) compute edges and O(L E C) link edges — use the layered DP
    (:mod:`pipesl.solvers.layered`) beyond small problems.
    """
    t = tables or CostTables.from_problem(problem)
    net, tr = problem.network, problem.training
    L = t.num_layers
    ids = [n.id for n in net.nodes]
    compute = [int(i) for i in np.flatnonzero(t.can_compute)]
    src = net.node_index[tr.source]
    label = None if tr.labels_at is None else net.node_index[tr.labels_at]
    hops = None
    if tr.routing == "shortest":
        hops = dict(nx.all_pairs_shortest_path_length(net.graph))
    g = nx.DiGraph()
    for n in compute:
        for l in range(L):
            if l > 0 or n == src:
                times = t.compute_times(b, l, np.array([n]))[0]
                fits = t.stage_memory(l, b, 1) <= t.memory[n]
                for col in np.flatnonzero(fits):
                    j = l + 1 + int(col)
                    a = t.compute_affine(n, l + 1, j)
                    g.add_edge(("arr", l, n), ("dep", j, n), weight=float(times[col]),
                               load=float(times[col]), alpha=a.alpha, beta=a.beta,
                               kind="compute", node=n, first=l + 1, last=j)
    hop_t = t.hop_times(b)  # (E, L+1)
    adjacency = [(int(u), int(v), e) for e, (u, v) in enumerate(zip(t.link_u, t.link_v,
                                                                      strict=True))]
    routed = list(range(1, L)) + ([L] if label is not None else [])
    for j in routed:
        for o in compute:
            g.add_edge(("dep", j, o), ("via", j, o, o), weight=0.0, load=0.0, alpha=0.0,
                       beta=0.0, kind="start")
            for u, v, e in adjacency:
                for a_, b_ in ((u, v), (v, u)):
                    if hops is not None:
                        if j < L and hops[ids[o]].get(ids[b_], -1) != \
                                hops[ids[o]].get(ids[a_], -2) + 1:
                            continue
                        if j == L and label is not None and hops[ids[b_]][ids[label]] != \
                                hops[ids[a_]][ids[label]] - 1:
                            continue
                    aff = t.hop_affine(e, j)
                    g.add_edge(("via", j, a_, o), ("via", j, b_, o), weight=float(hop_t[e, j]),
                               load=float(hop_t[e, j] * t.load_share[e]), alpha=aff.alpha,
                               beta=aff.beta, kind="hop", link=e, hop=(a_, b_), layer=j)
            if j < L:
                for m in compute:
                    if m != o:
                        g.add_edge(("via", j, m, o), ("arr", j, m), weight=0.0, load=0.0,
                                   alpha=0.0, beta=0.0, kind="stop")
    for n in compute:
        if label is None or n == label:
            g.add_edge(("dep", L, n), "end", weight=0.0, load=0.0, alpha=0.0, beta=0.0,
                       kind="end")
        else:
            g.add_edge(("via", L, label, n), "end", weight=0.0, load=0.0, alpha=0.0, beta=0.0,
                       kind="end")
    g.graph["micro_batch_size"] = b
    start = ("arr", 0, src)
    if start not in g:
        g.add_node(start)
    g.add_node("end")
    return g, start, "end"


def plan_from_path(problem: Problem, g: nx.DiGraph, path: Sequence[Hashable]) -> Plan:
    """Decode a source-to-sink path of the decision graph into a :class:`Plan`."""
    ids = [n.id for n in problem.network.nodes]
    stages: list[Stage] = []
    routes: list[tuple[str, ...]] = []
    current: list[str] = []
    for a, b in itertools.pairwise(path):
        data = g.edges[a, b]
        if data["kind"] == "compute":
            if stages:
                routes.append(tuple(current))
            stages.append(Stage(ids[data["node"]], data["first"], data["last"]))
            current = [ids[data["node"]]]
        elif data["kind"] == "hop":
            current.append(ids[data["hop"][1]])
    label = tuple(current) if problem.training.labels_at is not None else None
    return Plan(tuple(stages), tuple(routes), int(g.graph["micro_batch_size"]), label)
