"""The search space of the many-owner planner (issue 18): what one owner may choose.

Shared by :mod:`pipesl.solvers.owners_search` (the certified joint search),
:mod:`pipesl.solvers.owners_heuristic` (greedy and best response) and
:mod:`pipesl.solvers.owners` (the entry point and the baselines):

* :func:`private_problem` — owner o's single-source problem (``Problem.owner_problem``), in
  which no *other* owner's node may compute: an owner's tensors are never delivered to
  another owner's node (docs/owners.md, privacy); routes may still relay through them;
* :func:`subset_problem` — the problem restricted to some owners (for partial bounds);
* :func:`joint_value` — a complete combination simulated by :func:`pipesl.sim.owners.
  simulate_owners` (``None`` when it does not fit in memory);
* :func:`partial_bound` — a lower bound on the makespan of every completion of a partial
  combination, from :func:`pipesl.cost.owners.owners_lower_bound` on the assigned owners;
* :class:`ServerPart`, :func:`server_parts`, :func:`shared_owner_plans` — with
  ``replicas: shared`` every owner cuts at the same layer c and uses the same server-side
  stages; an owner chooses only its route to the first server stage (and its label route, b).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import networkx as nx

from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem.types import Problem

__all__ = [
    "ServerPart",
    "joint_value",
    "owners_plan_fits",
    "partial_bound",
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


def joint_value(problem: Problem, plans: Sequence[Plan]) -> float | None:
    """The simulated makespan (``training.owners`` mode) of the combination, or None when
    it does not fit in memory."""
    from pipesl.sim.owners import simulate_owners

    combined = OwnersPlan(tuple(plans))
    if not owners_plan_fits(problem, combined):
        return None
    return float(simulate_owners(problem, combined).makespan_s)


def partial_bound(problem: Problem, owners: Sequence[int], plans: Sequence[Plan]) -> float:
    """A lower bound on the joint makespan of every completion of ``plans`` (the plans of
    ``owners``): :func:`pipesl.cost.owners.owners_lower_bound` of those owners alone (every
    term of it only grows when other owners add load). In sequential mode a round is the
    sum of the owners' makespans, so the assigned owners' bounds add up."""
    from pipesl.cost.owners import owners_lower_bound

    if problem.training.owners_mode == "sequential":
        return sum(owners_lower_bound(problem.owner_problem(i), OwnersPlan((p,)))
                   for i, p in zip(owners, plans, strict=True))
    return float(owners_lower_bound(subset_problem(problem, owners), OwnersPlan(tuple(plans))))


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
