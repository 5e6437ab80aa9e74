"""Bottleneck-aware shortest path (BASP) over any directed graph.

Minimise, over paths P from ``source`` to ``target``::

    F(P) = sum_{e in P} w(e) + lam * max_{e in P} v(e)

with non-negative edge weights w (summed) and v (the bottleneck weight, by default v = w).
This is the paper's "min-sum plus (M - 1) times min-max" path objective; the function knows
nothing about DNNs (compare networkx's ``shortest_paths/weighted.py``).

Method (the paper's threshold algorithm, with pruning)
------------------------------------------------------
Sort the distinct bottleneck weights tau_1 < tau_2 < ...; for each tau keep the edges with
v <= tau and run Dijkstra on w; the candidate is the found path's sum plus lam times its own
largest v (<= tau). Thresholds are visited in ascending order from the minimax value (below
it no path exists), and the loop stops at the first tau with ``S_0 + lam * tau >= best``,
where S_0 is the unconstrained shortest path: every path whose bottleneck is tau or more costs
at least that.

Proof of optimality: let P* be optimal with bottleneck beta*. At tau = beta* P* is admissible,
so Dijkstra returns a path P with sum(P) <= sum(P*) and max v(P) <= beta*, hence
F(P) <= F(P*). A pruned threshold tau admits only paths with F >= S_0 + lam * tau >= best.

Complexity: O(K (E + V log V)) for K thresholds visited (K <= the number of distinct v).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import networkx as nx

__all__ = ["BaspResult", "bottleneck_aware_shortest_path"]


@dataclass(frozen=True)
class BaspResult:
    """Result of :func:`bottleneck_aware_shortest_path`."""

    path: list[Hashable]
    value: float
    """sum(w) + lam * max(v) of ``path``."""
    sum_weight: float
    bottleneck: float
    dijkstra_runs: int
    thresholds_pruned: int
    """Distinct thresholds never run thanks to the lower bound."""


def _dijkstra(g: nx.DiGraph, source: Hashable, target: Hashable, weight: str, bweight: str,
              tau: float) -> tuple[float, list[Hashable]] | None:
    """Shortest w-path using only edges with v <= tau; heap ties broken by a counter."""
    dist: dict[Hashable, float] = {source: 0.0}
    pred: dict[Hashable, Hashable] = {}
    seen: set[Hashable] = set()
    counter = itertools.count()
    heap: list[tuple[float, int, Hashable]] = [(0.0, next(counter), source)]
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in seen:
            continue
        seen.add(u)
        if u == target:
            path = [u]
            while path[-1] != source:
                path.append(pred[path[-1]])
            return d, path[::-1]
        for v, data in g.adj[u].items():
            if data.get(bweight, data[weight]) > tau:
                continue
            nd = d + data[weight]
            if nd < dist.get(v, math.inf):
                dist[v] = nd
                pred[v] = u
                heapq.heappush(heap, (nd, next(counter), v))
    return None


def _minimax(g: nx.DiGraph, source: Hashable, target: Hashable, bweight: str, weight: str
             ) -> float:
    """The least possible bottleneck over source-target paths (inf: no path)."""
    best: dict[Hashable, float] = {source: 0.0}
    counter = itertools.count()
    heap: list[tuple[float, int, Hashable]] = [(0.0, next(counter), source)]
    done: set[Hashable] = set()
    while heap:
        d, _, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        if u == target:
            return d
        for v, data in g.adj[u].items():
            nd = max(d, data.get(bweight, data[weight]))
            if nd < best.get(v, math.inf):
                best[v] = nd
                heapq.heappush(heap, (nd, next(counter), v))
    return math.inf


def bottleneck_aware_shortest_path(g: nx.DiGraph, source: Hashable, target: Hashable,
                                   lam: float, weight: str = "weight",
                                   bottleneck_weight: str | None = None) -> BaspResult:
    """Minimise sum(w) + lam * max(v) over source-target paths of ``g``.

    Parameters
    ----------
    g : networkx.DiGraph
        Edge attribute ``weight`` (>= 0) is summed; ``bottleneck_weight`` (>= 0, defaults to
        ``weight``) is maximised.
    source, target : node
    lam : float
        Weight of the bottleneck term (M - 1 in pipesl), >= 0.
    weight, bottleneck_weight : str

    Returns
    -------
    BaspResult

    Raises
    ------
    networkx.NetworkXNoPath
        When target is unreachable from source.
    ValueError
        On a negative weight or lam.

    Examples
    --------
    >>> import networkx as nx
    >>> g = nx.DiGraph()
    >>> g.add_edge("s", "a", weight=1.0); g.add_edge("a", "t", weight=5.0)
    >>> g.add_edge("s", "b", weight=3.0); g.add_edge("b", "t", weight=3.0)
    >>> r = bottleneck_aware_shortest_path(g, "s", "t", lam=0.0)
    >>> r.path, r.value
    (['s', 'a', 't'], 6.0)
    >>> bottleneck_aware_shortest_path(g, "s", "t", lam=2.0).path
    ['s', 'b', 't']
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    bw = bottleneck_weight or weight
    values: set[float] = set()
    for u, v, data in g.edges(data=True):
        w, b = data[weight], data.get(bw, data[weight])
        if w < 0 or b < 0:
            raise ValueError(f"negative weight on edge {u!r} -> {v!r}")
        values.add(b)
    start = _minimax(g, source, target, bw, weight)
    if math.isinf(start):
        raise nx.NetworkXNoPath(f"no path from {source!r} to {target!r}")
    free = _dijkstra(g, source, target, weight, bw, math.inf)
    assert free is not None
    s0 = free[0]
    thresholds = sorted(t for t in values if t >= start)
    best: tuple[float, list[Hashable], float, float] | None = None
    runs = 1
    pruned = 0
    for i, tau in enumerate(thresholds):
        if best is not None and s0 + lam * tau >= best[0]:
            pruned = len(thresholds) - i
            break
        found = _dijkstra(g, source, target, weight, bw, tau)
        runs += 1
        if found is None:
            continue
        s, path = found
        top = max((g.edges[a, b].get(bw, g.edges[a, b][weight])
                   for a, b in itertools.pairwise(path)), default=0.0)
        value = s + lam * top
        if best is None or value < best[0]:
            best = (value, path, s, top)
    assert best is not None
    return BaspResult(best[1], best[0], best[2], best[3], runs, pruned)


def path_objective(g: nx.DiGraph, path: list[Any], lam: float, weight: str = "weight",
                   bottleneck_weight: str | None = None) -> float:
    """sum(w) + lam * max(v) of an explicit path (for tests and validators)."""
    bw = bottleneck_weight or weight
    edges = [g.edges[a, b] for a, b in itertools.pairwise(path)]
    return (sum(e[weight] for e in edges)
            + lam * max((e.get(bw, e[weight]) for e in edges), default=0.0))
