"""The certified joint search of the many-owner planner: the least simulated makespan over
every combination of the owners' plans and micro-batch sizes.

1. **Candidates.** Per owner, every single-owner plan it may run
   (:func:`pipesl.solvers.bruteforce.enumerate_plans` on its private problem, so that no
   stage lands on another owner's node) at every b = ceil(B_o / M) that fits its memory,
   each with its own lower bound (:func:`pipesl.cost.owners.owners_lower_bound` of that owner
   alone), sorted by it. With ``replicas: shared`` the candidates are grouped by the server
   part (cut layer and server-side stages, :class:`~pipesl.solvers.owners_space.ServerPart`):
   within a group an owner chooses only its route to the first server stage, its label
   route and b. Candidates whose own bound already reaches the incumbent are dropped.
2. **Best-first over combinations.** A state fixes the plans of owners 0..i-1 and says that
   owner i takes its j-th candidate or a later one. Its bound is the largest of the fixed
   owners' joint bound (:func:`~pipesl.solvers.owners_space.partial_bound`: busy time of every
   resource summed over them, each owner's own bound), owner i's j-th own bound (the list is
   sorted) and every later owner's least own bound — each a lower bound on every combination
   in the state (in ``owners: sequential`` mode the bounds add up instead: a round is the
   sum of the owners' makespans). A state is split into "owner i takes j" and "owner i takes
   a later one". A complete combination whose joint bound is below the incumbent is simulated
   (:func:`pipesl.sim.owners.simulate_owners`).
3. **Stop.** When the least open bound reaches the incumbent, no combination is faster
   (``optimal``); on the time limit, the least open bound is the reported lower bound.

Every bound used is a bound of the cost model (:mod:`pipesl.cost.owners`), never a
simulated time, so the certificate holds whatever order the simulator's service rule picks.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.solvers.owners_space import (
    Evaluator,
    private_problem,
    server_parts,
    shared_owner_plans,
)

__all__ = ["JointOutcome", "TooLarge", "joint_search", "owner_candidates"]

_REL_TOL = 1e-9
MAX_NODES = 16
"""Networks with more nodes are not enumerated (their simple paths alone explode): the
joint planner then returns the heuristic's combination with its gap."""


class TooLarge(Exception):
    """The candidate lists exceed ``max_candidates`` (the search is not attempted)."""


@dataclass(frozen=True)
class JointOutcome:
    """What the joint search found."""

    plans: tuple[Plan, ...] | None
    """The best combination (None: nothing beat the incumbent it was given)."""
    makespan_s: float
    lower_bound_s: float
    optimal: bool
    counters: dict[str, int] = field(default_factory=dict)


Candidates = list[list[tuple[float, Plan]]]
"""Per owner: (own lower bound, plan) in increasing bound."""


def _sizes(problem: Problem, owner: int) -> list[int]:
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes

    o = problem.owners[owner]
    if o.micro_batch_size is not None:
        return [o.micro_batch_size]
    return candidate_micro_batch_sizes(o.batch_size)


def owner_candidates(ev: Evaluator, owner: int, plans: Sequence[Plan], cap: float,
                     budget: list[int]) -> list[tuple[float, Plan]]:
    """``(own bound, plan)`` for every plan of ``plans`` that fits the owner's memory and
    whose own bound is below ``cap``, sorted; ``budget[0]`` counts down the candidates left
    (:class:`TooLarge` when it runs out)."""
    out = []
    for plan in plans:
        if not ev.fits([owner], [plan]):
            continue
        bound = ev.bound([owner], [plan])
        if bound >= cap * (1 - _REL_TOL):
            continue
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLarge
        out.append((bound, plan))
    out.sort(key=lambda x: x[0])
    return out


def _groups(ev: Evaluator, cap: float, max_candidates: int) -> list[Candidates]:
    """The candidate lists: one group (per-owner replicas) or one per server part."""
    from pipesl.solvers.bruteforce import enumerate_plans

    problem = ev.problem
    if len(problem.network.nodes) > MAX_NODES:
        raise TooLarge
    budget = [max_candidates]
    n = problem.num_owners
    if problem.training.replicas != "shared":
        group: Candidates = []
        for o in range(n):
            single = private_problem(problem, o)
            sizes = _sizes(problem, o)
            plans = [p.with_micro_batch_size(b)
                     for p in _limited(enumerate_plans(single), budget) for b in sizes]
            group.append(owner_candidates(ev, o, plans, cap, budget))
        return [group]
    groups = []
    parts = server_parts(problem, _limited(enumerate_plans(private_problem(problem, 0)),
                                           budget))
    for part in parts:
        group = []
        for o in range(n):
            group.append(owner_candidates(
                ev, o, list(shared_owner_plans(problem, o, part, _sizes(problem, o))),
                cap, budget))
        if all(group):
            groups.append(group)
    return groups


def _limited(plans: Iterable[Plan], budget: list[int]) -> list[Plan]:
    out = []
    for p in plans:
        budget[0] -= 1
        if budget[0] < 0:
            raise TooLarge
        out.append(p)
    return out


def joint_search(problem: Problem, incumbent: tuple[float, tuple[Plan, ...]] | None, *,
                 deadline: float | None, max_candidates: int = 50_000) -> JointOutcome:
    """The certified best-first search of the module docstring.

    Parameters
    ----------
    problem : Problem
        A multi-owner problem.
    incumbent : (makespan, plans), optional
        A known combination (e.g. the heuristic's); only better ones are searched for.
    deadline : float, optional
        ``time.perf_counter()`` value at which to stop (unproven).
    max_candidates : int
        Plans enumerated plus candidates kept, over all owners; beyond it :class:`TooLarge`.

    Raises
    ------
    TooLarge
        The instance is too large to enumerate (more than :data:`MAX_NODES` nodes, or more
        than ``max_candidates`` plans).
    """
    sequential = problem.training.owners_mode == "sequential"
    combine: Callable[[Sequence[float]], float] = (
        (lambda xs: math.fsum(xs)) if sequential else (lambda xs: max(xs, default=0.0)))
    best_t = incumbent[0] if incumbent is not None else math.inf
    best_plans: tuple[Plan, ...] | None = None
    ev = Evaluator(problem)
    # an owner without a candidate below the incumbent: nothing in that group can beat it
    groups = [g for g in _groups(ev, best_t, max_candidates) if all(g)]
    n = problem.num_owners
    counters = {"groups": len(groups), "candidates": sum(len(c) for g in groups for c in g),
                "states": 0, "simulated": 0, "bounded": 0}
    # rest[g][i]: the combined least own bound of owners i..n-1 in group g
    rest = [[combine([g[o][0][0] for o in range(i, n)]) for i in range(n + 1)]
            for g in groups]
    heap: list[tuple[float, int, int, tuple[int, ...], int, float]] = []
    seq = itertools.count()

    def push(bound: float, g: int, prefix: tuple[int, ...], j: int, pb: float) -> None:
        if bound < best_t * (1 - _REL_TOL):
            heapq.heappush(heap, (bound, next(seq), g, prefix, j, pb))

    for g in range(len(groups)):
        push(rest[g][0], g, (), 0, 0.0)
    proven = True
    while heap:
        bound, _, g, prefix, j, pb = heap[0]
        if bound >= best_t * (1 - _REL_TOL):
            break
        if deadline is not None and time.perf_counter() > deadline:
            proven = False
            break
        heapq.heappop(heap)
        counters["states"] += 1
        group = groups[g]
        i = len(prefix)
        if j + 1 < len(group[i]):  # owner i takes a later candidate
            push(combine([pb, group[i][j + 1][0], rest[g][i + 1]]), g, prefix, j + 1, pb)
        chosen = (*prefix, j)
        plans = [group[o][k][1] for o, k in enumerate(chosen)]
        counters["bounded"] += 1
        child_pb = ev.bound(list(range(i + 1)), plans)
        if i + 1 < n:
            push(combine([child_pb, rest[g][i + 1]]), g, chosen, 0, child_pb)
            continue
        if child_pb >= best_t * (1 - _REL_TOL):
            continue
        counters["simulated"] += 1
        value = ev.value(plans)
        if value is not None and value < best_t:
            best_t, best_plans = value, tuple(plans)
    lower = min(heap[0][0], best_t) if (heap and not proven) else best_t
    return JointOutcome(best_plans, best_t, lower, proven, counters)
