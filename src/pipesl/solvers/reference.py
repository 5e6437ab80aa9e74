"""The paper's reference algorithm, as written: BASP on the explicit decision graph, per b.

For every allowed micro-batch size b (the problem's fixed b, else every b = ceil(B / M)),
the layered decision graph of :mod:`pipesl.solvers.decision_graph` is built as a networkx
DiGraph and the bottleneck-aware shortest path of :mod:`pipesl.solvers.basp` is run on it with
lambda = M - 1; the path is decoded into a plan and priced by :func:`pipesl.cost.evaluate`,
and the best plan over all b is kept (``--method basp``).

This is the method the paper describes, kept readable and used as a reference by the tests.
It is *not* pipesl's default: the decision graph prices every hop on its own, so a path that
shares a link between two routes is priced too low, and a path that visits a node twice is
no SPEC plan at all (such paths are skipped; ``optimal`` is therefore False). The fast path,
``exact`` (:mod:`pipesl.solvers.exact`), runs the same graph's DP without materialising it
(:mod:`pipesl.solvers.layered`), adds the shared-link and distinct-node constraints
(:mod:`pipesl.solvers.search`) and proves its optimum. The graph has O(L^2 C + L E C) edges:
small problems only.
"""

from __future__ import annotations

import time

import networkx as nx

from pipesl.cost import evaluate, num_micro_batches
from pipesl.exceptions import InfeasibleError, PlanError
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.solvers.basp import bottleneck_aware_shortest_path
from pipesl.solvers.decision_graph import build_decision_graph, plan_from_path
from pipesl.solvers.diagnose import diagnose_infeasible
from pipesl.solvers.microbatch import candidate_micro_batch_sizes
from pipesl.solvers.result import SolveResult, finish

__all__ = ["solve_basp"]


def solve_basp(problem: Problem, *, micro_batch_size: int | None = None,
               time_limit: float | None = None) -> SolveResult:
    """The paper's reference algorithm (module docstring): BASP per b, best valid plan kept.

    Raises
    ------
    InfeasibleError
        No b gives a path that decodes into a valid plan that fits in memory.
    """
    started = time.perf_counter()
    tr = problem.training
    fixed = micro_batch_size or tr.micro_batch_size
    sizes = [fixed] if fixed is not None else candidate_micro_batch_sizes(tr.batch_size)
    best: tuple[float, Plan] | None = None
    counters = {"b_values": len(sizes), "graphs": 0, "dijkstra_runs": 0, "invalid_paths": 0}
    stopped = False
    for b in sizes:
        if time_limit is not None and time.perf_counter() - started > time_limit:
            stopped = True
            break
        g, source, sink = build_decision_graph(problem, b)
        counters["graphs"] += 1
        lam = num_micro_batches(tr.batch_size, b) - 1
        try:
            found = bottleneck_aware_shortest_path(g, source, sink, lam, weight="weight",
                                                   bottleneck_weight="load")
        except nx.NetworkXNoPath:
            continue
        counters["dijkstra_runs"] += found.dijkstra_runs
        plan = plan_from_path(problem, g, found.path)
        try:
            ev = evaluate(problem, plan)
        except PlanError:  # the path visits a node twice: no SPEC plan
            counters["invalid_paths"] += 1
            continue
        if ev.feasible and (best is None or ev.objective_s < best[0]):
            best = (ev.objective_s, plan)
    if best is None:
        if stopped:
            raise InfeasibleError(f"time limit: no valid plan found before the limit "
                                  f"({time_limit} s); raise --time-limit")
        raise InfeasibleError(diagnose_infeasible(problem, sizes))
    return finish(problem, best[1], "basp", optimal=False, lower_bound_s=0.0, started=started,
                  status="time_limit" if stopped else "heuristic",
                  message="the paper's reference algorithm: BASP on the decision graph per b, "
                          "without the shared-link and distinct-node constraints",
                  counters=counters)
