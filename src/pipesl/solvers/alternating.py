"""The paper's joint method: alternate the placement for b and the closed-form b for a plan.

    b_0 -> optimal plan for b_0 -> closed-form b_1 for that plan -> optimal plan for b_1 -> ...

until T stops decreasing. Each half-step cannot increase T (the plan is optimal for its b; the
micro-batch size is optimal for its plan), so the sequence is monotone and stops after finitely
many steps; it may stop at a local optimum, which the ``exact`` method avoids.
"""

from __future__ import annotations

import time

from pipesl.cost import num_micro_batches
from pipesl.exceptions import InfeasibleError
from pipesl.problem.types import Problem
from pipesl.solvers.exact import solve_exact
from pipesl.solvers.microbatch import best_micro_batch_size
from pipesl.solvers.result import SolveResult, finish

__all__ = ["solve_alternating"]


def solve_alternating(problem: Problem, initial_micro_batch_size: int | None = None, *,
                      max_rounds: int = 50, time_limit: float | None = None) -> SolveResult:
    """Alternating optimisation of placement and micro-batch size (the paper's method).

    Parameters
    ----------
    problem : Problem
    initial_micro_batch_size : int, optional
        b_0; default ``ceil(B / 4)`` (four micro-batches), or the problem's fixed b.
    max_rounds : int
        Safety cap on rounds.
    time_limit : float, optional
        Per placement solve.

    Returns
    -------
    SolveResult
        ``history`` lists (b, T) after every placement step; ``optimal`` is True only when b
        is fixed by the problem (then the single placement solve is exact).
    """
    started = time.perf_counter()
    B = problem.training.batch_size
    fixed = problem.training.micro_batch_size
    b = fixed or initial_micro_batch_size or max(1, num_micro_batches(B, 4))
    history: list[tuple[int, float]] = []
    counters = {"rounds": 0, "dp_passes": 0, "searches": 0}
    plan = None
    current = float("inf")
    placement_optimal = False
    for _ in range(max_rounds):
        counters["rounds"] += 1
        try:
            result = solve_exact(problem, [b], time_limit=time_limit, method="alternating")
        except InfeasibleError:
            if plan is not None or b == 1 or fixed is not None:
                raise
            b = 1  # 1F1B memory grows with b: restart from the smallest micro-batch
            continue
        for key in ("dp_passes", "searches"):
            counters[key] += result.counters.get(key, 0)
        if result.objective_s >= current * (1 - 1e-12):
            break  # the placement step no longer improves T
        plan, current, placement_optimal = result.plan, result.objective_s, result.optimal
        history.append((b, current))
        if fixed is not None:
            break
        b_next, t_next = best_micro_batch_size(problem, plan)
        if b_next == b or t_next >= current * (1 - 1e-12):
            break  # the micro-batch step no longer improves T
        plan, current, b = plan.with_micro_batch_size(b_next), t_next, b_next
        history.append((b, current))
    assert plan is not None
    return finish(problem, plan, "alternating", optimal=fixed is not None and placement_optimal,
                  lower_bound_s=0.0, started=started,
                  status="optimal" if fixed is not None else "heuristic",
                  counters=counters, history=tuple(history))


def run_alternating(problem: Problem, *, micro_batch_size: int | None = None,
                 time_limit: float | None = None) -> SolveResult:
    return solve_alternating(problem, micro_batch_size, time_limit=time_limit)
