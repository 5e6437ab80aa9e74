"""The exact joint optimum over plans and micro-batch sizes (pipesl's default method).

Only the distinct values of M = ceil(B/b) matter: for a fixed M every stage time, every load
and every memory need is non-decreasing in b, so ``b_M = ceil(B/M)`` dominates the other b with
the same M. For each such b the threshold method of :mod:`pipesl.solvers.threshold` finds
T*(b); all gaps of all b share one best-first queue keyed by their lower bounds, so a b whose
bound cannot beat the incumbent is never solved. Bounds before any work on b
(:class:`~pipesl.cost.analytic_bounds.AnalyticBounds`), from the source's cut j — it runs
layers 1..j (and must hold them), one of its own links carries layer j's output, the rest runs
no faster than the fastest other node:

* ``S >= min_j [t_src(1..j) + least hop time of layer j + b (W_L - W_j) / max flops + 2 o]``,
  and, because the relaxed first-micro-batch time is non-decreasing in b, S >= the relaxed S
  of every smaller b already solved;
* ``beta >= min_j max(t_src(1..j), least hop load of layer j)`` and ``beta >=
  max_l min_c t_c(l..l)`` (every layer runs somewhere).

The search stops when the smallest open bound reaches the incumbent: the incumbent is then
optimal (``optimal = True``, lower bound = objective). A time limit returns the incumbent with
``optimal = False`` and the smallest open bound as the lower bound.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from pipesl.cost import CostTables, num_micro_batches
from pipesl.cost.analytic_bounds import AnalyticBounds
from pipesl.exceptions import InfeasibleError
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.solvers.diagnose import diagnose_infeasible
from pipesl.solvers.layered import Context
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from pipesl.solvers.result import SolveResult, finish
from pipesl.solvers.routes import RouteCache
from pipesl.solvers.threshold import REL_TOL, Point, evaluate_threshold, true_bottleneck

__all__ = ["candidate_micro_batch_sizes", "solve_exact"]

_Bounds = AnalyticBounds  # the name the certified planner (solvers/makespan.py) imports

log = logging.getLogger(__name__)

_BISECT_MIN = 1e-4
"""Gaps narrower than this fraction of their top are walked point by point, not bisected."""
_BUDGET = 256
"""Branch-and-bound nodes a threshold evaluation gets at first; an evaluation that runs out is
retried later, from the queue, with four times the budget (by then the incumbent may prune)."""
_MILP_AFTER = 4 * _BUDGET
"""An evaluation of b that exhausts this budget hands b to the MILP (when it is small enough):
its LP relaxation is much tighter than the DP's on memory-bound chains that need nearly every
node, where branching on node reuse grows exponentially."""
_MILP_MAX_VARIABLES = 60_000
_CONTEXT_BYTES = 512 * 2**20
"""Memory budget for the per-b contexts kept alive at once (their stage-time tensors)."""


def solve_exact(problem: Problem, micro_batch_sizes: Iterable[int] | None = None, *,
                time_limit: float | None = None, method: str = "exact",
                per_step: bool = False) -> SolveResult:
    """The plan and micro-batch size of least T (SPEC section 3), with a proof.

    Parameters
    ----------
    problem : Problem
    micro_batch_sizes : iterable of int, optional
        Restrict b to these values (default: the problem's fixed b, else every b = ceil(B/M)).
    time_limit : float, optional
        Seconds; on expiry the best plan so far is returned with ``optimal = False``.
    per_step : bool
        Minimise ``S + (M - 1) * (largest load of one step)`` instead of T: hops sharing a
        link are not summed. Its optimum bounds GPipe's makespan from below where no label
        route follows (``pipesl.cost.bounds``, bound 5); the result's ``lower_bound_s`` is
        then a proven lower bound on that optimum (its ``objective_s`` stays the plan's T).

    Raises
    ------
    InfeasibleError
        No valid plan for any allowed b; the message names the binding constraint.
    """
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    tables = CostTables.from_problem(problem)
    B = problem.training.batch_size
    if micro_batch_sizes is not None:
        sizes = sorted({int(b) for b in micro_batch_sizes})
    elif problem.training.micro_batch_size is not None:
        sizes = [problem.training.micro_batch_size]
    else:
        sizes = candidate_micro_batch_sizes(B)
    bounds = AnalyticBounds(problem, tables)
    contexts: OrderedDict[int, Context] = OrderedDict()
    cache = RouteCache()
    per_context = 8 * int(tables.can_compute.sum()) * tables.num_layers * (tables.num_layers + 1)
    max_contexts = max(4, _CONTEXT_BYTES // max(per_context, 1))
    counters = {"dp_passes": 0, "dijkstra_runs": 0, "thresholds": 0, "searches": 0,
                "search_nodes": 0, "branches": 0, "gaps_pruned": 0, "retries": 0, "milp": 0,
                "b_values": len(sizes),
                "b_solved": 0}

    def context(b: int) -> Context:
        ctx = contexts.get(b)
        if ctx is None:
            ctx = Context(problem, tables, b, cache)
            ctx.per_step = per_step
            contexts[b] = ctx
            if len(contexts) > max_contexts:
                _, old = contexts.popitem(last=False)
                _absorb(counters, old)
        contexts.move_to_end(b)
        return ctx

    best_t = np.inf
    best_plan: Plan | None = None
    relaxed_top: dict[int, float] = {}
    # (lower bound, seq, kind, b, lo, hi, S at hi, budget): kind "top" is b's first evaluation
    # (tau = inf), "gap" an open interval (lo, hi) of thresholds of b.
    heap: list[tuple[float, int, str, int, float, float, float, int]] = []
    seq = itertools.count()
    for b in sizes:
        lam = num_micro_batches(B, b) - 1
        heapq.heappush(heap, (bounds.sum_lb(b) + lam * bounds.beta_lb(b), next(seq), "top", b,
                              0.0, np.inf, 0.0, _BUDGET))

    def offer(plan: Plan | None, lam: int) -> None:
        nonlocal best_t, best_plan
        if plan is None:
            return
        s_plan, beta = true_bottleneck(problem, plan, per_step)
        t = s_plan + lam * beta
        if t < best_t:
            best_t, best_plan = t, plan
            log.info("incumbent T=%.6g b=%d stages=%d", t, plan.micro_batch_size,
                     plan.num_stages)

    resolved: set[int] = set()
    milp_bounds: list[float] = []
    edges = 2 * len(tables.link_u) * max(tables.num_layers - 1, 0)
    stage_vars = int(tables.can_compute.sum()) * tables.num_layers * (tables.num_layers + 1) // 2
    milp_ok = stage_vars + edges <= _MILP_MAX_VARIABLES and not per_step

    def resolve_by_milp(b: int, lam: int) -> None:
        """T*(b) by the MILP; b leaves the queue (its bound stays when HiGHS stops early)."""
        from pipesl.solvers.milp import solve_milp_for_b  # milp imports this module

        left = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
        out = solve_milp_for_b(problem, b, time_limit=left, tables=tables)
        counters["milp"] += 1
        resolved.add(b)
        offer(out.plan, lam)
        if out.status not in (0, 2):  # stopped by the time limit: keep HiGHS's bound
            milp_bounds.append(out.bound_s)

    stopped = False
    while heap:
        lb, _, kind, b, lo, hi, s_hi, budget = heap[0]
        if lb >= best_t * (1 - REL_TOL):
            break
        if deadline is not None and time.perf_counter() > deadline:
            stopped = True
            break
        heapq.heappop(heap)
        if b in resolved:
            continue
        lam = num_micro_batches(B, b) - 1
        beta_lb = bounds.beta_lb(b)
        counters["thresholds"] += 1
        if kind == "top":
            below = [v for bb, v in relaxed_top.items() if bb < b]
            sharper = max([bounds.sum_lb(b), *below]) + lam * beta_lb
            if sharper > lb * (1 + REL_TOL):
                heapq.heappush(heap, (sharper, next(seq), "top", b, lo, hi, s_hi, budget))
                continue
            ctx = context(b)
            counters["b_solved"] += 1
            point = evaluate_threshold(ctx, np.inf, best_t - lam * beta_lb, deadline=deadline,
                                       budget=budget)
            relaxed_top[b] = point.relaxed_s if np.isfinite(point.relaxed_s) else point.sum_s
            _count(counters, point)
            offer(point.plan or point.feasible, lam)
            if not point.complete and budget >= _MILP_AFTER and milp_ok:
                resolve_by_milp(b, lam)
                continue
            if not point.complete and budget >= _MILP_AFTER and per_step:
                milp_bounds.append(max(lb, point.sum_s + lam * beta_lb))  # b stays open
                resolved.add(b)
                continue
            if not point.complete:  # retry later with a larger budget
                counters["retries"] += 1
                heapq.heappush(heap, (max(lb, point.sum_s + lam * beta_lb), next(seq), "top",
                                      b, lo, hi, s_hi, budget * 4))
                continue
            if point.plan is not None and point.bottleneck_s > beta_lb * (1 + REL_TOL) \
                    and lam > 0:
                heapq.heappush(heap, (point.sum_s + lam * beta_lb, next(seq), "gap", b,
                                      beta_lb, point.bottleneck_s, point.sum_s, _BUDGET))
            continue
        # a gap (lo, hi) of b
        ctx = context(b)
        walk = hi - lo <= _BISECT_MIN * hi
        tau = hi * (1 - REL_TOL * 10) if walk else (lo + hi) / 2
        point = evaluate_threshold(ctx, tau, best_t - lam * lo, deadline=deadline,
                                   budget=budget)
        _count(counters, point)
        offer(point.plan or point.feasible, lam)
        if not point.complete and budget >= _MILP_AFTER and milp_ok:
            resolve_by_milp(b, lam)
            continue
        if not point.complete:  # retry the same gap later with a larger budget
            counters["retries"] += 1
            sharper = min(point.sum_s + lam * lo, (s_hi + lam * tau) if not walk else np.inf)
            if budget >= _MILP_AFTER and per_step:  # no MILP for per-step loads: b stays open
                milp_bounds.append(lb)  # the least bound of b's open gaps (heap order)
                resolved.add(b)
                continue
            heapq.heappush(heap, (max(lb, sharper), next(seq), "gap", b, lo, hi, s_hi,
                                  budget * 4))
            continue
        if point.plan is not None:
            if point.bottleneck_s > lo * (1 + REL_TOL):
                heapq.heappush(heap, (point.sum_s + lam * lo, next(seq), "gap", b, lo,
                                      point.bottleneck_s, point.sum_s, _BUDGET))
        else:
            counters["gaps_pruned"] += 1
        if not walk:  # a walk step just below hi leaves nothing open above tau
            heapq.heappush(heap, (s_hi + lam * tau, next(seq), "gap", b, tau, hi, s_hi,
                                  _BUDGET))
    for ctx in contexts.values():
        _absorb(counters, ctx)
    if best_plan is None:
        if stopped:
            raise InfeasibleError("time limit: no valid plan found before the limit "
                                  f"({time_limit} s); raise --time-limit")
        raise InfeasibleError(diagnose_infeasible(problem, sizes))
    if milp_bounds:
        stopped = True
    open_items = [item[0] for item in heap if item[3] not in resolved]
    lower = min([best_t, *open_items, *milp_bounds]) if stopped else best_t
    optimal = not stopped
    status = "optimal" if optimal else "time_limit"
    message = "" if optimal else (f"stopped before a proof; optimality gap "
                                  f"{(best_t - lower) / best_t:.2%}")
    result = finish(problem, best_plan, method, optimal=optimal, lower_bound_s=lower,
                    started=started, status=status, message=message, counters=counters)
    if per_step:  # the bound on the per-step objective, not on T
        from dataclasses import replace

        return replace(result, lower_bound_s=float(lower))
    return result


def _count(counters: dict[str, int], point: Point) -> None:
    counters["branches"] += point.branches
    if point.searched:
        counters["searches"] += 1
        counters["search_nodes"] += point.expanded


def _absorb(counters: dict[str, int], ctx: Context) -> None:
    counters["dp_passes"] += ctx.dp_passes
    counters["dijkstra_runs"] += ctx.routes.dijkstra_runs
    ctx.dp_passes = 0
    ctx.routes.dijkstra_runs = 0


def run_exact(problem: Problem, *, micro_batch_size: int | None = None,
           time_limit: float | None = None) -> SolveResult:
    sizes = None if micro_batch_size is None else [micro_batch_size]
    return solve_exact(problem, sizes, time_limit=time_limit)
