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

from pipesl.cost import CostTables
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.routes import RouteCache, RouteOracle

__all__ = ["Context", "RelaxedDP", "relaxed_dp"]


class Context:
    """Everything the planner precomputes for one problem and one micro-batch size b."""

    def __init__(self, problem: Problem, tables: CostTables, b: int,
                 cache: RouteCache | None = None):
        self.problem = problem
        self.tables = tables
        self.b = int(b)
        self.num_micro_batches = -(-tables.batch_size // self.b)
        self.bottleneck_weight = self.num_micro_batches - 1
        net = problem.network
        self.compute = np.flatnonzero(tables.can_compute)
        self.compute_pos = {int(n): i for i, n in enumerate(self.compute)}
        self.source = net.node_index[problem.training.source]
        self.routes = RouteOracle(problem, tables, self.b, self.compute, cache)
        self.num_layers = tables.num_layers
        self.ids = [n.id for n in net.nodes]
        self.dp_passes = 0
        self._stage_times: np.ndarray | None = None

    @property
    def stage_times(self) -> np.ndarray:
        """(C, L, L+1): t of compute node c running layers l+1..j; +inf where j <= l or the
        stage does not fit in memory (exact for GPipe, smallest window W = 1 for 1F1B)."""
        if self._stage_times is None:
            t = self.tables
            L = self.num_layers
            starts = np.arange(L)
            work = t.work[None, :] - t.work[starts][:, None]  # (L, L+1)
            need = (t.state_factor * (t.params[None, :] - t.params[starts][:, None])
                    + float(t.window(self.b, 1)) * (t.acts[None, :] - t.acts[starts][:, None]))
            ends = np.arange(L + 1)
            invalid = ends[None, :] <= starts[:, None]
            inv = t.inv_flops[self.compute]
            times = self.b * inv[:, None, None] * work[None] \
                + 2.0 * t.overhead[self.compute][:, None, None]
            fits = need[None] <= t.memory[self.compute][:, None, None]
            times[~fits | invalid[None]] = np.inf
            times.setflags(write=False)
            self._stage_times = times
        return self._stage_times

    def compute_times(self, start: int) -> np.ndarray:
        """(C, L - start): t of stages layers start+1..j, j = start+1..L (+inf: no fit)."""
        return self.stage_times[:, start, start + 1:]

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
    """Tables of one relaxed DP pass (compute nodes indexed by position in ``ctx.compute``)."""

    tau: float
    value: float
    """Least sum of stage times from the source (inf: no admissible plan)."""
    h_comp: np.ndarray
    """(L, C) H_comp[l, c]."""
    h_dep: np.ndarray
    """(L + 1, C) H_dep[j, c]."""
    counts: np.ndarray
    """(L + 1,) admissible links per layer under tau (route cache keys)."""


def relaxed_dp(ctx: Context, tau: float = np.inf) -> RelaxedDP:
    """Run the backward DP under threshold ``tau`` (see the module docstring).

    Complexity O(L^2 C + L C^2) array work plus one all-origins Dijkstra per distinct
    (activation size, admissible link set), cached across passes.
    """
    ctx.dp_passes += 1
    L = ctx.num_layers
    C = len(ctx.compute)
    routes = ctx.routes
    counts = routes.counts(tau)
    h_dep = np.full((L + 1, C), np.inf)
    h_comp = np.full((L, C), np.inf)
    if routes.label_node is None:
        h_dep[L] = 0.0
    else:
        h_dep[L] = routes.label_distances(tau)[ctx.compute]
    times = ctx.stage_times
    filtered = tau != np.inf
    for l in range(L - 1, -1, -1):
        row = times[:, l, l + 1:]
        total = row + h_dep[l + 1:].T
        if filtered:
            total[row > tau] = np.inf
        h_comp[l] = total.min(axis=1)
        if l >= 1:
            pairs = routes.pair_distances(l, tau, int(counts[l]))
            h_dep[l] = (pairs + h_comp[l]).min(axis=1)
    src = ctx.compute_pos[ctx.source]
    return RelaxedDP(tau, float(h_comp[0, src]), h_comp, h_dep, counts)


def relaxed_plan(ctx: Context, dp: RelaxedDP) -> Plan | None:
    """Follow the DP's minimisers from the source into a plan (None when infeasible)."""
    if not np.isfinite(dp.value):
        return None
    L = ctx.num_layers
    c = ctx.compute_pos[ctx.source]
    layer = 0
    stages: list[tuple[int, int, int]] = []
    routes: list[list[int]] = []
    while True:
        row = ctx.compute_times(layer)[c]
        total = np.where(row <= dp.tau, row + dp.h_dep[layer + 1:, c], np.inf)
        j = layer + 1 + int(np.argmin(total))
        node = int(ctx.compute[c])
        stages.append((node, layer + 1, j))
        if j == L:
            break
        pairs = ctx.routes.pair_distances(j, dp.tau, int(dp.counts[j]))
        m = int(np.argmin(pairs[c] + dp.h_comp[j]))
        routes.append(ctx.routes.path(j, node, int(ctx.compute[m]), dp.tau))
        layer, c = j, m
    label = None
    if ctx.routes.label_node is not None:
        label = ctx.routes.label_path(int(ctx.compute[c]), dp.tau)
    return ctx.plan_from_indices(stages, routes, label)
