"""Seeded random multi-owner problems and plans (several data owners sharing a network)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.problem import DataOwner, Problem
from pipesl.problem.validate import validate_problem
from strategies import Rng, as_random, random_plan, random_problem, random_route


def random_owners_problem(rng: Rng, n_owners: int = 2, *, n_nodes: int | None = None,
                          n_layers: int | None = None, mode: str = "parallel",
                          replicas: str = "per-owner", schedule: str | None = None,
                          **options: Any) -> Problem:
    """A valid random problem with ``n_owners`` data owners on distinct compute nodes.

    The network and model come from :func:`strategies.random_problem` (unbounded memory unless
    ``memory`` is given); owners get random batch sizes, fixed b half of the time, and labels
    at their own node a third of the time. Fewer owners when the network has fewer compute
    nodes than asked (at least one).
    """
    r = as_random(rng)
    options.setdefault("memory", "unbounded")
    base = random_problem(r, n_nodes if n_nodes is not None else r.randint(3, 8),
                          n_layers if n_layers is not None else r.randint(2, 6),
                          schedule=schedule, labels="none", **options)
    compute = [n.id for n in base.network.compute_nodes]
    nodes = [base.training.source, *r.sample([n for n in compute if n != base.training.source],
                                             min(n_owners, len(compute)) - 1)]
    owners = []
    for i, node in enumerate(nodes):
        batch = r.choice([1, 3, 8, 16, 33])
        fixed = r.randint(1, batch) if r.random() < 0.5 else None
        labels = node if r.random() < 1 / 3 else None
        owners.append(DataOwner(node, batch, fixed, labels, f"owner{i}"))
    training = replace(base.training, sources=tuple(owners), owners_mode=mode,
                       replicas=replicas)
    return validate_problem(Problem(base.network, base.model, training, "random-owners"))


def _label_route(r: Any, problem: Problem, last: str) -> tuple[str, ...] | None:
    target = problem.training.labels_at
    if target is None or target == last:
        return None
    return random_route(r, problem, last, target)


def random_owners_plan(rng: Rng, problem: Problem) -> OwnersPlan:
    """A random valid plan of a multi-owner problem (the shared rule kept with ``shared``)."""
    r = as_random(rng)
    first = random_plan(r, problem.owner_problem(0))
    plans = [first]
    for o in range(1, problem.num_owners):
        sub = problem.owner_problem(o)
        if problem.training.replicas != "shared":
            plans.append(random_plan(r, sub))
            continue
        b = sub.training.micro_batch_size or r.randint(1, sub.training.batch_size)
        own = Stage(sub.training.source, 1, first.stages[0].last_layer)
        stages = (own, *first.stages[1:])
        routes: tuple[tuple[str, ...], ...] = ()
        if len(stages) > 1:
            routes = (random_route(r, sub, own.node, stages[1].node), *first.routes[1:])
        plans.append(Plan(stages, routes, b, _label_route(r, sub, stages[-1].node)))
    return OwnersPlan(tuple(plans))
