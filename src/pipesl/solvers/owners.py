"""Planning for many data owners (issue 18, docs/owners.md): :func:`solve_owners`.

Methods (``method=``):

* ``joint`` — the jointly optimal placement, routes and micro-batch sizes of every owner,
  minimising the simulated iteration makespan (``training.owners`` mode), certified by the
  best-first search of :mod:`pipesl.solvers.owners_search`, seeded with the heuristic's
  combination. On instances too large to enumerate, or when the time limit strikes, the best
  combination found is returned with ``optimal = False`` and a lower bound (the gap).
* ``heuristic`` — :mod:`pipesl.solvers.owners_heuristic` (greedy against loaded resources,
  then best response); fast on tens of owners and hundreds of nodes; its gap is to
  :func:`owners_floor`.
* ``independent`` (baseline) — every owner's own certified single-source optimum
  (:func:`pipesl.solvers.makespan.solve_makespan` on its private problem) as if it were
  alone, then all simulated together.
* ``sequential`` (baseline) — round-robin vanilla split learning: the same single-source
  optima, owners taking turns; its time is the round, the sum of the owners' makespans.

With ``replicas: shared`` the baselines keep one server part (cut and server-side stages)
for every owner: that of the owner with the largest batch's own optimum; each other owner
takes its fastest route and b to it. With ``owners: sequential`` and per-owner replicas the
owners never overlap, so ``joint`` is exactly each owner's certified optimum.

With one owner every method is today's schedule-true planner
(``solve(problem, "exact", objective="makespan")``) and returns its plan and makespan.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem.types import Problem
from pipesl.solvers.owners_space import private_problem, server_part, with_server_part

__all__ = ["OWNER_METHODS", "OwnerRow", "OwnersSolveResult", "owners_floor", "solve_owners"]

OWNER_METHODS: dict[str, str] = {
    "joint": "joint optimum of every owner's placement, routes and b, certified (default)",
    "heuristic": "greedy against loaded resources + best response (many owners)",
    "independent": "baseline: each owner's own optimum, ignoring the others",
    "sequential": "baseline: round-robin sequential SL (owners take turns)",
}
"""The many-owner planners: ``method`` -> one line."""

JOINT_TIME_LIMIT = 60.0
"""Seconds the joint search gets unless told otherwise."""


@dataclass(frozen=True)
class OwnerRow:
    """One owner's part of a many-owner plan."""

    owner: int
    label: str
    node: str
    stages: tuple[Stage, ...]
    micro_batch_size: int
    num_micro_batches: int
    makespan_s: float
    """When this owner's last backward ended in the joint iteration (parallel mode), or its
    turn's makespan (sequential mode)."""


@dataclass(frozen=True)
class OwnersSolveResult:
    """What :func:`solve_owners` returns."""

    plan: OwnersPlan
    makespan_s: float
    """The simulated iteration makespan (parallel) or round time (sequential)."""
    lower_bound_s: float
    """A proven lower bound on every combination's makespan (equal when ``optimal``)."""
    optimal: bool
    method: str
    status: str
    """``optimal``, ``time_limit``, ``too_large`` (not enumerated), ``heuristic`` or
    ``baseline``."""
    owners: tuple[OwnerRow, ...]
    plan_bound_s: float
    """:func:`pipesl.cost.owners.owners_lower_bound` of this plan (a bound on its own
    makespan, not on the optimum)."""
    message: str = ""
    seconds: float = 0.0
    counters: dict[str, int] = field(default_factory=dict)
    documents: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    """Per owner: the SPEC plan object with its single-owner costs."""
    mode: str = "parallel"
    replicas: str = "per-owner"

    @property
    def gap(self) -> float:
        """(makespan - lower bound) / makespan: 0 when certified."""
        if self.makespan_s <= 0 or not math.isfinite(self.makespan_s):
            return 0.0
        return max(0.0, (self.makespan_s - self.lower_bound_s) / self.makespan_s)

    def document(self) -> dict[str, Any]:
        """The OwnersPlan document (``pipesl.plan.load_plan`` reads it back) with its costs:
        per owner the SPEC plan object (``objective_s`` = when the owner finished in the
        joint iteration, ``analytic_s`` = its own analytic T), then the joint figures."""
        owners = []
        for row, doc in zip(self.owners, self.documents, strict=True):
            entry = {"owner": row.label, **doc}
            entry["analytic_s"] = doc["objective_s"]
            entry["objective_s"] = row.makespan_s
            entry["objective"] = "makespan"
            owners.append(entry)
        return {"owners": owners, "mode": self.mode, "replicas": self.replicas,
                "objective": "makespan", "objective_s": self.makespan_s,
                "makespan_s": self.makespan_s, "lower_bound_s": self.lower_bound_s,
                "gap": self.gap, "optimal": self.optimal, "method": self.method,
                "owner_labels": [r.label for r in self.owners],
                "owner_makespans_s": [r.makespan_s for r in self.owners],
                "solver": {"name": self.method, "optimal": self.optimal, "status": self.status,
                           "lower_bound_s": self.lower_bound_s,
                           "plan_bound_s": self.plan_bound_s, "seconds": self.seconds,
                           "counters": dict(self.counters),
                           **({"message": self.message} if self.message else {})}}


def owners_floor(problem: Problem, deadline: float | None = None) -> float:
    """A lower bound on the makespan of *every* combination of the owners' plans.

    Per owner, the least over b of its cheap trip and busiest-resource bounds
    (:class:`pipesl.cost.analytic_bounds.AnalyticBounds`) on its private problem, and for
    GPipe without a label route the per-step flush bound minimised over every plan
    (``solve_exact(per_step=True)``, bound 5 of :mod:`pipesl.cost.bounds`); every such bound
    holds whatever other owners add. Parallel: the largest over owners; sequential: the sum.
    """
    from pipesl.cost import CostTables, num_micro_batches
    from pipesl.cost.analytic_bounds import AnalyticBounds
    from pipesl.solvers.exact import solve_exact
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes

    per_owner = []
    for o, owner in enumerate(problem.owners):
        single = private_problem(problem, o)
        cheap = AnalyticBounds(single, CostTables.from_problem(single))
        sizes = ([owner.micro_batch_size] if owner.micro_batch_size is not None
                 else candidate_micro_batch_sizes(owner.batch_size))
        flush = single.training.schedule == "gpipe" and owner.labels_at is None
        values = []
        for b in sizes:
            m = num_micro_batches(owner.batch_size, b)
            v = max(cheap.sum_lb(b), m * cheap.beta_lb(b))
            if flush:
                v = max(v, cheap.sum_lb(b) + (m - 1) * cheap.beta_lb(b))
            values.append(v)
        bound = min(values)
        if flush:
            left = None if deadline is None else max(deadline - time.perf_counter(), 1e-3)
            with contextlib.suppress(InfeasibleError):  # no plan fits: the cheap bound stays
                bound = max(bound, solve_exact(single, sizes, time_limit=left,
                                               per_step=True).lower_bound_s)
        per_owner.append(bound if math.isfinite(bound) else 0.0)
    if problem.training.owners_mode == "sequential":
        return math.fsum(per_owner)
    return max(per_owner)


def _rows(problem: Problem, plans: tuple[Plan, ...]) -> tuple[tuple[OwnerRow, ...], float]:
    from pipesl.cost import num_micro_batches
    from pipesl.sim.owners import simulate_owners

    sim = simulate_owners(problem, OwnersPlan(plans))
    rows = tuple(OwnerRow(o, owner.label, owner.node, plan.stages, plan.micro_batch_size,
                          num_micro_batches(owner.batch_size, plan.micro_batch_size),
                          float(sim.owner_makespans_s[o]))
                 for o, (owner, plan) in enumerate(zip(problem.owners, plans, strict=True)))
    return rows, float(sim.makespan_s)


def _finish(problem: Problem, plans: tuple[Plan, ...], method: str, *, lower: float,
            optimal: bool, status: str, started: float, message: str = "",
            counters: dict[str, int] | None = None) -> OwnersSolveResult:
    from pipesl.cost import evaluate, plan_document
    from pipesl.cost.owners import owners_lower_bound

    plan = OwnersPlan(plans)
    rows, makespan = _rows(problem, plans)
    docs = tuple(plan_document(evaluate(problem.owner_problem(o), p))
                 for o, p in enumerate(plans))
    if not optimal and lower >= makespan * (1 - 1e-9):  # the bound of every combination
        optimal, status = True, "optimal"                # is reached: certified after all
    lower = makespan if optimal else min(lower, makespan)
    return OwnersSolveResult(
        plan=plan, makespan_s=makespan, lower_bound_s=lower, optimal=optimal, method=method,
        status=status, owners=rows, plan_bound_s=float(owners_lower_bound(problem, plan)),
        message=message, seconds=time.perf_counter() - started,
        counters=dict(counters or {}), documents=docs,
        mode=problem.training.owners_mode, replicas=problem.training.replicas)


def _solo(problem: Problem, owner: int, time_limit: float | None
          ) -> tuple[Plan, bool, float, float]:
    """Owner ``owner``'s certified single-source optimum on its private problem."""
    from pipesl.solvers.makespan import solve_makespan

    o = problem.owners[owner]
    sizes = None if o.micro_batch_size is None else [o.micro_batch_size]
    r = solve_makespan(private_problem(problem, owner), sizes, time_limit=time_limit)
    return r.plan, r.optimal, r.lower_bound_s, r.objective_s


def _on_part(problem: Problem, plans: list[Plan], leader: int) -> list[Plan]:
    """Every owner on ``leader``'s server part (shared replicas), each with the route and b
    of least simulated makespan alone among its three fewest-hop routes."""
    import itertools

    import networkx as nx

    from pipesl.cost import feasible_micro_batch_sizes
    from pipesl.solvers.makespan import plan_makespan
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes

    part = server_part(plans[leader])
    g = problem.network.graph
    out = []
    for o, owner in enumerate(problem.owners):
        if o == leader:
            out.append(plans[o])
            continue
        if part.stages:
            routes: list[tuple[str, ...] | None] = [tuple(p) for p in itertools.islice(
                nx.shortest_simple_paths(g, owner.node, part.stages[0].node), 3)]
        else:
            routes = [None]
        last = part.stages[-1].node if part.stages else owner.node
        label = (None if owner.labels_at is None
                 else tuple(nx.shortest_path(g, last, owner.labels_at)))
        sizes = ([owner.micro_batch_size] if owner.micro_batch_size is not None
                 else candidate_micro_batch_sizes(owner.batch_size))
        single = private_problem(problem, o)
        best: tuple[float, Plan] | None = None
        for route in routes:
            base = with_server_part(problem, o, part, route, sizes[0], label)
            ok = feasible_micro_batch_sizes(single, base)
            for b in sizes:
                if ok[b - 1]:
                    cand = base.with_micro_batch_size(b)
                    t = plan_makespan(single, cand)
                    if best is None or t < best[0]:
                        best = (t, cand)
        if best is None:
            raise InfeasibleError(f"training.sources[{o}]: no plan of this owner fits the "
                                  f"shared server stages of owner {leader}")
        out.append(best[1])
    return out


def _baseline(problem: Problem, method: str, time_limit: float | None,
              started: float) -> OwnersSolveResult:
    n = problem.num_owners
    solos = [_solo(problem, o, time_limit) for o in range(n)]
    plans = [p for p, *_ in solos]
    if problem.training.replicas == "shared":
        leader = max(range(n), key=lambda o: (problem.owners[o].batch_size, -o))
        plans = _on_part(problem, plans, leader)
    target = problem
    if method == "sequential" and problem.training.owners_mode != "sequential":
        target = problem.with_training(owners_mode="sequential")
    floor = owners_floor(target)
    result = _finish(target, tuple(plans), method, lower=floor, optimal=False,
                     status="baseline", started=started)
    return replace(result, message=f"{method} baseline; gap to the lower bound of every "
                   f"combination {result.gap:.2%}")


def solve_owners(problem: Problem, method: str = "joint", objective: str = "makespan", *,
                 time_limit: float | None = JOINT_TIME_LIMIT,
                 max_candidates: int = 50_000) -> OwnersSolveResult:
    """Plan every data owner of ``problem`` (module docstring).

    Parameters
    ----------
    problem : Problem
    method : {"joint", "heuristic", "independent", "sequential"}
    objective : {"makespan"}
        Only the simulated makespan: the analytic T has no meaning for several owners.
    time_limit : float, optional
        Seconds for the joint search (and the heuristic's best response); None: no limit.
    max_candidates : int
        The joint search enumerates at most this many plans and candidates; beyond it the
        heuristic's result is returned (``status = "too_large"``) with its gap.

    Raises
    ------
    ProblemError
        Unknown method or objective.
    InfeasibleError
        No combination fits in memory.
    """
    if method not in OWNER_METHODS:
        raise ProblemError("method", f"is not a planner for several data owners; choose one "
                           f"of {', '.join(OWNER_METHODS)}", method)
    if objective != "makespan":
        raise ProblemError("objective", "must be makespan for several data owners (the "
                           "analytic T is a single-pipeline figure)", objective)
    started = time.perf_counter()
    deadline = None if time_limit is None else started + time_limit
    tr = problem.training
    if not problem.is_multi_owner or (method == "joint" and tr.owners_mode == "sequential"
                                      and tr.replicas != "shared"):
        # one owner, or owners that never overlap: each owner's own certified optimum
        left = None if time_limit is None else time_limit / problem.num_owners
        solos = [_solo(problem, o, left) for o in range(problem.num_owners)]
        proven = all(ok for _, ok, *_ in solos)
        lows = [lb for _, _, lb, _ in solos]
        lower = math.fsum(lows) if tr.owners_mode == "sequential" else max(lows)
        result = _finish(problem, tuple(p for p, *_ in solos), method, lower=lower,
                         optimal=proven, status="optimal" if proven else "time_limit",
                         started=started)
        if not problem.is_multi_owner:  # exactly today's planner's figure
            t = solos[0][3]
            result = replace(result, makespan_s=t,
                             lower_bound_s=t if proven else min(lower, t),
                             owners=(replace(result.owners[0], makespan_s=t),))
        return result
    if method in ("independent", "sequential"):
        return _baseline(problem, method, time_limit, started)
    from pipesl.solvers.owners_heuristic import heuristic

    h = heuristic(problem, deadline=deadline)
    counters = {f"heuristic_{k}": v for k, v in h.counters.items()}
    if method == "heuristic":
        floor = owners_floor(problem, deadline)
        result = _finish(problem, h.plans, "heuristic", lower=floor, optimal=False,
                         status="heuristic", started=started, counters=counters)
        return replace(result, message=f"gap to the lower bound of every combination "
                       f"{result.gap:.2%}")
    from pipesl.solvers.owners_search import MAX_NODES, TooLarge, joint_search

    try:
        out = joint_search(problem, (h.makespan_s, h.plans), deadline=deadline,
                           max_candidates=max_candidates)
    except TooLarge:
        floor = owners_floor(problem, deadline)
        result = _finish(problem, h.plans, "joint", lower=floor, optimal=False,
                         status="too_large", started=started, counters=counters)
        return replace(result, message=f"too large to enumerate (more than "
                       f"{max_candidates} candidate plans or {MAX_NODES} nodes): the "
                       f"heuristic's combination, gap {result.gap:.2%}")
    counters.update(out.counters)
    plans = out.plans if out.plans is not None else h.plans
    lower = out.lower_bound_s
    if not out.optimal:
        lower = max(lower, owners_floor(problem))
    result = _finish(problem, plans, "joint", lower=lower, optimal=out.optimal,
                     status="optimal" if out.optimal else "time_limit", started=started,
                     counters=counters)
    if not out.optimal:
        result = replace(result, message=f"stopped before a proof; optimality gap "
                         f"{result.gap:.2%}")
    return result
