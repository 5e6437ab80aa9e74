"""A tiny discrete-event engine: an event heap and two kinds of non-preemptive servers.

The heap orders events by ``(time, priority, sequence)`` as SimPy's core does: equal times go
by priority, then by insertion order, so every run is deterministic. Servers serve one task
at a time and never preempt it:

* :class:`FifoServer` — a link (or one direction of a full-duplex link): tasks are served in
  arrival order;
* :class:`OrderedServer` — a compute node: tasks are served in a fixed order (the schedule's),
  each only once it has arrived (its input is there);
* :class:`MergedServer` — a compute node serving stages of several pipelines (data owners):
  one fixed order per pipeline; when free it starts, among the heads of those orders that
  are ready (arrived, and the order's previous task finished), the one ready longest (ties:
  backward before forward, then the lower pipeline index). With one pipeline it is an
  :class:`OrderedServer`.

Tasks are plain integers; what they mean is the caller's business (see
:mod:`pipesl.sim.pipeline`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from heapq import heappop, heappush
from itertools import count
from typing import Generic, TypeVar

__all__ = ["EventQueue", "FifoServer", "MergedServer", "OrderedServer"]

T = TypeVar("T")


class EventQueue(Generic[T]):
    """A heap of ``(time, priority, sequence, item)``; :meth:`pop` returns the earliest.

    Examples
    --------
    >>> q: EventQueue[str] = EventQueue()
    >>> q.push(2.0, 0, "late"); q.push(1.0, 1, "b"); q.push(1.0, 0, "a"); q.push(1.0, 0, "a2")
    >>> [q.pop()[1] for _ in range(len(q))]
    ['a', 'a2', 'b', 'late']
    """

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, T]] = []
        self._seq = count()
        self.now = 0.0
        """Time of the last event popped."""

    def push(self, time: float, priority: int, item: T) -> None:
        """Schedule ``item`` at ``time``; lower ``priority`` first among equal times."""
        heappush(self._heap, (time, priority, next(self._seq), item))

    def pop(self) -> tuple[float, T]:
        """Remove the earliest event and return ``(time, item)``; advances :attr:`now`."""
        time, _, _, item = heappop(self._heap)
        self.now = time
        return time, item

    def drain(self) -> Iterator[tuple[float, T]]:
        """Pop events in order until none is left, including events pushed meanwhile."""
        heap = self._heap
        while heap:
            time, _, _, item = heappop(heap)
            self.now = time
            yield time, item

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)


class FifoServer:
    """A non-preemptive server taking tasks in arrival order (a link)."""

    __slots__ = ("busy", "queue")

    def __init__(self) -> None:
        self.busy = False
        self.queue: deque[int] = deque()

    def arrive(self, task: int, time: float = 0.0) -> None:
        """``task``'s input is here (at ``time``, unused: arrival order is the order); it
        joins the queue."""
        self.queue.append(task)

    def take(self) -> int:
        """The next task to serve (removed from the queue), or -1 when none is waiting."""
        return self.queue.popleft() if self.queue else -1

    def pending(self) -> int:
        """Tasks waiting."""
        return len(self.queue)


class OrderedServer:
    """A non-preemptive server taking tasks in a fixed order (a compute node).

    The next task in ``order`` is served once it has arrived; tasks that arrive early wait.
    """

    __slots__ = ("arrived", "busy", "next", "order")

    def __init__(self, order: Sequence[int]) -> None:
        self.busy = False
        self.order = order
        self.next = 0
        self.arrived: set[int] = set()

    def arrive(self, task: int) -> None:
        """``task``'s input is here."""
        self.arrived.add(task)

    def take(self) -> int:
        """The next task of the order when it has arrived, else -1."""
        i = self.next
        if i < len(self.order):
            task = self.order[i]
            if task in self.arrived:
                self.next = i + 1
                return task
        return -1

    def pending(self) -> int:
        """Tasks of the order not yet served."""
        return len(self.order) - self.next


class MergedServer:
    """A non-preemptive server taking tasks from several fixed orders (a shared compute node).

    Parameters
    ----------
    orders : sequence of sequence of int
        One order per queue (a pipeline's stage on this node), in pipeline (owner) order.
    backward : sequence of sequence of bool
        Per queue and position, whether the task is a backward pass.

    A queue's next task is *ready* once it has arrived and the queue's previous task has
    finished (:meth:`release`); ready since the later of the two. When asked for a task the
    server returns the head that has been ready longest, ties broken backward first, then the
    lower queue. So an owner whose task just ended does not keep the node while another
    owner's ready work waits.
    """

    __slots__ = ("arrived", "backward", "busy", "current", "heads", "orders", "since")

    def __init__(self, orders: Sequence[Sequence[int]],
                 backward: Sequence[Sequence[bool]]) -> None:
        self.busy = False
        self.orders = [list(o) for o in orders]
        self.backward = [list(b) for b in backward]
        self.heads = [0] * len(self.orders)
        self.since = [0.0] * len(self.orders)
        self.current = -1
        self.arrived: dict[int, float] = {}

    def arrive(self, task: int, time: float = 0.0) -> None:
        """``task``'s input is here since ``time``."""
        self.arrived[task] = time

    def release(self, time: float) -> None:
        """The task in service ended at ``time``: its queue's next task may start from then."""
        if self.current >= 0:
            self.since[self.current] = time
            self.current = -1

    def take(self) -> int:
        """The chosen ready head (removed from its queue), or -1 when no head has arrived."""
        best = -1
        best_key: tuple[float, int, int] | None = None
        arrived = self.arrived
        for q, order in enumerate(self.orders):
            i = self.heads[q]
            if i >= len(order):
                continue
            t = arrived.get(order[i])
            if t is None:
                continue
            key = (max(t, self.since[q]), 0 if self.backward[q][i] else 1, q)
            if best_key is None or key < best_key:
                best, best_key = q, key
        if best < 0:
            return -1
        task = self.orders[best][self.heads[best]]
        self.heads[best] += 1
        self.current = best
        return task

    def pending(self) -> int:
        """Tasks of the orders not yet served."""
        return sum(len(o) - h for o, h in zip(self.orders, self.heads, strict=True))
