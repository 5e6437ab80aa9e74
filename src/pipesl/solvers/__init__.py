"""Planners: where to cut the model, where each stage runs, the routes, and b.

``solve(problem, method=...)`` (below) looks ``method`` up in :data:`SOLVERS`, an explicit
table of every planner, and returns a :class:`SolveResult`. The pieces, from the inside out:

* :mod:`~pipesl.solvers.basp`, :mod:`~pipesl.solvers.decision_graph` — **the paper's
  reference algorithm**: the bottleneck-aware shortest path over any DiGraph, and the explicit
  layered decision graph it runs on; :mod:`~pipesl.solvers.reference` runs them per b
  (``method="basp"``, small problems; the tests' reference for the graph);
* **the fast path** (``method="exact"``, the default): :mod:`~pipesl.solvers.routes` and
  :mod:`~pipesl.solvers.layered` — the same graph's DP without building it;
  :mod:`~pipesl.solvers.search` — exact A* with shared links and distinct nodes;
  :mod:`~pipesl.solvers.threshold`, :mod:`~pipesl.solvers.exact` — thresholds and b, proven
  with the bounds of :mod:`pipesl.cost.analytic_bounds`;
* :mod:`~pipesl.solvers.makespan` — the least *simulated* makespan of the schedule, certified
  by branch and bound on valid makespan bounds (:mod:`pipesl.cost.bounds`), with its per-b
  tables (:mod:`~pipesl.solvers.makespan_tables`), GPipe's split floor
  (:mod:`~pipesl.solvers.split_floor`) and one plan's makespan
  (:mod:`~pipesl.solvers.makespan_eval`);
* :mod:`~pipesl.solvers.microbatch` — the closed-form micro-batch size and the candidate b;
* :mod:`~pipesl.solvers.alternating` — the paper's alternating optimisation;
* :mod:`~pipesl.solvers.bruteforce` — exhaustive enumeration for small problems (tests);
* :mod:`~pipesl.solvers.milp` — the same problem as a mixed-integer program (HiGHS), per b;
* :mod:`~pipesl.solvers.baselines`, :mod:`~pipesl.solvers.heuristics` — what the planner is
  compared with: no pipelining, two tiers, a fixed b, bottleneck-only, and rules of thumb;
* :mod:`~pipesl.solvers.owners` — several data owners (``training.sources``): the certified
  joint search (:mod:`~pipesl.solvers.owners_search`), the heuristic
  (:mod:`~pipesl.solvers.owners_heuristic`) and the baselines; ``solve`` dispatches to it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, cast

from pipesl.cost.fits import check_source_alone
from pipesl.exceptions import ProblemError
from pipesl.problem.types import Problem
from pipesl.solvers import (
    alternating,
    baselines,
    bruteforce,
    exact,
    heuristics,
    makespan,
    milp,
    reference,
)
from pipesl.solvers.basp import BaspResult, bottleneck_aware_shortest_path
from pipesl.solvers.bruteforce import solve_bruteforce_makespan
from pipesl.solvers.exact import solve_exact
from pipesl.solvers.makespan import plan_makespan, solve_makespan
from pipesl.solvers.microbatch import (
    best_micro_batch_size,
    candidate_micro_batch_sizes,
    search_micro_batch_size,
)
from pipesl.solvers.result import OBJECTIVES, SolveResult, SolverFn

__all__ = [
    "MAKESPAN_TIME_LIMIT",
    "OBJECTIVES",
    "SOLVERS",
    "BaspResult",
    "SolveResult",
    "best_micro_batch_size",
    "bottleneck_aware_shortest_path",
    "candidate_micro_batch_sizes",
    "plan_makespan",
    "search_micro_batch_size",
    "solve",
    "solve_exact",
    "solve_makespan",
    "solver_names",
]

SOLVERS: dict[str, tuple[SolverFn, str]] = {
    "exact": (exact.run_exact,
              "joint optimum over plans and micro-batch sizes, with proof (default)"),
    "makespan": (makespan.run_makespan,
                 "least simulated makespan of the schedule, certified (plan's default)"),
    "alternating": (alternating.run_alternating,
                    "the paper's alternating optimisation of placement and b"),
    "basp": (reference.solve_basp,
             "the paper's reference algorithm: BASP on the decision graph per b (small problems)"),
    "milp": (milp.run_milp, "exact mixed-integer program per b (scipy/HiGHS); small problems"),
    "bruteforce": (bruteforce.run_bruteforce,
                   "exhaustive enumeration of plans, routes and b (tiny problems)"),
    "no_pipeline": (baselines.run_no_pipeline,
                    "baseline: optimal multi-hop split and placement with b = B"),
    "fixed_b": (baselines.run_fixed_b,
                "baseline: optimal placement for one micro-batch size (default B/4)"),
    "two_tier": (baselines.run_two_tier,
                 "baseline: classic split learning, the source plus one best server"),
    "bottleneck_only": (baselines.run_bottleneck_only,
                        "baseline: least pipeline bottleneck, fill ignored (PipeEdge-like)"),
    "even_split": (heuristics.run_even_split, "baseline: equal FLOPs over the compute nodes on "
                   "the route to the fastest server"),
    "greedy": (heuristics.run_greedy,
               "baseline: fastest reachable nodes first, as many layers as fit"),
    "random": (heuristics.run_random,
               "baseline: a seeded random valid plan with the closed-form b"),
}
"""Every planner: ``method`` name -> (function ``fn(problem, **options)``, one-line summary)."""

MAKESPAN_TIME_LIMIT = 60.0
"""Seconds the certified makespan search gets unless ``time_limit`` is passed (``None``: no
limit); ``pipesl plan`` uses the same default."""


def solver_names() -> list[str]:
    """The valid ``method`` names."""
    return sorted(SOLVERS)


def solve(problem: Problem, method: str = "exact", objective: str = "makespan",
          **options: Any) -> SolveResult:
    """Plan ``problem`` with solver ``method``.

    Parameters
    ----------
    problem : Problem
    method : str
        A registered name (``pipesl.solvers.solver_names()``); ``exact`` (default) is the
        joint optimum over plans and micro-batch sizes.
    objective : {"makespan", "analytic"}
        ``makespan`` (the default, as in ``pipesl plan``): minimise the simulated makespan of
        ``training.schedule`` — ``exact`` then runs the certified search of
        :mod:`pipesl.solvers.makespan`, ``bruteforce`` enumerates and simulates every plan
        and b; any other method keeps its plan and reports that plan's makespan as
        ``objective_s`` (with ``optimal = False``: it did not minimise it). ``analytic`` (the
        paper's objective, passed explicitly by the experiments, the baselines' comparisons,
        the adaptation loop and the runtime helpers): minimise SPEC section 3's T.
    **options
        Passed to the solver (e.g. ``micro_batch_size``, ``time_limit``). The makespan
        searches (``exact``, ``makespan`` and ``bruteforce`` with ``objective="makespan"``)
        stop after :data:`MAKESPAN_TIME_LIMIT` seconds unless ``time_limit`` is given
        (``time_limit=None``: no limit), returning the best plan with ``optimal = False``.

    Returns
    -------
    SolveResult
        For a problem with several data owners (``problem.is_multi_owner``) an
        :class:`~pipesl.solvers.owners.OwnersSolveResult` of
        :func:`~pipesl.solvers.owners.solve_owners` instead (``exact`` and ``makespan`` mean
        its ``joint``; ``heuristic``, ``independent`` and ``sequential`` are accepted too).
        Callers that may meet such problems check ``is_multi_owner`` or call
        ``solve_owners`` directly; with one owner nothing changes.

    Raises
    ------
    ProblemError
        Unknown method (the message lists the valid names).
    InfeasibleError
        No valid plan exists; the message names the binding constraint.
    """
    if problem.is_multi_owner:
        return cast(SolveResult, _solve_many(problem, method, objective, options))
    if method not in SOLVERS:
        raise ProblemError("method", f"is not a solver; choose one of "
                           f"{', '.join(sorted(SOLVERS))}", method)
    if objective not in OBJECTIVES:
        raise ProblemError("objective", f"must be one of {', '.join(OBJECTIVES)}", objective)
    started = time.perf_counter()
    check_source_alone(problem)  # the memory rule validation leaves to the cost model
    if objective == "makespan" and method in ("exact", "bruteforce", "makespan"):
        fn = solve_bruteforce_makespan if method == "bruteforce" else SOLVERS["makespan"][0]
        options.setdefault("time_limit", MAKESPAN_TIME_LIMIT)
        result = fn(problem, **options)
    else:
        result = SOLVERS[method][0](problem, **options)
        if objective == "makespan" and result.objective != "makespan":
            result = replace(result, objective_s=plan_makespan(problem, result.plan),
                             objective="makespan", optimal=False, lower_bound_s=0.0,
                             status="feasible" if result.status == "optimal" else result.status,
                             message=(f"{method} minimises the analytic T; objective_s is "
                                      "its plan's simulated makespan"))
    return replace(result, seconds=time.perf_counter() - started)


def _solve_many(problem: Problem, method: str, objective: str,
                options: dict[str, Any]) -> Any:
    from pipesl.solvers.owners import OWNER_METHODS, solve_owners

    name = "joint" if method in ("exact", "makespan") else method
    if name not in OWNER_METHODS:
        raise ProblemError("method", f"plans a single data owner; the problem has "
                           f"{problem.num_owners} (training.sources): choose one of "
                           f"{', '.join(OWNER_METHODS)}", method)
    if "micro_batch_size" in options:
        raise ProblemError("micro_batch_size", "with several data owners set "
                           "training.sources[i].micro_batch_size instead")
    return solve_owners(problem, name, objective, **options)
