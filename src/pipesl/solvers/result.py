"""One result type for every solver, and the ``method=`` registry (scipy ``minimize`` style)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipesl.cost import Evaluation, evaluate, plan_document
from pipesl.exceptions import ProblemError
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = ["OBJECTIVES", "SOLVERS", "SolveResult", "finish", "register", "solve", "solver_names"]


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


OBJECTIVES = ("makespan", "analytic")
"""What a solve minimises: the schedule's simulated makespan, or SPEC section 3's T."""


def solve(problem: Problem, method: str = "exact", objective: str = "analytic",
          **options: Any) -> SolveResult:
    """Plan ``problem`` with solver ``method``.

    Parameters
    ----------
    problem : Problem
    method : str
        A registered name (``pipesl.solvers.solver_names()``); ``exact`` (default) is the
        joint optimum over plans and micro-batch sizes.
    objective : {"analytic", "makespan"}
        ``analytic`` (the library default, the paper's objective): minimise SPEC section 3's
        T. ``makespan`` (``pipesl plan``'s default): minimise the simulated makespan of
        ``training.schedule`` — ``exact`` then runs the certified search of
        :mod:`pipesl.solvers.makespan`, ``bruteforce`` enumerates and simulates every plan
        and b; any other method keeps its plan and reports that plan's makespan as
        ``objective_s`` (with ``optimal = False``: it did not minimise it).
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
    if objective not in OBJECTIVES:
        raise ProblemError("objective", f"must be one of {', '.join(OBJECTIVES)}", objective)
    started = time.perf_counter()
    if objective == "makespan" and method in ("exact", "bruteforce", "makespan"):
        from pipesl.solvers.bruteforce import solve_bruteforce_makespan

        fn = solve_bruteforce_makespan if method == "bruteforce" else SOLVERS["makespan"][0]
        result = fn(problem, **options)
    else:
        result = SOLVERS[method][0](problem, **options)
        if objective == "makespan" and result.objective != "makespan":
            from pipesl.solvers.makespan import plan_makespan

            result = replace(result, objective_s=plan_makespan(problem, result.plan),
                             objective="makespan", optimal=False, lower_bound_s=0.0,
                             status="feasible" if result.status == "optimal" else result.status,
                             message=(f"{method} minimises the analytic T; objective_s is "
                                      "its plan's simulated makespan"))
    return replace(result, seconds=time.perf_counter() - started)
