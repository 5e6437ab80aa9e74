"""The pipeline on the event engine: steps, tasks and their dependencies (SPEC section 5).

A pipeline is a sequence of :class:`~pipesl.cost.PipelineStep` objects (``Step`` here) in
pipeline order — compute stages and link hops, each pass on a typed resource. Micro-batch
m's forward visits the steps in order (store-and-forward: a hop starts once the previous
step has finished with the whole micro-batch), its backward visits them in reverse, starting
once the last step's forward of m has finished (the loss takes no time).

Each task (a step's forward or backward of one micro-batch) occupies one resource for its
whole duration. A compute resource serves its stage's tasks in the order of the
:class:`~pipesl.schedules.ScheduleTable`; a link resource serves tasks as they arrive (FIFO).
Completion events at the same time are handled backward-first, then in the order they were
scheduled, so arrivals that tie at a link are queued gradients first.

Task ids are integers ``(2 * step + pass) * M + m`` (pass 0 forward, 1 backward), so the
hot loop touches only lists and ints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipesl.cost import PipelineStep, Resource
from pipesl.exceptions import PlanError
from pipesl.schedules import ScheduleTable
from pipesl.sim.engine import EventQueue, FifoServer, OrderedServer
from pipesl.sim.trace import Trace

__all__ = ["Step", "run_pipeline"]


Step = PipelineStep
"""The simulator's name for :class:`pipesl.cost.PipelineStep` (the one step type)."""


def _check(steps: Sequence[Step], table: ScheduleTable, sizes: Sequence[int]) -> None:
    if not steps:
        raise PlanError("pipeline: has no steps")
    if len(sizes) != table.num_micro_batches:
        raise PlanError(f"pipeline: {len(sizes)} micro-batch sizes for a schedule of "
                        f"{table.num_micro_batches} micro-batches")
    stages = [s.stage for s in steps if s.stage is not None]
    if stages != list(range(table.num_stages)):
        raise PlanError(f"pipeline: compute stages {stages} do not match the schedule's "
                        f"{table.num_stages} stages 0..{table.num_stages - 1} in order")
    users: dict[Resource, set[int]] = {}
    for p, s in enumerate(steps):
        for r in (s.forward_resource, s.backward_resource):
            users.setdefault(r, set()).add(p)
    for s in steps:
        if s.stage is None:
            continue
        if s.forward_resource != s.backward_resource:
            raise PlanError(f"pipeline: compute step {s.name!r} uses two resources")
        if len(users[s.forward_resource]) > 1:
            raise PlanError(f"pipeline: resource {s.forward_resource.name!r} of compute step "
                            f"{s.name!r} is used by other steps too; a node runs one stage")


def run_pipeline(steps: Sequence[Step], table: ScheduleTable, micro_batch_sizes: Sequence[int],
                 forward_only: bool = False) -> Trace:
    """Simulate one iteration of the pipeline and return its trace.

    Parameters
    ----------
    steps : sequence of PipelineStep
        The pipeline in order; the compute steps carry stages 0..K-1 in order. The trace
        names each resource by its :attr:`~pipesl.cost.Resource.name`.
    table : ScheduleTable
        Each compute stage's action order (K stages, M micro-batches), already validated.
    micro_batch_sizes : sequence of int
        The size of each of the M micro-batches (task durations are ``affine(size)``).
    forward_only : bool
        Run only the forward passes (the schedule's F actions in their order).

    Returns
    -------
    Trace
        Every task with its start and end; its makespan is the iteration time.

    Raises
    ------
    PlanError
        When the steps and the table do not fit together.

    Notes
    -----
    Every task costs one heap push and one pop; the heap holds at most one event per
    resource, so a run is O(T log R) for T = 2 P M tasks over P steps and R resources.
    """
    _check(steps, table, micro_batch_sizes)
    num_steps, m_total = len(steps), table.num_micro_batches
    if forward_only:
        table = table.forward_only()

    names: dict[Resource, int] = {}
    for s in steps:
        for r in (s.forward_resource, s.backward_resource):
            names.setdefault(r, len(names))
    compute = {s.forward_resource: (p, s.stage) for p, s in enumerate(steps)
               if s.stage is not None}
    servers: list[FifoServer | OrderedServer] = []
    for r in names:
        if r not in compute:
            servers.append(FifoServer())
            continue
        p, k = compute[r]
        servers.append(OrderedServer([(2 * p + (kind == "B")) * m_total + m
                                      for kind, m in table.orders[k]]))

    # Per slot (2 * step + pass): its server, resource index and successor offset (0: none).
    slot_server: list[FifoServer | OrderedServer] = []
    slot_resource: list[int] = []
    successor: list[int] = []
    durations: list[float] = []
    for p, s in enumerate(steps):
        for pas, (affine, r) in enumerate(((s.forward, s.forward_resource),
                                           (s.backward, s.backward_resource))):
            slot_server.append(servers[names[r]])
            slot_resource.append(names[r])
            if pas == 0:
                nxt = 2 * m_total if p < num_steps - 1 else (0 if forward_only else m_total)
            else:
                nxt = -2 * m_total if p > 0 else 0
            successor.append(nxt)
            per_size = {b: affine(b) for b in set(micro_batch_sizes)}
            durations.extend(map(per_size.__getitem__, micro_batch_sizes))

    start = [0.0] * len(durations)
    done = _event_loop(m_total, slot_server, successor, durations, start)
    expected = num_steps * m_total * (1 if forward_only else 2)
    assert done == expected, f"simulation stopped after {done} of {expected} tasks"
    return _trace(steps, tuple(names), slot_resource, m_total, durations, start, forward_only)


def _event_loop(m_total: int, slot_server: Sequence[FifoServer | OrderedServer],
                successor: Sequence[int], durations: Sequence[float],
                start: list[float]) -> int:
    """Run every task to completion; fill ``start``; return the number of tasks done."""
    events: EventQueue[int] = EventQueue()
    push = events.push
    first = slot_server[0]
    for m in range(m_total):  # every micro-batch's input is at the source at time 0
        first.arrive(m)
    task = first.take()
    if task >= 0:
        first.busy = True
        push(durations[task], 1, task)
    done = 0
    for t, task in events.drain():
        done += 1
        slot = task // m_total
        server = slot_server[slot]
        server.busy = False
        delta = successor[slot]
        if delta:
            nxt = task + delta
            target = slot_server[nxt // m_total]
            target.arrive(nxt)
            if not target.busy:
                new = target.take()
                if new >= 0:
                    target.busy = True
                    start[new] = t
                    push(t + durations[new], 1 - ((new // m_total) & 1), new)
        if not server.busy:
            new = server.take()
            if new >= 0:
                server.busy = True
                start[new] = t
                push(t + durations[new], 1 - ((new // m_total) & 1), new)
    return done


def _trace(steps: Sequence[Step], resources: tuple[Resource, ...], slot_resource: Sequence[int],
           m_total: int, durations: Sequence[float], start: Sequence[float],
           forward_only: bool) -> Trace:
    num_steps = len(steps)
    tasks = np.arange(2 * num_steps * m_total).reshape(num_steps, 2, m_total)
    ids = (tasks[:, 0, :] if forward_only else tasks).ravel()
    slot = ids // m_total
    t0 = np.asarray(start, dtype=float)[ids]
    t1 = t0 + np.asarray(durations, dtype=float)[ids]
    res = np.asarray(slot_resource, dtype=np.int64)[slot]
    order = np.lexsort((res, t1, t0))
    return Trace(resources=tuple(r.name for r in resources), typed_resources=resources,
                 steps=tuple(s.name for s in steps),
                 step_stages=tuple(s.stage for s in steps),
                 resource=res[order],
                 step=(slot // 2)[order],
                 kind=(slot % 2).astype(np.int8)[order],
                 micro_batch=(ids % m_total)[order],
                 start=t0[order],
                 end=t1[order])
