"""One result type for every solver (scipy ``OptimizeResult`` style); the registry and
:func:`~pipesl.solvers.solve` are in :mod:`pipesl.solvers` itself."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipesl.cost import Evaluation, evaluate, plan_document
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = ["OBJECTIVES", "SolveResult", "SolverFn", "finish"]


@dataclass(frozen=True)
class SolveResult:
    """What every solver returns.

    ``objective_s`` is always recomputed from the plan by :func:`pipesl.cost.evaluate`, never
    taken from a path length.
    """

    plan: Plan
    objective_s: float
    micro_batch_size: int
    num_micro_batches: int
    optimal: bool
    """True only when the solver proved that no valid plan is better."""
    lower_bound_s: float
    """A proven lower bound on the optimum (equal to ``objective_s`` when optimal)."""
    method: str
    status: str = "optimal"
    """``optimal``, ``feasible`` (a plan without proof), ``time_limit`` or ``heuristic``."""
    message: str = ""
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    """Work done: DP passes, Dijkstra runs, thresholds pruned, search nodes, ..."""
    history: tuple[tuple[int, float], ...] = ()
    """(b, T) per step for iterative methods (alternating)."""
    evaluation: Evaluation | None = field(default=None, compare=False, repr=False)
    objective: str = "analytic"
    """What ``objective_s`` is and what the solver minimised: ``analytic`` (SPEC section 3's
    T) or ``makespan`` (the simulated makespan of ``training.schedule``, SPEC section 5)."""
    analytic_s: float = math.nan
    """T(plan, b) of SPEC section 3 (equal to ``objective_s`` when ``objective`` is analytic)."""

    def document(self) -> dict[str, Any]:
        """The SPEC section 4 plan object (with the solver block)."""
        assert self.evaluation is not None
        solver = {"name": self.method, "optimal": self.optimal, "status": self.status,
                  "lower_bound_s": self.lower_bound_s, "seconds": self.seconds,
                  "counters": dict(self.counters)}
        if self.history:
            solver["history"] = [{"micro_batch_size": b, "objective_s": t}
                                 for b, t in self.history]
        if self.message:
            solver["message"] = self.message
        doc = plan_document(self.evaluation, solver)
        out = {"objective_s": self.objective_s, "analytic_s": self.evaluation.objective_s,
               "objective": self.objective}
        out.update((k, v) for k, v in doc.items() if k != "objective_s")
        return out


def finish(problem: Problem, plan: Plan, method: str, *, optimal: bool,
           lower_bound_s: float | None = None, started: float | None = None,
           status: str | None = None, message: str = "",
           counters: dict[str, int] | None = None,
           history: tuple[tuple[int, float], ...] = ()) -> SolveResult:
    """Evaluate ``plan`` with cost.py and wrap it in a :class:`SolveResult`."""
    ev = evaluate(problem, plan)
    lb = ev.objective_s if optimal else (lower_bound_s if lower_bound_s is not None else 0.0)
    return SolveResult(
        plan=plan, objective_s=ev.objective_s, micro_batch_size=ev.micro_batch_size,
        num_micro_batches=ev.num_micro_batches, optimal=optimal,
        lower_bound_s=min(lb, ev.objective_s), method=method,
        status=status or ("optimal" if optimal else "feasible"), message=message,
        seconds=(time.perf_counter() - started) if started is not None else 0.0,
        counters=dict(counters or {}), history=history, evaluation=ev,
        analytic_s=ev.objective_s)


SolverFn = Callable[..., SolveResult]
"""A solver: ``fn(problem, **options) -> SolveResult``."""

OBJECTIVES = ("makespan", "analytic")
"""What a solve minimises: the schedule's simulated makespan, or SPEC section 3's T."""
