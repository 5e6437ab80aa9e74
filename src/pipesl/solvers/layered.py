"""The relaxed layered DP: bottleneck-aware shortest path over the decision graph, fast.

The decision graph of :mod:`pipesl.solvers.decision_graph` is layered: its vertices are
"the output of layer l sits at node n", its edges compute stages and relay routes. This module
runs the shortest-path DP over that graph *without materialising it*, backwards over layers:

* ``H_comp[l, c]`` — least time still to spend when layer l's output has arrived at compute
  node c, which must compute next::

      H_comp[l, c] = min_{j > l} t_c(l+1..j) + H_dep[j, c]

* ``H_dep[j, c]`` — least time still to spend when c has just computed layer j::

      H_dep[j, c] = min_{m != c} dist_j(c, m) + H_comp[j, m]        (j < L)
      H_dep[L, c] = dist_L(c, labels_at)   (0 without labels_at)

with ``dist_j`` the relay-route distances of :class:`~pipesl.solvers.routes.RouteOracle`.
Under a threshold tau, compute edges with ``t > tau`` and links whose per-hop load exceeds tau
are removed (the paper's bottleneck filter), and stages that do not fit in memory are absent.

This is a *relaxation* of SPEC section 3: it prices each hop on its own (no contention between
hops sharing a link), lets a node compute two non-consecutive stages, and for 1F1B uses the
smallest activation window (W = 1). Its value is therefore a lower bound; the exact search
(:mod:`pipesl.solvers.search`) uses these tables as its admissible heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipesl.cost import CostTables, num_micro_batches
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.routes import RouteCache, RouteOracle

__all__ = ["Context", "RelaxedDP", "Windows", "branch", "relaxed_dp", "relaxed_plan", "reused_node"]

Windows = tuple[tuple[int, int, int, int, int], ...]
"""Branch restrictions on compute nodes: ``(c, lo, hi, must_lo, must_hi)`` lets compute node c
(position in ``ctx.compute``) run layers i..j only when ``lo <= i``, ``j <= hi``,
``i <= must_lo`` and ``j >= must_hi``. Sorted by c; () means no restriction."""


class Context:
    """Everything the planner precomputes for one problem and one micro-batch size b."""

    def __init__(self, problem: Problem, tables: CostTables, b: int,
                 cache: RouteCache | None = None):
        self.problem = problem
        self.tables = tables
        self.b = int(b)
        self.num_micro_batches = num_micro_batches(tables.batch_size, self.b)
        self.bottleneck_weight = self.num_micro_batches - 1
        net = problem.network
        self.compute = np.flatnonzero(tables.can_compute)
        self.compute_pos = {int(n): i for i, n in enumerate(self.compute)}
        self.source = net.node_index[problem.training.source]
        self.routes = RouteOracle(problem, tables, self.b, self.compute, cache)
        self.num_layers = tables.num_layers
        self.ids = [n.id for n in net.nodes]
        self.dp_passes = 0
        self.per_step = False
        """True when loads are judged per step (shared links not summed): see
        ``solve_exact(per_step=True)``."""
        self._stage_times: np.ndarray | None = None
        self._window_times: dict[Windows, np.ndarray] = {}
        self._reach: list[int] | None = None

    @property
    def stage_times(self) -> np.ndarray:
        """(C, L, L+1): t of compute node c running layers l+1..j; +inf where j <= l or the
        stage does not fit in memory (exact for GPipe, smallest window W = 1 for 1F1B)."""
        if self._stage_times is None:
            t = self.tables
            L = self.num_layers
            starts = np.arange(L)
            ends = np.arange(L + 1)
            invalid = ends[None, :] <= starts[:, None]
            times = t.all_stage_times(self.b, self.compute)
            fits = t.all_stage_memory(self.b)[None] <= t.memory[self.compute][:, None, None]
            times[~fits | invalid[None]] = np.inf
            # The source runs stage 1, which starts at layer 1; it computes nothing else.
            times[self.compute_pos[self.source], 1:, :] = np.inf
            times.setflags(write=False)
            self._stage_times = times
        return self._stage_times

    @property
    def reach(self) -> list[int]:
        """reach[l] - 1 is the last layer any stage starting after layer l can end at (memory);
        the DP slices its rows there, which on memory-bound models shrinks them a lot."""
        if self._reach is None:
            finite = np.isfinite(self.stage_times).any(axis=0)  # (L, L+1)
            last = np.where(finite.any(axis=1), finite.shape[1] - 1
                            - np.argmax(finite[:, ::-1], axis=1), 0)
            self._reach = [max(int(x) + 1, l + 2) for l, x in enumerate(last)]
        return self._reach

    def compute_times(self, start: int, windows: Windows = ()) -> np.ndarray:
        """(C, L - start): t of stages layers start+1..j, j = start+1..L (+inf: no fit)."""
        return self.times(windows)[:, start, start + 1:]

    def times(self, windows: Windows = ()) -> np.ndarray:
        """:attr:`stage_times` with the node windows of a branch applied (see :data:`Windows`)."""
        if not windows:
            return self.stage_times
        hit = self._window_times.get(windows)
        if hit is None:
            hit = self.stage_times.copy()
            L = self.num_layers
            first = np.arange(1, L + 1)[:, None]  # i = l + 1 for start l
            last = np.arange(L + 1)[None, :]
            for c, lo, hi, must_lo, must_hi in windows:
                bad = (first < lo) | (last > hi) | (first > must_lo) | (last < must_hi)
                hit[c][bad] = np.inf
            hit.setflags(write=False)
            if len(self._window_times) > 32:
                self._window_times.pop(next(iter(self._window_times)))
            self._window_times[windows] = hit
        return hit

    def plan_from_indices(self, stages: list[tuple[int, int, int]], routes: list[list[int]],
                          label_route: list[int] | None) -> Plan:
        """A :class:`Plan` from node indices: stages (node, first, last), routes, label route."""
        ids = self.ids
        return Plan(
            tuple(Stage(ids[n], i, j) for n, i, j in stages),
            tuple(tuple(ids[x] for x in r) for r in routes),
            self.b,
            None if label_route is None else tuple(ids[x] for x in label_route),
        )


@dataclass(frozen=True, eq=False)
class RelaxedDP:
    """Tables of one relaxed DP pass (compute nodes indexed by position in ``ctx.compute``).

    Each state keeps two labels so that no plan of the relaxation runs A -> B -> A (2-cycle
    elimination): the best, and the best whose next compute node differs from the best's.
    """

    tau: float
    value: float
    """Least sum of stage times from the source (inf: no admissible plan)."""
    h_comp: np.ndarray
    """(L, C) H_comp[l, c], best label."""
    h_dep: np.ndarray
    """(L + 1, C) H_dep[j, c], best label."""
    counts: np.ndarray
    """(L + 1,) admissible links per layer under tau (route cache keys)."""
    windows: Windows = ()
    """The node windows this pass ran under."""
    comp_next: np.ndarray | None = None
    """(L, C) the compute node after c's stage in H_comp's best label (-1: c's stage is last)."""
    comp_alt: np.ndarray | None = None
    """(L, C) H_comp's best value whose next node differs from ``comp_next``."""
    dep_next: np.ndarray | None = None
    """(L + 1, C) the node the best route from c goes to (-1 after layer L)."""
    dep_alt: np.ndarray | None = None
    """(L + 1, C) H_dep's best value going to another node than ``dep_next``."""
    dep_alt_next: np.ndarray | None = None
    """(L + 1, C) that other node."""


def relaxed_dp(ctx: Context, tau: float = np.inf, windows: Windows = (),
               penalty: np.ndarray | None = None, *,
               stage_times: np.ndarray | None = None) -> RelaxedDP:
    """Run the backward DP under threshold ``tau`` (see the module docstring).

    Two labels per state eliminate 2-cycles (a node computing stages k and k + 2), the
    relaxation's most common way to reuse a node; longer cycles are left to branch and bound.
    ``penalty`` (C,) adds a constant to every stage a node runs (a Lagrange multiplier).
    ``stage_times`` replaces the (windowed) stage-time table, already filtered by the caller:
    tau then filters hops only (``pipesl.solvers.split_floor``).

    Complexity O(L^2 C + L C^2) array work plus one all-origins Dijkstra per distinct
    (activation size, admissible link set), cached across passes.
    """
    ctx.dp_passes += 1
    L = ctx.num_layers
    C = len(ctx.compute)
    routes = ctx.routes
    counts = routes.counts(tau)
    inf = np.inf
    c1 = np.full((L, C), inf)
    c2 = np.full((L, C), inf)
    s1 = np.full((L, C), -1, dtype=np.int64)
    d1 = np.full((L + 1, C), inf)
    d2 = np.full((L + 1, C), inf)
    m1 = np.full((L + 1, C), -1, dtype=np.int64)
    m2 = np.full((L + 1, C), -2, dtype=np.int64)
    if routes.label_node is None:
        d1[L] = 0.0
    else:
        d1[L] = routes.label_distances(tau)[ctx.compute]
    times = ctx.times(windows) if stage_times is None else stage_times
    reach = ctx.reach
    filtered = tau != inf and stage_times is None
    rows = np.arange(C)
    for l in range(L - 1, -1, -1):
        hi = reach[l]  # no stage starting after layer l can end beyond it (memory)
        row = times[:, l, l + 1:hi]
        if filtered:
            row = np.where(row > tau, inf, row)
        nxt = m1[l + 1:hi].T
        tot = row + d1[l + 1:hi].T
        j = np.argmin(tot, axis=1)
        c1[l] = tot[rows, j]
        s1[l] = nxt[rows, j]
        alt = row + np.where(nxt == s1[l][:, None], d2[l + 1:hi].T, d1[l + 1:hi].T)
        c2[l] = alt.min(axis=1)
        if penalty is not None:
            c1[l] += penalty
            c2[l] += penalty
        if l >= 1:
            pairs = routes.pair_distances(l, tau, int(counts[l]))
            cand = pairs + c1[l]
            # m's best label continues to s1[l][m]; a route from that node must use m's other
            # label (no A -> m -> A).
            back = s1[l] >= 0
            src_rows, dst_cols = s1[l][back], rows[back]
            cand[src_rows, dst_cols] = pairs[src_rows, dst_cols] + c2[l][back]
            best = np.argmin(cand, axis=1)
            m1[l] = best
            d1[l] = cand[rows, best]
            cand[rows, best] = inf
            second = np.argmin(cand, axis=1)
            m2[l] = second
            d2[l] = cand[rows, second]
    src = ctx.compute_pos[ctx.source]
    return RelaxedDP(tau, float(c1[0, src]), c1, d1, counts, windows, s1, c2, m1, d2, m2)


def relaxed_plan(ctx: Context, dp: RelaxedDP, *, stage_times: np.ndarray | None = None
                 ) -> Plan | None:
    """Follow the DP's labels from the source into a plan (None when infeasible).

    ``stage_times``: the table the DP ran on, when it was given one."""
    if not np.isfinite(dp.value):
        return None
    assert dp.comp_next is not None and dp.dep_alt is not None and dp.dep_alt_next is not None
    assert dp.dep_next is not None
    L = ctx.num_layers
    c = ctx.compute_pos[ctx.source]
    layer, before = 0, -2
    stages: list[tuple[int, int, int]] = []
    routes: list[list[int]] = []
    while True:
        if stage_times is None:
            row = ctx.compute_times(layer, dp.windows)[c]
            row = np.where(row <= dp.tau, row, np.inf)
        else:
            row = stage_times[c, layer, layer + 1:]
        d1, d2 = dp.h_dep[layer + 1:, c], dp.dep_alt[layer + 1:, c]
        nxt = dp.dep_next[layer + 1:, c]
        first = dp.comp_next[layer, c]
        if first != before:  # the best label is allowed
            j = int(np.argmin(row + d1))
            use_alt = False
        else:  # the best label returns to the previous node: take the other one
            alt = np.where(nxt == first, d2, d1)
            j = int(np.argmin(row + alt))
            use_alt = bool(nxt[j] == first)
        node = int(ctx.compute[c])
        stages.append((node, layer + 1, layer + 1 + j))
        j = layer + 1 + j
        if j == L:
            break
        m = int(dp.dep_alt_next[j, c] if use_alt else dp.dep_next[j, c])
        routes.append(ctx.routes.path(j, node, int(ctx.compute[m]), dp.tau))
        layer, before, c = j, c, m
    label = None
    if ctx.routes.label_node is not None:
        label = ctx.routes.label_path(int(ctx.compute[c]), dp.tau)
    return ctx.plan_from_indices(stages, routes, label)


def reused_node(ctx: Context, plan: Plan) -> tuple[int, int] | None:
    """(compute position c, layer p) for the first node that computes two stages: its first
    stage ends at layer p. None when every stage has its own node."""
    first_end: dict[str, int] = {}
    for stage in plan.stages:
        if stage.node in first_end:
            node = ctx.problem.network.node_index[stage.node]
            return ctx.compute_pos[node], first_end[stage.node]
        first_end[stage.node] = stage.last_layer
    return None


def branch(windows: Windows, c: int, p: int, num_layers: int) -> list[Windows]:
    """Split the plans where node c runs one stage three ways around layer p: its stage ends
    at or before p, starts after p, or covers both p and p + 1 (then c runs one stage)."""
    current = {w[0]: w for w in windows}
    _, lo, hi, must_lo, must_hi = current.get(c, (c, 1, num_layers, num_layers, 0))
    children = [(c, lo, min(hi, p), must_lo, must_hi),
                (c, max(lo, p + 1), hi, must_lo, must_hi),
                (c, lo, hi, min(must_lo, p), max(must_hi, p + 1))]
    out: list[Windows] = []
    for child in children:
        _, a, z, ml, mh = child
        if a > z or a > ml or mh > z:  # nothing allowed: the node is not used at all
            child = (c, 1, 0, num_layers, 0)
        merged = dict(current)
        merged[c] = child
        key = tuple(sorted(merged.values()))
        if key not in out:
            out.append(key)
    return out
