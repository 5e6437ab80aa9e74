"""Who does what in a distributed run: ranks, roles, hops, link owners and planned durations.

Pure Python (no torch): everything here is derived from the problem, the plan and the schedule,
so every process of a job computes the same :class:`Topology` independently and the launcher,
the workers and the tests agree on it.

* **Ranks**: one process per node of the plan — compute stages and the relays of every route
  (the label route included) — the source first, then nodes in order of first appearance
  along the routes.
* **Routes**: ``plan.all_routes()``: route k (k < K - 1) joins stage k to stage k + 1; with
  ``labels_at`` on another node than the last stage, route K - 1 (the *label route*) joins the
  last stage to the label node, which computes the loss (U-shaped split learning).
* **Hops**: every consecutive pair of a route, with its pipeline step (the simulator's
  :func:`pipesl.sim.plan_steps` index), its per-direction transfer time ``x`` from
  :mod:`pipesl.cost` and the resource each direction occupies.
* **Link owners** (emulation): a half-duplex link is one resource for both directions; the
  endpoint with the lower rank *owns* it and paces every transfer over it, outbound ones before
  sending and inbound ones after receiving, through one FIFO queue. A full-duplex direction
  ``u>v`` is owned by its sender ``u``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from pipesl.cost import Affine, num_micro_batches
from pipesl.plan import Plan, validate_plan
from pipesl.problem.types import Problem
from pipesl.schedules import ScheduleTable, plan_table
from pipesl.sim import Step, plan_steps

__all__ = ["Hop", "StageRole", "Topology", "build_topology", "micro_batch_sizes"]

Direction = Literal["F", "B"]
DIRECTIONS: tuple[Direction, Direction] = ("F", "B")


def micro_batch_sizes(batch_size: int, micro_batch_size: int) -> tuple[int, ...]:
    """Sizes of the M micro-batches: b each, the last one ``B - (M - 1) b``.

    Examples
    --------
    >>> micro_batch_sizes(10, 4)
    (4, 4, 2)
    """
    m = num_micro_batches(batch_size, micro_batch_size)
    return (micro_batch_size,) * (m - 1) + (batch_size - (m - 1) * micro_batch_size,)


@dataclass(frozen=True)
class Hop:
    """One hop of a route: the activation goes ``src -> dst``, its gradient ``dst -> src``."""

    route: int
    """Index into :attr:`Topology.routes`."""
    position: int
    """0-based position along the route (hop p joins ``route[p]`` and ``route[p + 1]``)."""
    src: str
    dst: str
    step: int
    """Index of the hop among the pipeline steps (:attr:`Topology.steps`)."""
    forward: Affine
    """x of the activation (seconds, affine in the micro-batch size)."""
    backward: Affine
    """x of the gradient."""
    forward_resource: str
    backward_resource: str

    def ends(self, kind: Direction) -> tuple[str, str]:
        """(sender, receiver) of the transfer in direction ``kind``."""
        return (self.src, self.dst) if kind == "F" else (self.dst, self.src)

    def resource(self, kind: Direction) -> str:
        """The resource the transfer in direction ``kind`` occupies."""
        return self.forward_resource if kind == "F" else self.backward_resource

    def duration(self, kind: Direction, samples: int) -> float:
        """Planned transfer time x for a micro-batch of ``samples`` samples."""
        return (self.forward if kind == "F" else self.backward)(samples)


@dataclass(frozen=True)
class StageRole:
    """A compute stage: its node, layers, schedule order and planned pass times."""

    index: int
    """0-based stage index k."""
    node: str
    first_layer: int
    last_layer: int
    step: int
    """Index among the pipeline steps."""
    forward: Affine
    """Planned forward pass time (compute + overhead) as a function of the samples."""
    backward: Affine
    resource: str
    """``node:<id>``."""


@dataclass(frozen=True)
class Topology:
    """Everything a process needs to know about the job, derived from (problem, plan, schedule).

    Build it with :func:`build_topology`.
    """

    nodes: tuple[str, ...]
    """Rank order: ``nodes[r]`` runs as rank r."""
    stages: tuple[StageRole, ...]
    routes: tuple[tuple[str, ...], ...]
    """Stage routes, then the label route when the loss is computed elsewhere than the last
    stage."""
    hops: tuple[tuple[Hop, ...], ...]
    """``hops[r][p]``: hop p of route r."""
    steps: tuple[Step, ...]
    """The simulator's pipeline steps (names, resources, affine times), in pipeline order."""
    table: ScheduleTable
    """The schedule's per-stage action lists (the very lists the simulator runs)."""
    sizes: tuple[int, ...]
    """Samples in each micro-batch."""
    batch_size: int
    source: str
    loss_node: str
    """The node that computes the loss: ``labels_at``, else the last stage's node."""
    labels_local: bool
    """True when the loss node reads the labels itself (``labels_at`` given, or K = 1);
    False when the source sends them along the routes once per batch."""
    label_path: tuple[str, ...]
    """Source -> last stage: the concatenated stage routes the labels travel along."""
    owners: dict[str, str]
    """Resource -> the node that paces it under emulation."""

    # ------------------------------------------------------------------ lookups

    @property
    def num_stages(self) -> int:
        """K."""
        return len(self.stages)

    @property
    def num_micro_batches(self) -> int:
        """M."""
        return len(self.sizes)

    @property
    def has_label_route(self) -> bool:
        """True when the last stage's output travels to a separate loss node."""
        return len(self.routes) == len(self.stages)

    def rank(self, node: str) -> int:
        """The rank that runs ``node``."""
        return self.nodes.index(node)

    def stage_of(self, node: str) -> StageRole | None:
        """The stage ``node`` computes, if any."""
        for s in self.stages:
            if s.node == node:
                return s
        return None

    def hops_at(self, node: str) -> list[Hop]:
        """Every hop with ``node`` as one end."""
        return [h for route in self.hops for h in route if node in (h.src, h.dst)]

    def neighbours(self, node: str) -> list[str]:
        """Nodes ``node`` exchanges messages with (routes and label path), in rank order."""
        peers = {h.dst if h.src == node else h.src for h in self.hops_at(node)}
        for u, v in pairwise(self.label_path):
            if node == u:
                peers.add(v)
            elif node == v:
                peers.add(u)
        return sorted(peers, key=self.rank)

    def paced_by(self, hop: Hop, kind: Direction) -> str:
        """The node that paces the transfer of ``hop`` in direction ``kind``."""
        return self.owners[hop.resource(kind)]

    def roles(self, node: str) -> list[str]:
        """People-readable roles of ``node``: ``stage 1 (L1-4)``, ``relay``, ``loss`` (with
        ``own labels`` when the labels stay on it)."""
        out: list[str] = []
        stage = self.stage_of(node)
        if stage is not None:
            out.append(f"stage {stage.index + 1} (L{stage.first_layer}-{stage.last_layer})")
        if any(node in r[1:-1] for r in self.routes):
            out.append("relay")
        if node == self.loss_node:
            out.append("loss (own labels)" if self.labels_local else "loss")
        return out


def _rank_order(plan: Plan, routes: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    order: list[str] = [plan.stages[0].node]
    for n in [*(s.node for s in plan.stages), *(n for r in routes for n in r)]:
        if n not in order:
            order.append(n)
    return tuple(order)


def build_topology(problem: Problem, plan: Plan,
                   schedule: str | ScheduleTable | None = None) -> Topology:
    """Derive the job's :class:`Topology` from a problem, a plan and a schedule.

    Parameters
    ----------
    problem : Problem
    plan : Plan
        Validated against ``problem`` here.
    schedule : str or ScheduleTable, optional
        ``gpipe``, ``1f1b`` or an explicit table; default the problem's schedule.

    Raises
    ------
    PlanError
        When the plan is not valid for the problem.
    ProblemError
        On an unknown schedule or a table of the wrong shape.
    """
    validate_plan(problem, plan)
    tr = problem.training
    sizes = micro_batch_sizes(tr.batch_size, plan.micro_batch_size)
    k_total = plan.num_stages
    if isinstance(schedule, ScheduleTable):
        table = schedule.validate()
        if (table.num_stages, table.num_micro_batches) != (k_total, len(sizes)):
            from pipesl.exceptions import ProblemError

            raise ProblemError("schedule", f"has {table.num_stages} stages x "
                               f"{table.num_micro_batches} micro-batches; the plan needs "
                               f"{k_total} x {len(sizes)}")
    else:
        table = plan_table(problem, plan, schedule or tr.schedule)  # the simulator's table
    steps = plan_steps(problem, plan)
    routes = plan.all_routes()
    nodes = _rank_order(plan, routes)
    rank = {n: i for i, n in enumerate(nodes)}

    stages: list[StageRole] = []
    hops: list[list[Hop]] = [[] for _ in routes]
    i = 0

    def add_hops(r: int) -> None:
        nonlocal i
        for p, (u, v) in enumerate(pairwise(routes[r])):
            st = steps[i]
            assert st.stage is None and st.name.startswith(f"{u}>{v} "), (st.name, u, v)
            hops[r].append(Hop(r, p, u, v, i, st.forward, st.backward,
                               st.forward_resource.name, st.backward_resource.name))
            i += 1

    for k, s in enumerate(plan.stages):
        st = steps[i]
        assert st.stage == k, (st.name, k)
        stages.append(StageRole(k, s.node, s.first_layer, s.last_layer, i, st.forward,
                                st.backward, st.forward_resource.name))
        i += 1
        if k < len(plan.routes):
            add_hops(k)
    if len(routes) > len(plan.routes):
        add_hops(len(routes) - 1)
    assert i == len(steps), "every pipeline step is a stage or a hop"

    owners: dict[str, str] = {}
    for route in hops:
        for h in route:
            for kind in DIRECTIONS:
                res = h.resource(kind)
                sender = h.ends(kind)[0]
                if h.forward_resource == h.backward_resource:  # half duplex: one medium
                    owner = min(h.src, h.dst, key=rank.__getitem__)
                else:  # full duplex: the sending end paces its direction
                    owner = sender
                assert owners.get(res, owner) == owner
                owners[res] = owner

    label_path: list[str] = [plan.stages[0].node]
    for r in plan.routes:
        label_path.extend(r[1:])
    loss_node = tr.labels_at if tr.labels_at is not None else plan.stages[-1].node
    return Topology(
        nodes=nodes, stages=tuple(stages), routes=routes,
        hops=tuple(tuple(h) for h in hops), steps=steps, table=table, sizes=sizes,
        batch_size=tr.batch_size, source=tr.source, loss_node=loss_node,
        labels_local=tr.labels_at is not None or k_total == 1,
        label_path=tuple(label_path), owners=owners)
