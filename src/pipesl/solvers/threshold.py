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

from dataclasses import dataclass

import numpy as np

from pipesl.cost import resource_loads
from pipesl.plan import Plan, validate_plan
from pipesl.problem.types import Problem
from pipesl.solvers.layered import Context, relaxed_dp, relaxed_plan
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


def true_bottleneck(problem: Problem, plan: Plan) -> tuple[float, float]:
    """(S, beta) of ``plan`` at its micro-batch size, from cost.py."""
    from pipesl.cost import plan_stages

    b = plan.micro_batch_size
    s = sum(st.time(b) for st in plan_stages(problem, plan))
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
    _, beta = true_bottleneck(ctx.problem, plan)
    return beta <= tau * (1 + REL_TOL)


def evaluate_threshold(ctx: Context, tau: float, upper: float = np.inf, *,
                       deadline: float | None = None) -> Point:
    """S*(tau) exactly, with its plan; or a proof that S*(tau) >= ``upper``.

    Parameters
    ----------
    ctx : Context
    tau : float
        Threshold on every resource load (inf: none).
    upper : float
        Plans with S >= upper are of no interest (prunes the search).
    deadline : float, optional
        ``time.perf_counter()`` at which the search stops (the point is then incomplete).
    """
    dp = relaxed_dp(ctx, tau)
    if not np.isfinite(dp.value):
        return Point(tau, None, np.inf, np.inf)
    if dp.value >= upper:
        return Point(tau, None, dp.value, np.inf, relaxed_s=dp.value)
    plan = relaxed_plan(ctx, dp)
    assert plan is not None
    if plan_loads_ok(ctx, plan, tau):
        s, beta = true_bottleneck(ctx.problem, plan)
        return Point(tau, plan, s, beta, relaxed_s=dp.value)
    found = exact_min_sum(ctx, dp, upper, deadline=deadline)
    if found.plan is None:
        return Point(tau, None, max(found.value, dp.value), np.inf, found.complete, True,
                     found.expanded, dp.value)
    s, beta = true_bottleneck(ctx.problem, found.plan)
    return Point(tau, found.plan, s, beta, True, True, found.expanded, dp.value)
