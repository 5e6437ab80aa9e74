"""Exact planning for one micro-batch size: min S + (M-1) * max load over thresholds.

For a fixed b the objective of SPEC section 3 is ``S(plan) + lambda * beta(plan)`` with
``lambda = M - 1``, S the sum of stage times and beta the largest resource load. Let
``S*(tau)`` be the least S over valid plans whose loads are all <= tau (computed exactly by
:func:`evaluate_threshold`: the relaxed DP, and the A* search when the DP's plan shares a link,
reuses a node or breaks the 1F1B window). S* is a non-increasing step function and

    T*(b) = min over tau of S*(tau) + lambda * beta(plan at tau).

An evaluation at tau returns a plan with loads beta <= tau; it is optimal for every threshold
in [beta, tau] (*covers* that interval). For an uncovered gap (lo, hi) — hi the beta of a
known plan with sum S_hi — every new plan has S >= S_hi and beta > lo, so

    LB(gap) = S_hi + lambda * lo

and the gap is closed when LB >= the incumbent T. Gaps are bisected best-first (see
:mod:`pipesl.solvers.exact`, which runs the gaps of all b in one priority queue); a gap too
narrow to bisect is closed by a "walk" step just below hi, which returns the next Pareto point.
This is the paper's threshold method (sort the distinct weights, Dijkstra per threshold,
prune by a lower bound) with the thresholds found by bisection instead of enumerated.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass

import numpy as np

from pipesl.cost import resource_loads
from pipesl.plan import Plan, validate_plan
from pipesl.problem.types import Problem
from pipesl.solvers.layered import (
    Context,
    RelaxedDP,
    branch,
    relaxed_dp,
    relaxed_plan,
    reused_node,
)
from pipesl.solvers.search import exact_min_sum

__all__ = ["Point", "evaluate_threshold", "plan_loads_ok", "true_bottleneck"]

REL_TOL = 1e-9
"""Relative tolerance between the DP's arithmetic and cost.py's re-evaluation."""


@dataclass(frozen=True)
class Point:
    """The result of one threshold evaluation."""

    tau: float
    plan: Plan | None
    """A plan with least S among those with every load <= tau (None: none, or pruned)."""
    sum_s: float
    """S of ``plan``; without a plan, a lower bound on S*(tau) (inf: infeasible)."""
    bottleneck_s: float
    """beta of ``plan`` (its largest true resource load)."""
    complete: bool = True
    """False when a search limit stopped the exact search."""
    searched: bool = False
    """True when the DP's plan was not valid and the A* search ran."""
    expanded: int = 0
    relaxed_s: float = np.inf
    """The relaxed DP's value at tau (a lower bound on S*(tau))."""
    branches: int = 0
    """Branch-and-bound children created for nodes the relaxation reused."""
    feasible: Plan | None = None
    """When incomplete: the best valid plan met so far (loads <= tau), unproven."""


def true_bottleneck(problem: Problem, plan: Plan, per_step: bool = False
                    ) -> tuple[float, float]:
    """(S, beta) of ``plan`` at its micro-batch size, from cost.py.

    ``per_step``: beta is the largest load of any one step on any one resource (what the
    relaxed DP prices; hops that share a link are not summed) instead of the largest
    resource load.
    """
    from pipesl.cost import plan_stages

    b = plan.micro_batch_size
    stages = plan_stages(problem, plan)
    s = sum(st.time(b) for st in stages)
    if per_step:
        beta = max(a(b) for st in stages for _, a in st.loads)
    else:
        beta = max(a(b) for a in resource_loads(problem, plan).values())
    return s, beta


def plan_loads_ok(ctx: Context, plan: Plan, tau: float) -> bool:
    """True when ``plan`` is valid, fits memory with the true window and loads <= tau."""
    from pipesl.cost import feasible_micro_batch_sizes
    from pipesl.exceptions import PlanError

    try:
        validate_plan(ctx.problem, plan)
    except PlanError:
        return False
    if not feasible_micro_batch_sizes(ctx.problem, plan)[ctx.b - 1]:
        return False
    _, beta = true_bottleneck(ctx.problem, plan, ctx.per_step)
    return beta <= tau * (1 + REL_TOL)


def evaluate_threshold(ctx: Context, tau: float, upper: float = np.inf, *,
                       deadline: float | None = None, budget: int = 4096) -> Point:
    """S*(tau) exactly, with its plan; or a proof that S*(tau) >= ``upper``.

    Best-first branch and bound over the relaxed DP. A relaxed plan that puts two stages on
    one node is split by :func:`~pipesl.solvers.layered.branch` (that node's stage lies
    before, after, or across the layer where its first stage ended); a relaxed plan with
    distinct nodes that still shares a link too much (or breaks the 1F1B window) goes to the
    A* search (:func:`~pipesl.solvers.search.exact_min_sum`) restricted to the branch. Each
    branch's DP value is a lower bound for it, so the search ends when the best open bound
    reaches the best plan found (or ``upper``). It starts with a dive — always the best
    child — to meet a valid plan early, whose S then prunes.

    Parameters
    ----------
    ctx : Context
    tau : float
        Threshold on every resource load (inf: none).
    upper : float
        Plans with S >= upper are of no interest (prunes the search).
    deadline : float, optional
        ``time.perf_counter()`` at which the search stops (the point is then incomplete).
    budget : int
        Branch-and-bound nodes allowed (A* gets 64 expansions per node); beyond it the point
        is incomplete: its ``sum_s`` is then a lower bound and ``feasible`` the best valid plan
        met. The caller may retry with a larger budget.
    """
    root = relaxed_dp(ctx, tau)
    if not np.isfinite(root.value):
        return Point(tau, None, np.inf, np.inf)
    if root.value >= upper:
        return Point(tau, None, root.value, np.inf, relaxed_s=root.value)
    best: Plan | None = None
    best_s = upper
    searched = False
    expanded = branches = nodes = 0
    counter = itertools.count()
    heap: list[tuple[float, int, RelaxedDP]] = []
    dive: RelaxedDP | None = root
    stopped = False
    while dive is not None or heap:
        if dive is not None:
            dp, bound, dive = dive, dive.value, None
        else:
            bound, _, dp = heapq.heappop(heap)
        if bound >= best_s:
            continue
        nodes += 1
        if nodes > budget or (deadline is not None and time.perf_counter() > deadline):
            heapq.heappush(heap, (bound, next(counter), dp))
            stopped = True
            break
        plan = relaxed_plan(ctx, dp)
        assert plan is not None
        reuse = reused_node(ctx, plan)
        if reuse is not None:
            children = []
            for windows in branch(dp.windows, reuse[0], reuse[1], ctx.num_layers):
                branches += 1
                child = relaxed_dp(ctx, tau, windows)
                if child.value < best_s:
                    children.append(child)
            if children and best is None:  # still diving: follow the best child first
                children.sort(key=lambda c: c.value)
                dive = children.pop(0)
            for child in children:
                heapq.heappush(heap, (child.value, next(counter), child))
            continue
        if plan_loads_ok(ctx, plan, tau):
            best, best_s = plan, true_bottleneck(ctx.problem, plan)[0]
            continue
        if ctx.per_step:  # the A* search sums shared links: no proof for per-step loads
            heapq.heappush(heap, (bound, next(counter), dp))
            stopped = True
            break
        searched = True
        allowance = 64 * max(1, budget - nodes)
        found = exact_min_sum(ctx, dp, best_s, deadline=deadline, max_expansions=allowance)
        expanded += found.expanded
        if found.plan is not None:
            best, best_s = found.plan, true_bottleneck(ctx.problem, found.plan)[0]
        elif not found.complete:
            heapq.heappush(heap, (max(found.value, bound), next(counter), dp))
            stopped = True
            break
    if stopped:  # a limit stopped the proof: report the bound, and what was found
        bound = min([best_s, *(h[0] for h in heap)])
        return Point(tau, None, max(bound, root.value), np.inf, False, searched, expanded,
                     root.value, branches, best)
    if best is None:
        return Point(tau, None, max(upper, root.value), np.inf, True, searched, expanded,
                     root.value, branches)
    s, beta = true_bottleneck(ctx.problem, best, ctx.per_step)
    return Point(tau, best, s, beta, True, searched, expanded, root.value, branches)
