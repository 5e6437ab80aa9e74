"""Exact min-sum under a bottleneck threshold, with contention and distinct nodes: A* search.

For one micro-batch size b and a threshold tau, find the valid plan (SPEC section 3) of least
first-micro-batch time ``S = sum_s t_s`` whose every resource load — summed over all hops that
share a link, half- or full-duplex — is at most tau, and whose stages fit in memory with the
true 1F1B window. The relaxed DP (:mod:`pipesl.solvers.layered`) ignores exactly these
couplings; its tables are an admissible heuristic here (every relaxed completion is at most the
cost of every true completion), so the first goal that A* pops is optimal.

Search states follow the decision graph one edge at a time:

* *arrival* (l, m): layer l's output is at compute node m, which computes next;
* *transit* (j, u, origin): a route carrying layer j's output is at node u;
* *label* (u): layer L's output travels to ``labels_at``.

Each state carries the compute nodes already used, the links' accumulated loads and (for
1F1B) the stages so far. A state is pruned when f = S + h reaches the caller's upper bound.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import numpy as np

from pipesl.plan import Plan
from pipesl.solvers.layered import Context, RelaxedDP

__all__ = ["SearchResult", "exact_min_sum"]

_ARRIVAL, _TRANSIT, _LABEL, _GOAL = 0, 1, 2, 3


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`exact_min_sum`."""

    plan: Plan | None
    """The optimal plan, or None (infeasible, pruned by the bound, or stopped)."""
    value: float
    """S of the plan; otherwise a proven lower bound on S (inf: no plan at all)."""
    complete: bool
    """False when a node or time limit stopped the search before a proof."""
    expanded: int


class _State:
    __slots__ = (
        "g",
        "kind",
        "layer",
        "loads",
        "node",
        "origin",
        "parent",
        "stages",
        "step",
        "used",
        "visited",
    )

    def __init__(self, kind: int, layer: int, node: int, origin: int, g: float, used: int,
                 visited: int, loads: dict[int, float], stages: tuple[tuple[int, int, int], ...],
                 parent: _State | None, step: tuple[int, ...] | None):
        self.kind = kind
        self.layer = layer
        self.node = node
        self.origin = origin
        self.g = g
        self.used = used
        self.visited = visited
        self.loads = loads
        self.stages = stages
        self.parent = parent
        self.step = step


def _adjacency(ctx: Context) -> list[list[tuple[int, int]]]:
    adj: list[list[tuple[int, int]]] = [[] for _ in range(len(ctx.ids))]
    for e, (u, v) in enumerate(zip(ctx.tables.link_u.tolist(), ctx.tables.link_v.tolist(),
                                   strict=True)):
        adj[u].append((v, e))
        adj[v].append((u, e))
    return adj


def _transit_heuristic(ctx: Context, dp: RelaxedDP) -> np.ndarray:
    """(L, N): least time from "layer j's output in transit at u" to the end (relaxed)."""
    L = ctx.num_layers
    h = np.full((L, len(ctx.ids)), np.inf)
    for j in range(1, L):
        dist = ctx.routes.distances(j, dp.tau, int(dp.counts[j]))  # (C, N), symmetric graph
        h[j] = np.min(dist + dp.h_comp[j][:, None], axis=0)
    return h


def _window_fits(ctx: Context, stages: tuple[tuple[int, int, int], ...], total: int) -> bool:
    """True when every stage fits in memory with the 1F1B window for K = ``total`` stages."""
    tables = ctx.tables
    for k, (node, first, last) in enumerate(stages):
        need = (tables.state_factor * (tables.params[last] - tables.params[first - 1])
                + tables.window(ctx.b, total - k) * (tables.acts[last] - tables.acts[first - 1]))
        if need > tables.memory[node]:
            return False
    return True


def exact_min_sum(ctx: Context, dp: RelaxedDP, upper: float = np.inf, *,
                  deadline: float | None = None, max_expansions: int = 2_000_000
                  ) -> SearchResult:
    """Least S over valid plans with every resource load <= ``dp.tau`` (A*, see module doc).

    Parameters
    ----------
    ctx : Context
    dp : RelaxedDP
        The relaxed DP at the same threshold; its tables are the heuristic.
    upper : float
        Only plans with S < upper are of interest; the search stops when none can exist and
        then returns ``value = upper`` as a lower bound.
    deadline : float, optional
        ``time.perf_counter()`` value at which to stop (``complete = False``).
    max_expansions : int
        Node budget (``complete = False`` when exhausted).
    """
    tau = dp.tau
    tables = ctx.tables
    L = ctx.num_layers
    one_f_one_b = tables.schedule == "1f1b"
    label_node = ctx.routes.label_node
    shortest = ctx.routes.shortest
    hops = ctx.routes.hop_counts if shortest else None
    adj = _adjacency(ctx)
    share = tables.load_share.tolist()
    can = tables.can_compute.tolist()
    h_transit = _transit_heuristic(ctx, dp)
    h_label = ctx.routes.label_distances(tau) if label_node is not None else None
    pos = ctx.compute_pos
    hop_t = {j: ctx.routes.hop_times(j).tolist() for j in range(1, L + 1)}

    heap: list[tuple[float, float, int, _State]] = []
    counter = itertools.count()
    best_g: dict[tuple[object, ...], float] = {}

    def push(state: _State, h: float) -> None:
        f = state.g + h
        if f < upper and np.isfinite(f):
            heapq.heappush(heap, (f, -state.g, next(counter), state))

    start = _State(_ARRIVAL, 0, ctx.source, ctx.source, 0.0, 0, 0, {}, (), None, None)
    push(start, dp.value)
    expanded = 0
    while heap:
        f, _, _, s = heapq.heappop(heap)
        if s.kind == _GOAL:
            return SearchResult(_rebuild(ctx, s), s.g, True, expanded)
        key = (s.kind, s.layer, s.node, s.origin, s.used, s.visited,
               tuple(sorted(s.loads.items())))
        if best_g.get(key, np.inf) <= s.g:
            continue
        best_g[key] = s.g
        expanded += 1
        if expanded > max_expansions or (deadline is not None and expanded % 256 == 0
                                         and time.perf_counter() > deadline):
            return SearchResult(None, f, False, expanded)
        if s.kind == _ARRIVAL:
            m, l, c = s.node, s.layer, pos[s.node]
            k = len(s.stages) + 1
            if one_f_one_b and k > 1 and not _window_fits(ctx, s.stages, k):
                continue
            t_row = ctx.compute_times(l, dp.windows)[c]
            ok = np.isfinite(t_row) & (t_row <= tau)
            used = s.used | (1 << m)
            for col in np.flatnonzero(ok).tolist():
                j = l + 1 + col
                g = s.g + float(t_row[col])
                stages = (*s.stages, (m, l + 1, j))
                if j == L:
                    if label_node is None or m == label_node:
                        if not one_f_one_b or _window_fits(ctx, stages, k):
                            push(_State(_GOAL, L, m, m, g, used, 0, s.loads, stages, s,
                                        (0, m, l + 1, j)), 0.0)
                    else:
                        assert h_label is not None
                        push(_State(_LABEL, L, m, m, g, used, 1 << m, s.loads, stages, s,
                                    (0, m, l + 1, j)), float(h_label[m]))
                else:
                    push(_State(_TRANSIT, j, m, m, g, used, 1 << m, s.loads, stages, s,
                                (0, m, l + 1, j)), float(dp.h_dep[j, c]))
            continue
        # transit or label: extend the route by one hop
        j, u = s.layer, s.node
        times = hop_t[j]
        for v, e in adj[u]:
            if s.visited >> v & 1:
                continue
            if hops is not None:
                if s.kind == _TRANSIT and hops[s.origin, v] != hops[s.origin, u] + 1:
                    continue
                if s.kind == _LABEL and hops[v, label_node] != hops[u, label_node] - 1:
                    continue
            t = times[e]
            load = s.loads.get(e, 0.0) + share[e] * t
            if load > tau:
                continue
            loads = dict(s.loads)
            loads[e] = load
            g = s.g + t
            visited = s.visited | (1 << v)
            step = (1, u, v)
            if s.kind == _LABEL:
                if v == label_node:
                    if not one_f_one_b or _window_fits(ctx, s.stages, len(s.stages)):
                        push(_State(_GOAL, L, v, s.origin, g, s.used, visited, loads, s.stages,
                                    s, step), 0.0)
                else:
                    assert h_label is not None
                    push(_State(_LABEL, L, v, s.origin, g, s.used, visited, loads, s.stages, s,
                                step), float(h_label[v]))
                continue
            push(_State(_TRANSIT, j, v, s.origin, g, s.used, visited, loads, s.stages, s, step),
                 float(h_transit[j, v]))
            if can[v] and not s.used >> v & 1:
                push(_State(_ARRIVAL, j, v, v, g, s.used, 0, loads, s.stages, s, step),
                     float(dp.h_comp[j, pos[v]]))
    return SearchResult(None, upper, True, expanded)


def _rebuild(ctx: Context, goal: _State) -> Plan:
    """Walk the parents of a goal state back into a plan."""
    steps: list[tuple[int, ...]] = []
    s: _State | None = goal
    while s is not None:
        if s.step is not None:
            steps.append(s.step)
        s = s.parent
    steps.reverse()
    stages: list[tuple[int, int, int]] = []
    routes: list[list[int]] = []
    current: list[int] | None = None
    for step in steps:
        if step[0] == 0:
            if current is not None:
                routes.append(current)
            stages.append((step[1], step[2], step[3]))
            current = [step[1]]
        else:
            assert current is not None
            current.append(step[2])
    label = None
    if ctx.routes.label_node is not None:
        label = current if current is not None else None
    elif current is not None and len(current) > 1:  # pragma: no cover - internal invariant
        raise AssertionError("route after the last stage without labels_at")
    return ctx.plan_from_indices(stages, routes, label)
