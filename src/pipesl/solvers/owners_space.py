"""The search space of the many-owner planner (issue 18): what one owner may choose.

Shared by :mod:`pipesl.solvers.owners_search` (the certified joint search),
:mod:`pipesl.solvers.owners_heuristic` (greedy and best response) and
:mod:`pipesl.solvers.owners` (the entry point and the baselines):

* :func:`private_problem` — owner o's single-source problem (``Problem.owner_problem``), in
  which no *other* owner's node may compute: an owner's tensors are never delivered to
  another owner's node (docs/owners.md, privacy); routes may still relay through them;
* :func:`subset_problem` — the problem restricted to some owners (for partial bounds);
* :class:`Evaluator` — bounds of partial combinations (:func:`pipesl.cost.owners.
  owners_lower_bound` on the owners assigned so far) and simulated makespans of complete
  ones, cached per plan;
* :class:`ServerPart`, :func:`server_parts`, :func:`shared_owner_plans` — with
  ``replicas: shared`` every owner cuts at the same layer c and uses the same server-side
  stages; an owner chooses only its route to the first server stage (and its label route, b).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import networkx as nx

from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem.types import Problem

if TYPE_CHECKING:
    from pipesl.cost.owners import ResourceTerms

__all__ = [
    "Evaluator",
    "ServerPart",
    "owners_plan_fits",
    "paths",
    "private_problem",
    "server_part",
    "server_parts",
    "shared_owner_plans",
    "subset_problem",
    "with_server_part",
]


def private_problem(problem: Problem, owner: int) -> Problem:
    """Owner ``owner``'s single-source problem, in which no other owner's node computes
    (:meth:`pipesl.problem.types.Problem.owner_problem`); with one owner, the problem."""
    return problem.owner_problem(owner)


def subset_problem(problem: Problem, owners: Sequence[int]) -> Problem:
    """``problem`` with only the owners ``owners`` (in that order); one owner: its
    single-source problem."""
    if len(owners) == 1:
        return problem.owner_problem(owners[0])
    tr = problem.training
    chosen = tuple(problem.owners[i] for i in owners)
    first = chosen[0]
    training = replace(tr, sources=chosen, source=first.node, batch_size=first.batch_size,
                       micro_batch_size=first.micro_batch_size, labels_at=first.labels_at)
    return replace(problem, training=training)


def owners_plan_fits(problem: Problem, plan: OwnersPlan) -> bool:
    """True when every node holds what the owners' stages on it need (docs/owners.md)."""
    from pipesl.cost.owners import owners_memory

    net = problem.network
    return all(used <= net.node(n).memory for n, used in owners_memory(problem, plan).items())


class Evaluator:
    """Bounds and simulated makespans of (partial) combinations, with per-plan caches.

    * :meth:`own_bound` — owner o's schedule-true single-owner bound of a plan
      (:func:`pipesl.schedules.makespan_lower_bound`, the bounds of :mod:`pipesl.cost.bounds`
      read from the plan's table), a valid bound on when o finishes whatever others add;
    * :meth:`bound` — :func:`pipesl.cost.owners.owners_lower_bound` of some owners' plans
      (those owners alone) with those own bounds, from each plan's cached share of the
      resource terms (:func:`pipesl.cost.owners.owner_resource_terms`): a lower bound on
      every completion (each resource's busy time only grows with more owners); sequential
      mode: the sum;
    * :meth:`fits` — the owners' plans together fit every node's memory;
    * :meth:`value` — the simulated makespan of a complete combination: the event engine of
      :func:`pipesl.sim.owners.simulate_owners` (:func:`pipesl.sim.shared.run_pipelines`) on
      the owners' pipelines, without the reports (parallel: the joint iteration; sequential:
      the sum of the owners alone), or None when it does not fit.
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.sequential = problem.training.owners_mode == "sequential"
        self._own: dict[tuple[int, Plan], float] = {}
        self._pipe: dict[tuple[int, Plan], Any] = {}
        self._alone: dict[tuple[int, Plan], float] = {}
        self._subsets: dict[tuple[int, ...], Problem] = {}
        self._share: dict[tuple[int, Plan], ResourceTerms] = {}

    def subset(self, owners: Sequence[int]) -> Problem:
        key = tuple(owners)
        if key not in self._subsets:
            self._subsets[key] = subset_problem(self.problem, key)
        return self._subsets[key]

    def pipeline(self, owner: int, plan: Plan) -> Any:
        key = (owner, plan)
        if key not in self._pipe:
            from pipesl.schedules import plan_table
            from pipesl.sim import plan_steps
            from pipesl.sim.shared import OwnerPipeline

            sub = self.problem.owner_problem(owner)
            table = plan_table(sub, plan)
            m = table.num_micro_batches
            self._pipe[key] = OwnerPipeline(plan_steps(sub, plan), table,
                                            (plan.micro_batch_size,) * m,
                                            self.problem.owners[owner].label)
        return self._pipe[key]

    def own_bound(self, owner: int, plan: Plan) -> float:
        key = (owner, plan)
        if key not in self._own:
            from pipesl.schedules import makespan_lower_bound

            self._own[key] = float(makespan_lower_bound(self.problem.owner_problem(owner), plan,
                                                        self.pipeline(owner, plan).table))
        return self._own[key]

    def share(self, owner: int, plan: Plan) -> ResourceTerms:
        """The plan's share of the resource terms (:func:`pipesl.cost.owners.
        owner_resource_terms`), computed once per plan."""
        key = (owner, plan)
        if key not in self._share:
            from pipesl.cost.owners import owner_resource_terms

            self._share[key] = owner_resource_terms(self.problem, plan, owner)
        return self._share[key]

    def bound(self, owners: Sequence[int], plans: Sequence[Plan]) -> float:
        own = [self.own_bound(o, p) for o, p in zip(owners, plans, strict=True)]
        if self.sequential:
            return math.fsum(own)
        from pipesl.cost.owners import combine_resource_terms

        terms = combine_resource_terms([self.share(o, p)
                                        for o, p in zip(owners, plans, strict=True)])
        return max([*terms.values(), *own])

    def fits(self, owners: Sequence[int], plans: Sequence[Plan]) -> bool:
        if len(owners) == 1:
            from pipesl.cost import feasible_micro_batch_sizes

            p = plans[0]
            return bool(feasible_micro_batch_sizes(self.problem.owner_problem(owners[0]),
                                                   p)[p.micro_batch_size - 1])
        sub = self.problem if len(owners) == self.problem.num_owners else self.subset(owners)
        return owners_plan_fits(sub, OwnersPlan(tuple(plans)))

    def alone(self, owner: int, plan: Plan) -> float:
        key = (owner, plan)
        if key not in self._alone:
            from pipesl.sim.shared import run_pipelines

            self._alone[key] = float(run_pipelines([self.pipeline(owner, plan)]).makespan_s)
        return self._alone[key]

    def value(self, plans: Sequence[Plan]) -> float | None:
        owners = list(range(len(plans)))
        if not self.fits(owners, plans):
            return None
        if self.sequential:
            return math.fsum(self.alone(o, p) for o, p in enumerate(plans))
        from pipesl.sim.shared import run_pipelines

        return float(run_pipelines([self.pipeline(o, p)
                                    for o, p in enumerate(plans)]).makespan_s)


def paths(problem: Problem, u: str, v: str) -> list[tuple[str, ...]]:
    """Every route from ``u`` to ``v`` the problem allows (simple paths; min-hop ones with
    ``routing: shortest``)."""
    g = problem.network.graph
    if u == v:
        return [(u,)]
    if not nx.has_path(g, u, v):
        return []
    if problem.training.routing == "shortest":
        return [tuple(p) for p in nx.all_shortest_paths(g, u, v)]
    return [tuple(p) for p in nx.all_simple_paths(g, u, v)]


@dataclass(frozen=True)
class ServerPart:
    """What every owner shares with ``replicas: shared``: the cut after layer ``cut`` and the
    server-side stages (layers cut+1..L) with the routes between them (no stage when
    ``cut`` = L: every owner trains the whole model on its own node)."""

    cut: int
    stages: tuple[Stage, ...]
    routes: tuple[tuple[str, ...], ...]


def server_part(plan: Plan) -> ServerPart:
    """The server side of an owner's plan."""
    return ServerPart(plan.stages[0].last_layer, plan.stages[1:], plan.routes[1:])


def with_server_part(problem: Problem, owner: int, part: ServerPart,
                     route: tuple[str, ...] | None, b: int,
                     label_route: tuple[str, ...] | None) -> Plan:
    """Owner ``owner``'s plan on ``part``: layers 1..cut on its node, then ``route`` to the
    first server stage."""
    node = problem.owners[owner].node
    first = Stage(node, 1, part.cut)
    routes = (route, *part.routes) if part.stages else ()
    assert not part.stages or route is not None
    return Plan((first, *part.stages), routes, b, label_route)  # type: ignore[arg-type]


def server_parts(problem: Problem, plans: Iterable[Plan]) -> list[ServerPart]:
    """The distinct server parts of ``plans`` whose server stages run on no owner's node."""
    owner_nodes = {o.node for o in problem.owners}
    seen: dict[ServerPart, None] = {}
    for plan in plans:
        part = server_part(plan)
        if any(s.node in owner_nodes for s in part.stages):
            continue
        seen.setdefault(part, None)
    return list(seen)


def shared_owner_plans(problem: Problem, owner: int, part: ServerPart,
                       sizes: Sequence[int]) -> Iterator[Plan]:
    """Every plan of ``owner`` on ``part``: each route to the first server stage, each label
    route, each b of ``sizes``."""
    o = problem.owners[owner]
    if part.stages:
        first = part.stages[0].node
        routes: list[tuple[str, ...] | None] = list(paths(problem, o.node, first))
    else:
        routes = [None]
    last = part.stages[-1].node if part.stages else o.node
    labels: list[tuple[str, ...] | None] = (
        [None] if o.labels_at is None else list(paths(problem, last, o.labels_at)))
    for route, label, b in itertools.product(routes, labels, sizes):
        yield with_server_part(problem, owner, part, route, b, label)
