"""Who does what when several data owners train at once: ranks, shared links, compute order.

Pure Python (no torch), identical in every process, like
:mod:`pipesl.runtime.topology` for one owner:

* **Per owner**: owner o's single-source :class:`~pipesl.runtime.topology.Topology`, built
  from ``problem.owner_problem(o)`` and its plan (its stages, routes, hops, schedule table,
  micro-batch sizes and planned durations from :mod:`pipesl.cost`).
* **Ranks**: one process per node of the union of every owner's plan (relays included): the
  owners' sources first, in owner order (owner 0's source is rank 0), then every other node
  in order of first appearance in the owners' rank orders. A node that serves several owners
  runs one process.
* **Pacing** (emulation): a link that several owners' routes cross is *one* resource, paced
  by one node for every owner: a half-duplex link by its lower-ranked end (in the union's
  ranks), a full-duplex direction by its sender.
* **Compute order**: a compute node that runs stages of several owners executes their passes
  in one static order — the order in which the simulator
  (:func:`pipesl.sim.owners.simulate_owners`) ran that node's tasks — so that every blocking
  receive of the program is satisfied by a pass that comes earlier in a causal order (no
  deadlock) and measured and simulated timelines are comparable. The simulator follows the
  documented service order (each owner's stage keeps its schedule order; a ready-first choice
  between owners, ties backward first, then lower owner index); :func:`causal_order` checks
  that the order is causal and gives one without the simulator (tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipesl.problem.types import Problem
from pipesl.runtime.topology import DIRECTIONS, StageRole, Topology, build_topology

__all__ = [
    "OwnersTopology",
    "Task",
    "build_owners_topology",
    "causal_order",
    "check_order",
    "trace_order",
]


@dataclass(frozen=True, order=True)
class Task:
    """One pass of one owner's stage: ``kind`` F or B of micro-batch ``micro_batch``."""

    owner: int
    stage: int
    kind: str
    micro_batch: int


@dataclass(frozen=True)
class OwnersTopology:
    """Everything a process needs to know about a many-owner job.

    Build it with :func:`build_owners_topology`.
    """

    owners: tuple[Topology, ...]
    """Owner o's single-source topology."""
    labels: tuple[str, ...]
    """Owner o's name (its ``label``)."""
    nodes: tuple[str, ...]
    """Rank order of the union: ``nodes[r]`` runs as rank r."""
    pacing: dict[str, str]
    """Resource -> the node that paces it under emulation (one for every owner)."""
    order: dict[str, tuple[Task, ...]]
    """Compute node -> the static order of every owner's passes on it (one iteration)."""
    mode: Literal["parallel", "sequential"]
    replicas: Literal["per-owner", "shared"]

    @property
    def num_owners(self) -> int:
        """Owners."""
        return len(self.owners)

    def rank(self, node: str) -> int:
        """The rank that runs ``node``."""
        return self.nodes.index(node)

    def stages_at(self, node: str) -> list[tuple[int, StageRole]]:
        """(owner, stage) of every owner's stage that ``node`` computes, in owner order."""
        out = []
        for o, topo in enumerate(self.owners):
            st = topo.stage_of(node)
            if st is not None:
                out.append((o, st))
        return out

    def is_shared(self, stage: int) -> bool:
        """Is stage ``stage`` (0-based) one server-side module for every owner? (``shared``
        replicas: every stage after the owners' own first one.)"""
        return self.replicas == "shared" and stage > 0

    def roles(self, node: str) -> list[str]:
        """People-readable roles of ``node``, each with its owner when there are several."""
        out: list[str] = []
        for o, topo in enumerate(self.owners):
            tag = f"{self.labels[o]}: " if self.num_owners > 1 else ""
            out += [f"{tag}{r}" for r in topo.roles(node)]
            if node == topo.source:
                out.insert(0, f"{tag}source" if tag else "source")
        return out


def _union_ranks(topos: Sequence[Topology]) -> tuple[str, ...]:
    order: list[str] = []
    for n in [*(t.source for t in topos), *(n for t in topos for n in t.nodes)]:
        if n not in order:
            order.append(n)
    return tuple(order)


def _pacing(topos: Sequence[Topology], nodes: Sequence[str]) -> dict[str, str]:
    rank = {n: i for i, n in enumerate(nodes)}
    pacing: dict[str, str] = {}
    for topo in topos:
        for route in topo.hops:
            for h in route:
                for kind in DIRECTIONS:
                    res = h.resource(kind)
                    if h.forward_resource == h.backward_resource:
                        who = min(h.src, h.dst, key=rank.__getitem__)
                    else:
                        who = h.ends(kind)[0]
                    if pacing.setdefault(res, who) != who:  # pragma: no cover - by design
                        raise AssertionError(f"{res} paced by {pacing[res]} and {who}")
    return pacing


def _queues(topos: Sequence[Topology]) -> dict[str, list[list[Task]]]:
    """Per compute node, each owner's stage there as its schedule order of tasks."""
    out: dict[str, list[list[Task]]] = {}
    for o, topo in enumerate(topos):
        for st in topo.stages:
            out.setdefault(st.node, []).append(
                [Task(o, st.index, a.kind, a.micro_batch) for a in topo.table.orders[st.index]])
    return out


def _deps(topos: Sequence[Topology], t: Task) -> list[Task]:
    """The passes of other stages that ``t`` needs the output of."""
    k_total = topos[t.owner].num_stages
    if t.kind == "F":
        return [Task(t.owner, t.stage - 1, "F", t.micro_batch)] if t.stage > 0 else []
    if t.stage + 1 < k_total:
        return [Task(t.owner, t.stage + 1, "B", t.micro_batch)]
    return []


def check_order(topos: Sequence[Topology], order: Mapping[str, Sequence[Task]]) -> None:
    """Raise AssertionError unless ``order`` runs every task once, keeps every owner's stage
    in its schedule order, and is causal (some global order of all tasks respects every
    node's order and every data dependency): then blocking receives cannot deadlock."""
    queues = _queues(topos)
    for node, lists in queues.items():
        got = list(order.get(node, ()))
        for q in lists:
            mine = [t for t in got if (t.owner, t.stage) == (q[0].owner, q[0].stage)]
            assert mine == q, f"{node}: owner {q[0].owner}'s stage {q[0].stage + 1} order"
        assert len(got) == sum(len(q) for q in lists), f"{node}: foreign tasks"
    done: set[Task] = set()
    heads = {n: 0 for n in order}
    progress = True
    while progress:
        progress = False
        for n, seq in order.items():
            while heads[n] < len(seq) and all(d in done for d in _deps(topos, seq[heads[n]])):
                done.add(seq[heads[n]])
                heads[n] += 1
                progress = True
    stuck = {n: seq[heads[n]] for n, seq in order.items() if heads[n] < len(seq)}
    assert not stuck, f"the compute order deadlocks: {stuck}"


def causal_order(topos: Sequence[Topology]) -> dict[str, tuple[Task, ...]]:
    """A causal static order without the simulator: repeatedly, every node takes the head
    of one of its owners' queues whose inputs are done (backward first, then lower owner)."""
    queues = _queues(topos)
    out: dict[str, list[Task]] = {n: [] for n in queues}
    done: set[Task] = set()
    left = sum(len(q) for lists in queues.values() for q in lists)
    while left:
        moved = False
        for n, lists in queues.items():
            ready = [q for q in lists if q and all(d in done for d in _deps(topos, q[0]))]
            if not ready:
                continue
            q = min(ready, key=lambda q: (q[0].kind != "B", q[0].owner))
            t = q.pop(0)
            out[n].append(t)
            done.add(t)
            left -= 1
            moved = True
        if not moved:  # pragma: no cover - schedule tables are causal
            raise AssertionError("no causal order")
    return {n: tuple(ts) for n, ts in out.items()}


def trace_order(topos: Sequence[Topology], records: Iterable[Any]
                ) -> dict[str, tuple[Task, ...]]:
    """Each compute node's tasks in the order the simulator started them.

    ``records`` are the simulator's task records (:class:`pipesl.sim.TaskRecord`: ``owner``,
    ``stage``, ``kind``, ``micro_batch``, ``start_s``); hops are skipped.
    """
    node_of = {(o, st.index): st.node for o, t in enumerate(topos) for st in t.stages}
    starts: dict[str, list[tuple[float, int, Task]]] = {}
    for i, r in enumerate(records):
        stage = getattr(r, "stage", None)
        if stage is None or getattr(r, "kind", None) not in ("F", "B"):
            continue
        owner = int(getattr(r, "owner", 0))
        t = Task(owner, int(stage), str(r.kind), int(r.micro_batch))
        starts.setdefault(node_of[(owner, t.stage)], []).append((float(r.start_s), i, t))
    return {n: tuple(t for _, _, t in sorted(v)) for n, v in starts.items()}


def build_owners_topology(problem: Problem, plans: Sequence[Any], schedule: str | None = None,
                          order: Mapping[str, Sequence[Task]] | None = None
                          ) -> OwnersTopology:
    """Derive a many-owner job's :class:`OwnersTopology`.

    Parameters
    ----------
    problem : Problem
    plans : sequence of Plan
        Owner o's single-source plan (``OwnersPlan.plans``), valid for
        ``problem.owner_problem(o)``.
    schedule : str, optional
        ``gpipe`` / ``1f1b`` / ``1f1b-net``, for every owner; default the problem's.
    order : mapping, optional
        Each compute node's static order (:func:`trace_order` of the simulator's trace);
        default :func:`causal_order`. Checked with :func:`check_order`.
    """
    owners = tuple(problem.owners)
    topos = tuple(build_topology(problem.owner_problem(o), p, schedule)
                  for o, p in enumerate(plans))
    if len(topos) != len(owners):
        raise ValueError(f"{len(topos)} plans for {len(owners)} owners")
    nodes = _union_ranks(topos)
    chosen = {n: tuple(ts) for n, ts in order.items()} if order is not None else (
        causal_order(topos))
    check_order(topos, chosen)
    tr = problem.training
    return OwnersTopology(owners=topos, labels=tuple(d.label for d in owners), nodes=nodes,
                          pacing=_pacing(topos, nodes), order=chosen,
                          mode=getattr(tr, "owners_mode", "parallel"),
                          replicas=getattr(tr, "replicas", "per-owner"))
