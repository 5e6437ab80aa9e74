"""One result type for every solver, and the ``method=`` registry (scipy ``minimize`` style)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipesl.cost import Evaluation, evaluate, plan_document
from pipesl.exceptions import ProblemError
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = ["SOLVERS", "SolveResult", "finish", "register", "solve", "solver_names"]


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
        return plan_document(self.evaluation, solver)


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
        counters=dict(counters or {}), history=history, evaluation=ev)


SolverFn = Callable[..., SolveResult]
SOLVERS: dict[str, tuple[SolverFn, str]] = {}


def register(name: str, summary: str) -> Callable[[SolverFn], SolverFn]:
    """Decorator adding a solver ``fn(problem, **options) -> SolveResult`` to the registry."""

    def deco(fn: SolverFn) -> SolverFn:
        SOLVERS[name] = (fn, summary)
        return fn

    return deco


def solver_names() -> list[str]:
    """Registered method names."""
    _load_all()
    return sorted(SOLVERS)


def _load_all() -> None:
    # Importing the package registers every solver module.
    import pipesl.solvers  # noqa: F401


def solve(problem: Problem, method: str = "exact", **options: Any) -> SolveResult:
    """Plan ``problem`` with solver ``method``.

    Parameters
    ----------
    problem : Problem
    method : str
        A registered name (``pipesl.solvers.solver_names()``); ``exact`` (default) is the
        joint optimum over plans and micro-batch sizes.
    **options
        Passed to the solver (e.g. ``micro_batch_size``, ``time_limit``).

    Returns
    -------
    SolveResult

    Raises
    ------
    ProblemError
        Unknown method (the message lists the valid names).
    InfeasibleError
        No valid plan exists; the message names the binding constraint.
    """
    _load_all()
    if method not in SOLVERS:
        raise ProblemError("method", f"is not a solver; choose one of "
                           f"{', '.join(sorted(SOLVERS))}", method)
    started = time.perf_counter()
    result = SOLVERS[method][0](problem, **options)
    return replace(result, seconds=time.perf_counter() - started)
