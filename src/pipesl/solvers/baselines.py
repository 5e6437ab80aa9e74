"""Baselines: the best plans of restricted families, and what prior planners would choose.

Every baseline returns a :class:`~pipesl.solvers.result.SolveResult` whose objective cost.py
recomputed from the plan. ``optimal`` always refers to the *full* SPEC problem: a baseline sets
it only when its restriction provably loses nothing (e.g. ``no_pipeline`` when B = 1). Its
``status`` says what it is:

* ``restricted_optimal`` — proven optimal within the baseline's own family (the message names
  the family);
* ``heuristic`` — a rule-of-thumb plan, no proof of anything.

Exact baselines (restricted families, solved with :func:`~pipesl.solvers.exact.solve_exact`):

``no_pipeline``
    The optimal multi-hop split, placement and routes with b = B (M = 1): prior multi-hop
    split learning without pipelining (b = B even when the problem fixes another b).
``fixed_b``
    The optimal plan for one given micro-batch size (option ``micro_batch_size``; default the
    problem's fixed b, else ``ceil(B / 4)``, four micro-batches — the same b_0 as the paper's
    alternating method). Shows what optimising b adds.
``two_tier``
    Classic split learning: the source plus one server. For every reachable server the exact
    planner runs on the problem where only the source and that server may compute, which
    optimises the cut, the route(s) and b; the best server wins. The family includes the
    degenerate all-on-the-source plan (cut after layer L) when it is better.
``bottleneck_only``
    Throughput planning as in PipeEdge's dynamic program (Hu et al., "PipeEdge: Pipeline
    Parallelism for Large-Scale Model Inference on Heterogeneous Edge Devices", DSD 2022):
    for each b = ceil(B / M), the plan of least bottleneck max_r load_r, ties broken by the
    least first-micro-batch time S; the fill latency plays no part in the placement. b is then
    chosen by the true T (option ``criterion="objective"``, the default, the stronger baseline)
    or by the steady-state time M * bottleneck (``criterion="throughput"``, the pure throughput
    planner — with fixed per-micro-batch costs it drifts towards b = B).

Heuristics (:mod:`pipesl.solvers.heuristics`): ``even_split``, ``greedy`` and ``random``.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import replace

import networkx as nx
import numpy as np

from pipesl.cost import CostTables, hop_seconds, num_micro_batches, seconds_per_bit
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.problem.types import Problem
from pipesl.solvers.diagnose import diagnose_infeasible
from pipesl.solvers.exact import solve_exact
from pipesl.solvers.layered import Context
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from pipesl.solvers.result import SolveResult, finish
from pipesl.solvers.routes import RouteCache
from pipesl.solvers.threshold import Point, evaluate_threshold

__all__ = [
    "DEFAULT_FIXED_M",
    "restrict_compute",
    "solve_bottleneck_only",
    "solve_fixed_b",
    "solve_no_pipeline",
    "solve_two_tier",
]

RESTRICTED = "restricted_optimal"
"""Status of a plan proven optimal within a baseline's own family."""
DEFAULT_FIXED_M = 4
"""``fixed_b`` without an explicit b uses b = ceil(B / 4) (four micro-batches)."""
_BISECT_REL = 1e-3
"""Relative width at which the bottleneck bisection turns into a walk."""


def _restricted(problem: Problem, result: SolveResult, method: str, family: str,
                full: bool, started: float, counters: dict[str, int] | None = None
                ) -> SolveResult:
    """Re-wrap an exact solve of a restricted family as the baseline ``method``."""
    proven = result.optimal
    optimal = proven and full
    status = ("optimal" if optimal else RESTRICTED) if proven else result.status
    note = family if proven else f"{family}; {result.message}"
    return finish(problem, result.plan, method, optimal=optimal,
                  lower_bound_s=result.objective_s if optimal else 0.0, started=started,
                  status=status, message=note, counters=counters or dict(result.counters))


# ---------------------------------------------------------------- b restricted


def solve_no_pipeline(problem: Problem, *, time_limit: float | None = None) -> SolveResult:
    """The optimal plan without pipelining: b = B, one micro-batch (prior multi-hop SL).

    Raises
    ------
    InfeasibleError
        When no plan fits in memory at b = B.
    """
    started = time.perf_counter()
    B = problem.training.batch_size
    result = solve_exact(problem, [B], time_limit=time_limit, method="no_pipeline")
    full = candidate_micro_batch_sizes(B) == [B] or problem.training.micro_batch_size == B
    return _restricted(problem, result, "no_pipeline",
                       f"optimal among plans without pipelining (b = B = {B})", full, started)


def solve_fixed_b(problem: Problem, micro_batch_size: int | None = None, *,
                  time_limit: float | None = None) -> SolveResult:
    """The optimal plan for one micro-batch size (default: the problem's, else ceil(B/4)).

    Raises
    ------
    ProblemError
        When ``micro_batch_size`` is not in [1, B].
    InfeasibleError
        When no plan fits in memory at that b.
    """
    started = time.perf_counter()
    tr = problem.training
    B = tr.batch_size
    b = micro_batch_size or tr.micro_batch_size or max(1, num_micro_batches(B, DEFAULT_FIXED_M))
    if not 1 <= b <= B:
        raise ProblemError("micro_batch_size", f"must be in [1, batch_size={B}]", b)
    result = solve_exact(problem, [b], time_limit=time_limit, method="fixed_b")
    full = tr.micro_batch_size == b or candidate_micro_batch_sizes(B) == [b]
    return _restricted(problem, result, "fixed_b",
                       f"optimal among plans with micro-batch size b = {b}", full, started)


# ---------------------------------------------------------------- two tiers


def restrict_compute(problem: Problem, keep: set[str]) -> Problem:
    """The same problem where only the nodes in ``keep`` may compute (the others relay).

    Plans of the restricted problem are valid plans of ``problem`` with the same costs.
    """
    nodes = tuple(n if n.id in keep or not n.can_compute else replace(n, compute=False)
                  for n in problem.network.nodes)
    network = replace(problem.network, nodes=nodes)
    return Problem(network, problem.model, problem.training, problem.name,
                   problem.description, dict(problem.meta))


def _two_tier_bounds(problem: Problem, servers: list[str]) -> dict[str, float]:
    """A lower bound on T of every plan with exactly two stages, the second on the server.

    For stages (source: 1..j) and (s: j+1..L) at micro-batch size b, with a_j the activation
    the route carries, D_bw / D_lat the least sums of 1 / bandwidth / of latency over
    source-s paths, and the route's first hop on one of the source's links::

        S    >= t_src(1..j) + t_s(j+1..L) + 16 b a_j D_bw(s) + 2 D_lat(s)
        beta >= max(t_src(1..j), t_s(j+1..L), share * 2 (8 b a_j / bw_src + lat_src))

    (bw_src: the largest bandwidth, lat_src the least latency, share the least load share of
    the source's links); the bound is the least S + (M - 1) beta over every cut j and allowed
    b. Labels routes only add to both.
    """
    net, tr = problem.network, problem.training
    t = CostTables.from_problem(problem)
    g = net.graph
    inv_bw = nx.single_source_dijkstra_path_length(g, tr.source, weight=seconds_per_bit)
    lat = nx.single_source_dijkstra_path_length(g, tr.source, weight="latency")
    L = t.num_layers
    if L < 2:
        return {name: 0.0 for name in servers}
    b = np.array(_sizes(problem), dtype=float)[None, :]  # (1, nb)
    lam = np.ceil(tr.batch_size / b) - 1
    src = net.node_index[tr.source]
    a = t.out_bytes[1:L][:, None]  # (L-1, 1): the cut after layer j = 1..L-1
    cut = np.arange(1, L)[:, None]
    t_src = b * t.stage_alpha(src, 1, cut) + t.compute_beta[src]
    own = [e for e in range(len(t.link_u)) if src in (t.link_u[e], t.link_v[e])]
    if not own:
        return {name: np.inf for name in servers}
    first = t.load_share[own].min() * hop_seconds(b, a, t.inv_bandwidth[own].min(),
                                                  t.latency[own].min())
    out = {}
    for name in servers:
        n = net.node_index[name]
        t_s = b * t.stage_alpha(n, cut + 1, L) + t.compute_beta[n]
        s_lb = t_src + t_s + hop_seconds(b, a, inv_bw[name], lat[name])
        beta = np.maximum(np.maximum(t_src, t_s), first)
        out[name] = float(np.min(s_lb + lam * beta)) * (1 - 1e-9)
    return out


def solve_two_tier(problem: Problem, *, time_limit: float | None = None) -> SolveResult:
    """Classic two-tier split learning: the source plus the best single server.

    For every compute node reachable from the source, the exact planner solves the problem in
    which only the source and that server compute (optimising the cut, the routes and b);
    the least T wins. Servers are tried in order of a lower bound on their T
    (:func:`_two_tier_bounds`) and skipped once the bound reaches the incumbent. With one
    reachable server or none this is the full problem.

    Raises
    ------
    InfeasibleError
        When no two-tier plan fits in memory.
    """
    started = time.perf_counter()
    net, tr = problem.network, problem.training
    reach = nx.node_connected_component(net.graph, tr.source)
    servers = [n.id for n in net.compute_nodes if n.id != tr.source and n.id in reach]
    bounds = _two_tier_bounds(problem, servers)
    deadline = None if time_limit is None else started + time_limit
    best: SolveResult | None = None
    proven = True
    counters = {"servers": len(servers), "solves": 0, "pruned": 0}
    for server in sorted(servers, key=lambda x: bounds[x]) or [tr.source]:
        if best is not None and server in bounds and bounds[server] >= best.objective_s:
            counters["pruned"] += 1
            continue
        left = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
        try:
            result = solve_exact(restrict_compute(problem, {tr.source, server}),
                                 time_limit=left, method="two_tier")
        except InfeasibleError:
            continue
        counters["solves"] += 1
        proven &= result.optimal
        if best is None or result.objective_s < best.objective_s:
            best = result
    if best is None:
        raise InfeasibleError("two_tier: no plan on the source and one server fits in memory; "
                              + diagnose_infeasible(problem, _sizes(problem)))
    server = best.plan.stages[-1].node if best.plan.num_stages > 1 else "none"
    best = replace(best, optimal=proven, status="optimal" if proven else "time_limit")
    return _restricted(problem, best, "two_tier",
                       f"optimal among plans on the source and one server (chosen: {server})",
                       len(servers) <= 1, started, counters)


def _sizes(problem: Problem) -> list[int]:
    fixed = problem.training.micro_batch_size
    return [fixed] if fixed is not None else candidate_micro_batch_sizes(
        problem.training.batch_size)


# ---------------------------------------------------------------- bottleneck only


def _bottleneck_floor(ctx: Context) -> float:
    """A bound every plan's bottleneck meets: each layer runs on some compute node, layer 1
    on the source."""
    times = ctx.stage_times  # (C, L, L+1), +inf where a stage does not fit
    L = ctx.num_layers
    single = times[:, np.arange(L), np.arange(1, L + 1)]  # (C, L): one layer per stage
    return float(max(single.min(axis=0).max(), single[ctx.compute_pos[ctx.source], 0]))


class _Bisection:
    """The least-bottleneck search at one b, one threshold evaluation per :meth:`step`.

    Bisection on the threshold tau of :func:`~pipesl.solvers.threshold.evaluate_threshold`:
    a feasible tau returns a plan whose own bottleneck becomes the new upper end ``hi`` (it is
    the least-S plan among all with loads <= tau, so also among those with loads <= its own
    bottleneck); an infeasible tau raises the lower end ``lo``. Once the bracket is
    ``rel_tol`` narrow, steps just below ``hi`` walk down the remaining plans until none is
    left: the result is then exact (up to the planner's 1e-9 tolerance), not ``rel_tol`` close.
    """

    def __init__(self, ctx: Context, top: Point, rel_tol: float = _BISECT_REL):
        self.ctx = ctx
        self.best = top
        self.hi = top.bottleneck_s
        self.lo = min(_bottleneck_floor(ctx) * (1 - 1e-6), self.hi)
        self.rel_tol = rel_tol
        self.done = self.hi <= self.lo

    def step(self, deadline: float | None) -> None:
        walk = self.hi - self.lo <= self.rel_tol * self.hi
        tau = self.hi * (1 - 1e-8) if walk else (self.lo + self.hi) / 2
        if tau <= self.lo:
            self.done = True
            return
        point = evaluate_threshold(self.ctx, tau, deadline=deadline)
        if point.plan is not None:
            self.best, self.hi = point, point.bottleneck_s
        elif walk:
            self.done = True
        else:
            self.lo = tau

    def key(self, criterion: str) -> tuple[float, float]:
        """A lower bound on the (criterion, T) of this b's final plan; exact once done.

        The final plan has bottleneck >= lo and S >= the current best's S (the least S among
        plans with loads <= hi).
        """
        lam = self.ctx.bottleneck_weight
        beta = self.hi if self.done else self.lo
        t = self.best.sum_s + lam * beta
        return (t, 0.0) if criterion == "objective" else ((lam + 1) * beta, t)


def min_bottleneck_point(ctx: Context, *, deadline: float | None = None) -> Point | None:
    """The plan of least bottleneck at ``ctx.b``, ties broken by least S (None: no plan)."""
    top = evaluate_threshold(ctx, np.inf, deadline=deadline)
    if top.plan is None:
        return None
    search = _Bisection(ctx, top)
    while not search.done and (deadline is None or time.perf_counter() < deadline):
        search.step(deadline)
    return search.best


def solve_bottleneck_only(problem: Problem, *, criterion: str = "objective",
                          time_limit: float | None = None) -> SolveResult:
    """Minimise the pipeline bottleneck alone (PipeEdge-style throughput planning).

    The searches of all b = ceil(B / M) advance best-first, one threshold evaluation at a
    time, on the lower bound of :meth:`_Bisection.key`; the first finished search to reach the
    front wins (every other b's plan is at least its bound), so most b stop after a few steps.

    Parameters
    ----------
    problem : Problem
    criterion : {"objective", "throughput"}
        How b is chosen among the per-b least-bottleneck plans: by the true T (default) or by
        the steady-state time ``M * bottleneck`` (ties by T).
    time_limit : float, optional
        Seconds for the whole search; then the best finished b, else the best so far.

    Raises
    ------
    InfeasibleError
        When no plan fits in memory for any allowed b.
    """
    if criterion not in ("objective", "throughput"):
        raise ProblemError("criterion", "must be 'objective' or 'throughput'", criterion)
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    tables = CostTables.from_problem(problem)
    cache = RouteCache()
    counters = {"b_values": 0, "thresholds": 0}
    heap: list[tuple[tuple[float, float], int, _Bisection]] = []
    for b in _sizes(problem):
        ctx = Context(problem, tables, b, cache)
        top = evaluate_threshold(ctx, np.inf, deadline=deadline)
        counters["b_values"] += 1
        if top.plan is not None:
            search = _Bisection(ctx, top)
            heap.append((search.key(criterion), b, search))
    heapq.heapify(heap)
    winner: _Bisection | None = None
    while heap:
        _, b, search = heapq.heappop(heap)
        if search.done or (deadline is not None and time.perf_counter() > deadline):
            winner = search
            break
        search.step(deadline)
        counters["thresholds"] += 1
        heapq.heappush(heap, (search.key(criterion), b, search))
    if winner is None:
        raise InfeasibleError(diagnose_infeasible(problem, _sizes(problem)))
    plan = winner.best.plan
    assert plan is not None
    how = "b by T" if criterion == "objective" else "b by M x bottleneck"
    return finish(problem, plan, "bottleneck_only", optimal=False, started=started,
                  status="heuristic", counters=counters,
                  message=f"least-bottleneck plan per b, ties by S ({how}); fill latency "
                          "ignored in placement")


# ---------------------------------------------------------------- registry


def run_no_pipeline(problem: Problem, *, micro_batch_size: int | None = None,
                 time_limit: float | None = None) -> SolveResult:
    return solve_no_pipeline(problem, time_limit=time_limit)


def run_fixed_b(problem: Problem, *, micro_batch_size: int | None = None,
             time_limit: float | None = None) -> SolveResult:
    return solve_fixed_b(problem, micro_batch_size, time_limit=time_limit)


def run_two_tier(problem: Problem, *, micro_batch_size: int | None = None,
              time_limit: float | None = None) -> SolveResult:
    if micro_batch_size is not None:
        problem = problem.with_training(micro_batch_size=micro_batch_size)
    return solve_two_tier(problem, time_limit=time_limit)


def run_bottleneck_only(problem: Problem, *, micro_batch_size: int | None = None,
                     criterion: str = "objective",
                     time_limit: float | None = None) -> SolveResult:
    if micro_batch_size is not None:
        problem = problem.with_training(micro_batch_size=micro_batch_size)
    return solve_bottleneck_only(problem, criterion=criterion, time_limit=time_limit)
