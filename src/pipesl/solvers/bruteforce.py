"""Exhaustive enumeration of every plan and every micro-batch size (small problems only).

The independent reference for the tests: it shares nothing with the planner but cost.py.
Every K, every split of the L layers into K contiguous stages, every sequence of distinct
compute nodes starting at the source, every simple path between consecutive nodes (min-hop
paths with ``routing: shortest``), every label route, every b in 1..B.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator

import networkx as nx

from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.plan import Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.microbatch import objective_curve
from pipesl.solvers.result import SolveResult, finish

__all__ = ["enumerate_plans", "solve_bruteforce", "solve_bruteforce_makespan"]


def _paths(problem: Problem, u: str, v: str) -> list[tuple[str, ...]]:
    g = problem.network.graph
    if u == v:
        return [(u,)]
    if not nx.has_path(g, u, v):
        return []
    if problem.training.routing == "shortest":
        return [tuple(p) for p in nx.all_shortest_paths(g, u, v)]
    return [tuple(p) for p in nx.all_simple_paths(g, u, v)]


def enumerate_plans(problem: Problem, micro_batch_size: int = 1) -> Iterator[Plan]:
    """Every structurally valid plan (at one b; b does not change validity)."""
    net, tr = problem.network, problem.training
    L = problem.model.num_layers
    others = [n.id for n in net.compute_nodes if n.id != tr.source]
    cache: dict[tuple[str, str], list[tuple[str, ...]]] = {}

    def paths(u: str, v: str) -> list[tuple[str, ...]]:
        if (u, v) not in cache:
            cache[(u, v)] = _paths(problem, u, v)
        return cache[(u, v)]

    for k in range(1, min(L, len(others) + 1) + 1):
        for cuts in itertools.combinations(range(1, L), k - 1):
            bounds = [0, *cuts, L]
            for rest in itertools.permutations(others, k - 1):
                nodes = (tr.source, *rest)
                route_sets = [paths(nodes[i], nodes[i + 1]) for i in range(k - 1)]
                labels: list[tuple[str, ...] | None] = (
                    list(paths(nodes[-1], tr.labels_at)) if tr.labels_at is not None else [None])
                if any(not r for r in route_sets) or not labels:
                    continue
                stages = tuple(Stage(nodes[i], bounds[i] + 1, bounds[i + 1]) for i in range(k))
                for routes in itertools.product(*route_sets):
                    for label in labels:
                        yield Plan(stages, tuple(routes), micro_batch_size, label)


def solve_bruteforce(problem: Problem, *, micro_batch_size: int | None = None,
                     max_plans: int = 200_000) -> SolveResult:
    """The optimum by enumeration (every plan, every b).

    Raises
    ------
    ProblemError
        When more than ``max_plans`` placements would be enumerated.
    InfeasibleError
        When no plan fits in memory.
    """
    started = time.perf_counter()
    fixed = micro_batch_size or problem.training.micro_batch_size
    best: tuple[float, Plan] | None = None
    count = 0
    for plan in enumerate_plans(problem):
        count += 1
        if count > max_plans:
            raise ProblemError("bruteforce", f"more than {max_plans} plans; the problem is "
                               "too large to enumerate (use method 'exact')")
        if fixed is not None:
            b, t = objective_curve(problem, plan, [fixed])  # type: ignore[arg-type]
        else:
            b, t = objective_curve(problem, plan)
        i = int(t.argmin())
        if math.isfinite(t[i]) and (best is None or t[i] < best[0]):
            best = (float(t[i]), plan.with_micro_batch_size(int(b[i])))
    if best is None:
        raise InfeasibleError("no valid plan fits in memory (exhaustive enumeration)")
    return finish(problem, best[1], "bruteforce", optimal=True, started=started,
                  counters={"plans": count})


def solve_bruteforce_makespan(problem: Problem, *, micro_batch_size: int | None = None,
                              max_plans: int = 20_000, time_limit: float | None = None
                              ) -> SolveResult:
    """The least *simulated* makespan by enumeration: every plan, every b in 1..B, simulated.

    The reference of :mod:`pipesl.solvers.makespan` in the tests (tiny problems only).

    Raises
    ------
    ProblemError
        When more than ``max_plans`` placements would be enumerated.
    InfeasibleError
        When no plan fits in memory.
    """
    from dataclasses import replace

    from pipesl.cost import feasible_micro_batch_sizes
    from pipesl.solvers.makespan import plan_makespan

    started = time.perf_counter()
    fixed = micro_batch_size or problem.training.micro_batch_size
    sizes = [fixed] if fixed is not None else range(1, problem.training.batch_size + 1)
    best: tuple[float, Plan] | None = None
    count = 0
    for plan in enumerate_plans(problem):
        count += 1
        if count > max_plans:
            raise ProblemError("bruteforce", f"more than {max_plans} plans; the problem is "
                               "too large to enumerate and simulate (use method 'exact')")
        ok = feasible_micro_batch_sizes(problem, plan)
        for b in sizes:
            if ok[b - 1]:
                candidate = plan.with_micro_batch_size(b)
                t = plan_makespan(problem, candidate)
                if best is None or t < best[0]:
                    best = (t, candidate)
    if best is None:
        raise InfeasibleError("no valid plan fits in memory (exhaustive enumeration)")
    result = finish(problem, best[1], "bruteforce", optimal=True, started=started,
                    counters={"plans": count})
    return replace(result, objective_s=best[0], lower_bound_s=best[0], objective="makespan")


def run_bruteforce(problem: Problem, *, micro_batch_size: int | None = None,
                time_limit: float | None = None) -> SolveResult:
    return solve_bruteforce(problem, micro_batch_size=micro_batch_size)
