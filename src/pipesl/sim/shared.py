"""Several pipelines (one per data owner) on one event engine, sharing nodes and links.

:func:`run_pipeline` generalised: each owner's pipeline is a sequence of steps with its own
schedule table and micro-batch sizes, exactly as one pipeline alone
(:mod:`pipesl.sim.pipeline`); resources with the same name are the same resource. The
service order (docs/owners.md):

* a compute node keeps, per owner's stage on it, that owner's schedule order; when free it
  starts, among the heads of those orders that are *ready* — input arrived and the owner's
  previous action there finished — the one ready longest (ties: backward before forward,
  then the lower owner index) — a :class:`~pipesl.sim.engine.MergedServer`;
* a link serves its tasks in arrival order (FIFO);
* completion events at the same instant are handled backward passes first, then by owner
  index, then in the order they were scheduled — so simultaneous arrivals at a link are queued
  gradients first, lower owners first.

With one pipeline every rule reduces to :func:`run_pipeline`'s and the trace is identical
(``tests/sim/test_owners_sim.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipesl.cost import Resource
from pipesl.schedules import ScheduleTable
from pipesl.sim.engine import EventQueue, FifoServer, MergedServer
from pipesl.sim.pipeline import Step, _check
from pipesl.sim.trace import Trace

__all__ = ["OwnerPipeline", "run_pipelines"]


@dataclass(frozen=True)
class OwnerPipeline:
    """One owner's pipeline: its steps, schedule table and micro-batch sizes."""

    steps: tuple[Step, ...]
    """In pipeline order; the compute steps carry the table's stages 0..K-1 in order."""
    table: ScheduleTable
    """Each compute stage's action order."""
    micro_batch_sizes: tuple[int, ...]
    """The size of each of the table's M micro-batches."""
    label: str = ""
    """The owner's name (for the trace)."""


def run_pipelines(pipelines: Sequence[OwnerPipeline]) -> Trace:
    """Simulate one iteration of several owners' pipelines at once; return the joint trace.

    Parameters
    ----------
    pipelines : sequence of OwnerPipeline
        In owner order (the index is the owner's tie-break rank).

    Returns
    -------
    Trace
        Every task of every owner (``trace.owner``), steps numbered owner after owner;
        resources in order of first use over the owners in order.

    Raises
    ------
    PlanError
        When a pipeline's steps and table do not fit together.
    """
    if not pipelines:
        raise ValueError("run_pipelines needs at least one pipeline")
    for pl in pipelines:
        _check(pl.steps, pl.table, pl.micro_batch_sizes)
    num_owners = len(pipelines)
    names: dict[Resource, int] = {}
    for pl in pipelines:
        for s in pl.steps:
            for r in (s.forward_resource, s.backward_resource):
                names.setdefault(r, len(names))
    # Task ids: owner o's task (2 p + pass) M_o + m is task_base[o] + that.
    task_base: list[int] = []
    step_base: list[int] = []
    total = steps_total = 0
    for pl in pipelines:
        task_base.append(total)
        step_base.append(steps_total)
        total += 2 * len(pl.steps) * pl.table.num_micro_batches
        steps_total += len(pl.steps)
    queues: dict[Resource, tuple[list[list[int]], list[list[bool]]]] = {}
    for o, pl in enumerate(pipelines):
        m_total = pl.table.num_micro_batches
        for p, s in enumerate(pl.steps):
            if s.stage is None:
                continue
            actions = pl.table.orders[s.stage]
            orders, backward = queues.setdefault(s.forward_resource, ([], []))
            orders.append([task_base[o] + (2 * p + (kind == "B")) * m_total + m
                           for kind, m in actions])
            backward.append([kind == "B" for kind, _ in actions])
    servers: list[FifoServer | MergedServer] = []
    for key in names:
        if key in queues:
            servers.append(MergedServer(*queues[key]))
        else:
            servers.append(FifoServer())

    task_server: list[FifoServer | MergedServer] = [servers[0]] * total
    task_resource = np.zeros(total, dtype=np.int64)
    task_next = [-1] * total
    durations = [0.0] * total
    priority = [0] * total
    step_of = np.zeros(total, dtype=np.int64)
    kind_of = np.zeros(total, dtype=np.int8)
    micro_of = np.zeros(total, dtype=np.int64)
    owner_of = np.zeros(total, dtype=np.int64)
    for o, pl in enumerate(pipelines):
        m_total, num_steps, base = pl.table.num_micro_batches, len(pl.steps), task_base[o]
        sizes = pl.micro_batch_sizes
        for p, s in enumerate(pl.steps):
            for pas, (affine, r) in enumerate(((s.forward, s.forward_resource),
                                               (s.backward, s.backward_resource))):
                if pas == 0:
                    delta = 2 * m_total if p < num_steps - 1 else m_total
                else:
                    delta = -2 * m_total if p > 0 else 0
                first_task = base + (2 * p + pas) * m_total
                per_size = {b: affine(b) for b in set(sizes)}
                server, index = servers[names[r]], names[r]
                for m in range(m_total):
                    task = first_task + m
                    task_server[task] = server
                    task_resource[task] = index
                    if delta:
                        task_next[task] = task + delta
                    durations[task] = per_size[sizes[m]]
                    priority[task] = (1 - pas) * num_owners + o
                step_of[first_task:first_task + m_total] = step_base[o] + p
                kind_of[first_task:first_task + m_total] = pas
                micro_of[first_task:first_task + m_total] = np.arange(m_total)
                owner_of[first_task:first_task + m_total] = o

    start = [0.0] * total
    events: EventQueue[int] = EventQueue()
    push = events.push
    entry: list[FifoServer | MergedServer] = []
    for o, pl in enumerate(pipelines):  # every micro-batch's input is at its owner at time 0
        head = task_server[task_base[o]]
        for m in range(pl.table.num_micro_batches):
            head.arrive(task_base[o] + m, 0.0)
        entry.append(head)
    for head in entry:
        if not head.busy:
            task = head.take()
            if task >= 0:
                head.busy = True
                push(durations[task], priority[task], task)
    done = 0
    for t, task in events.drain():
        done += 1
        server = task_server[task]
        server.busy = False
        if isinstance(server, MergedServer):
            server.release(t)
        nxt = task_next[task]
        if nxt >= 0:
            target = task_server[nxt]
            target.arrive(nxt, t)
            if not target.busy:
                new = target.take()
                if new >= 0:
                    target.busy = True
                    start[new] = t
                    push(t + durations[new], priority[new], new)
        if not server.busy:
            new = server.take()
            if new >= 0:
                server.busy = True
                start[new] = t
                push(t + durations[new], priority[new], new)
    assert done == total, f"simulation stopped after {done} of {total} tasks"

    t0 = np.asarray(start, dtype=float)
    t1 = t0 + np.asarray(durations, dtype=float)
    rank = np.lexsort((task_resource, t1, t0))
    labels = tuple(pl.label for pl in pipelines) if num_owners > 1 else ()
    return Trace(resources=tuple(r.name for r in names), typed_resources=tuple(names),
                 steps=tuple(s.name for pl in pipelines for s in pl.steps),
                 step_stages=tuple(s.stage for pl in pipelines for s in pl.steps),
                 resource=task_resource[rank],
                 step=step_of[rank],
                 kind=kind_of[rank],
                 micro_batch=micro_of[rank],
                 start=t0[rank],
                 end=t1[rank],
                 owner=owner_of[rank] if num_owners > 1 else None,
                 owner_labels=labels)
