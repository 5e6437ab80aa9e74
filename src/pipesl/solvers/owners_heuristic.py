"""The fast many-owner planner: greedy placement against loaded resources, then best response.

Per-owner replicas:

1. **Greedy.** Owners in decreasing batch size (ties: owner order). For each, a few
   candidate plans: its analytic optimum (:func:`pipesl.solvers.exact.solve_exact`, fast on
   hundreds of nodes) on its private problem, and the same with the compute nodes already
   used by earlier owners withdrawn (the most used one, the two most used, all of them), each
   at its own b and at the neighbouring b = ceil(B / M). The candidate with the least joint
   lower bound of the owners placed so far (:func:`pipesl.cost.owners.owners_lower_bound`:
   every resource's busy time summed over them, each owner's own bound) that fits their
   memory is kept.
2. **Best response.** While time is left (and for at most ``rounds`` rounds), each owner in
   decreasing order of when it finished in the last simulation re-chooses among candidates
   built against the others' load; a candidate is simulated only when its joint bound is
   below the current makespan, and kept when the simulated makespan falls.

Shared replicas: the server parts (cut and server-side stages) of every owner's analytic
optimum are tried; per part each owner takes the route (among the three fewest-hop ones), the
label route and b with the least own bound; the part whose combination simulates fastest is
kept, then each owner's b is improved by best response.

No certificate: :mod:`pipesl.solvers.owners` reports the gap to a lower bound.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from pipesl.exceptions import InfeasibleError
from pipesl.plan import OwnersPlan, Plan
from pipesl.problem.types import Network, Problem
from pipesl.solvers.owners_space import (
    Evaluator,
    ServerPart,
    private_problem,
    server_part,
    with_server_part,
)

__all__ = ["HeuristicOutcome", "heuristic"]


@dataclass(frozen=True)
class HeuristicOutcome:
    """The heuristic's combination and its simulated makespan."""

    plans: tuple[Plan, ...]
    makespan_s: float
    counters: dict[str, int] = field(default_factory=dict)


def _without_compute(problem: Problem, nodes: Sequence[str]) -> Problem:
    gone = set(nodes)
    if not gone:
        return problem
    net = problem.network
    return replace(problem, network=Network(
        tuple(replace(n, compute=False) if n.id in gone else n for n in net.nodes),
        net.links))


def _neighbour_sizes(problem: Problem, owner: int, b: int) -> list[int]:
    from pipesl.solvers.microbatch import candidate_micro_batch_sizes

    o = problem.owners[owner]
    if o.micro_batch_size is not None:
        return [o.micro_batch_size]
    sizes = candidate_micro_batch_sizes(o.batch_size)
    i = sizes.index(b) if b in sizes else min(range(len(sizes)), key=lambda k: abs(sizes[k] - b))
    return sizes[max(0, i - 1):i + 2]


class _Greedy:
    def __init__(self, problem: Problem, deadline: float | None):
        self.problem = problem
        self.deadline = deadline
        self.private = [private_problem(problem, o) for o in range(problem.num_owners)]
        self.counters = {"solves": 0, "bounded": 0, "simulated": 0, "rounds": 0,
                         "improved": 0}
        self.cache: dict[tuple[int, frozenset[str]], Plan | None] = {}
        self.ev = Evaluator(problem)

    def late(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def solve(self, owner: int, avoid: frozenset[str]) -> Plan | None:
        key = (owner, avoid)
        if key not in self.cache:
            from pipesl.solvers.exact import solve_exact

            self.counters["solves"] += 1
            try:
                self.cache[key] = solve_exact(_without_compute(self.private[owner],
                                                               sorted(avoid))).plan
            except InfeasibleError:
                self.cache[key] = None
        return self.cache[key]

    def candidates(self, owner: int, others: Sequence[Plan]) -> list[Plan]:
        mine = self.problem.owners[owner].node
        used = Counter(s.node for p in others for s in p.stages if s.node != mine)
        ranked = [n for n, _ in used.most_common()]
        avoids = dict.fromkeys([frozenset(), frozenset(ranked[:1]), frozenset(ranked[:2]),
                                frozenset(ranked)])
        out: dict[Plan, None] = {}
        for avoid in avoids:
            plan = self.solve(owner, avoid)
            if plan is None:
                continue
            for b in _neighbour_sizes(self.problem, owner, plan.micro_batch_size):
                out.setdefault(plan.with_micro_batch_size(b), None)
        return list(out)

    def bound(self, owners: Sequence[int], plans: Sequence[Plan]) -> float | None:
        """Joint bound of these owners' plans, None when they overflow a node's memory."""
        self.counters["bounded"] += 1
        order = sorted(range(len(owners)), key=lambda k: owners[k])
        idx = [owners[k] for k in order]
        chosen = [plans[k] for k in order]
        if not self.ev.fits(idx, chosen):
            return None
        return self.ev.bound(idx, chosen)

    def value(self, plans: Sequence[Plan]) -> float | None:
        self.counters["simulated"] += 1
        return self.ev.value(plans)

    def per_owner(self, rounds: int) -> HeuristicOutcome:
        problem = self.problem
        n = problem.num_owners
        order = sorted(range(n), key=lambda o: (-problem.owners[o].batch_size, o))
        chosen: dict[int, Plan] = {}
        for o in order:
            others = list(chosen.values())
            best: tuple[float, Plan] | None = None
            for plan in self.candidates(o, others):
                bound = self.bound([*chosen, o], [*others, plan])
                if bound is not None and (best is None or bound < best[0]):
                    best = (bound, plan)
            if best is None:
                raise InfeasibleError(f"training.sources[{o}]: no plan of this owner fits in "
                                      "memory beside the owners placed before it")
            chosen[o] = best[1]
        plans = [chosen[o] for o in range(n)]
        value = self.value(plans)
        if value is None:  # pragma: no cover - the greedy checks the memory of every step
            raise InfeasibleError("the greedy combination does not fit in memory")
        for _ in range(rounds):
            if self.late():
                break
            self.counters["rounds"] += 1
            improved = False
            from pipesl.sim.owners import simulate_owners

            finish = simulate_owners(problem, OwnersPlan(tuple(plans))).owner_makespans_s
            for o in sorted(range(n), key=lambda k: -finish[k]):
                if self.late():
                    break
                others = [plans[k] for k in range(n) if k != o]
                for plan in self.candidates(o, others):
                    if plan == plans[o]:
                        continue
                    trial = [*plans[:o], plan, *plans[o + 1:]]
                    bound = self.bound(list(range(n)), trial)
                    if bound is None or bound >= value:
                        continue
                    t = self.value(trial)
                    if t is not None and t < value:
                        plans, value, improved = trial, t, True
                        self.counters["improved"] += 1
            if not improved:
                break
        return HeuristicOutcome(tuple(plans), value, self.counters)

    # ------------------------------------------------------------------ shared replicas
    def fit(self, owner: int, part: ServerPart) -> Plan | None:
        """Owner ``owner``'s plan on ``part`` of least own bound (routes: the three
        fewest-hop ones; its label route: the fewest-hop one)."""
        problem = self.problem
        o = problem.owners[owner]
        g = problem.network.graph
        if part.stages:
            first = part.stages[0].node
            if not nx.has_path(g, o.node, first):
                return None
            routes: list[tuple[str, ...] | None] = [
                tuple(p) for p in itertools.islice(nx.shortest_simple_paths(g, o.node, first),
                                                   3)]
        else:
            routes = [None]
        last = part.stages[-1].node if part.stages else o.node
        label: tuple[str, ...] | None = None
        if o.labels_at is not None:
            if not nx.has_path(g, last, o.labels_at):
                return None
            label = tuple(nx.shortest_path(g, last, o.labels_at))
        from pipesl.solvers.microbatch import candidate_micro_batch_sizes

        sizes = ([o.micro_batch_size] if o.micro_batch_size is not None
                 else candidate_micro_batch_sizes(o.batch_size))
        best: tuple[float, Plan] | None = None
        for route in routes:
            plan0 = with_server_part(problem, owner, part, route, sizes[0], label)
            for b in sizes:
                plan = plan0.with_micro_batch_size(b)
                bound = self.bound([owner], [plan])
                if bound is not None and (best is None or bound < best[0]):
                    best = (bound, plan)
        return None if best is None else best[1]

    def shared(self, rounds: int) -> HeuristicOutcome:
        problem = self.problem
        n = problem.num_owners
        owner_nodes = {o.node for o in problem.owners}
        parts: dict[ServerPart, None] = {}
        for o in range(n):
            plan = self.solve(o, frozenset())
            if plan is not None:
                part = server_part(plan)
                if not any(s.node in owner_nodes for s in part.stages):
                    parts.setdefault(part, None)
        best: tuple[float, list[Plan]] | None = None
        for part in parts:
            fitted = [self.fit(o, part) for o in range(n)]
            if any(p is None for p in fitted):
                continue
            plans = [p for p in fitted if p is not None]
            t = self.value(plans)
            if t is not None and (best is None or t < best[0]):
                best = (t, plans)
        if best is None:
            raise InfeasibleError("training.replicas: shared: no common cut and server "
                                  "stages fit every owner")
        value, plans = best
        for _ in range(rounds):
            if self.late():
                break
            self.counters["rounds"] += 1
            improved = False
            for o in range(n):
                for b in _neighbour_sizes(problem, o, plans[o].micro_batch_size):
                    if self.late() or b == plans[o].micro_batch_size:
                        continue
                    trial = [*plans[:o], plans[o].with_micro_batch_size(b), *plans[o + 1:]]
                    t = self.value(trial)
                    if t is not None and t < value:
                        plans, value, improved = trial, t, True
                        self.counters["improved"] += 1
            if not improved:
                break
        return HeuristicOutcome(tuple(plans), value, self.counters)


def heuristic(problem: Problem, *, deadline: float | None = None,
              rounds: int = 3) -> HeuristicOutcome:
    """Plan every owner of ``problem`` quickly (module docstring).

    Raises
    ------
    InfeasibleError
        An owner has no plan that fits beside the others.
    """
    search = _Greedy(problem, deadline)
    if problem.training.replicas == "shared":
        return search.shared(rounds)
    return search.per_owner(rounds)
