"""The event heap and the two servers, on their own."""

from __future__ import annotations

from pipesl.sim import EventQueue, FifoServer, OrderedServer


def test_heap_orders_by_time_priority_then_insertion() -> None:
    q: EventQueue[str] = EventQueue()
    q.push(1.0, 1, "t1-p1-first")
    q.push(0.5, 9, "t0.5")
    q.push(1.0, 0, "t1-p0")
    q.push(1.0, 1, "t1-p1-second")
    assert len(q) == 4
    out = [q.pop() for _ in range(4)]
    assert out == [(0.5, "t0.5"), (1.0, "t1-p0"), (1.0, "t1-p1-first"), (1.0, "t1-p1-second")]
    assert q.now == 1.0 and not q


def test_drain_includes_events_pushed_meanwhile() -> None:
    q: EventQueue[int] = EventQueue()
    q.push(0.0, 0, 3)
    seen = []
    for t, n in q.drain():
        seen.append((t, n))
        if n:
            q.push(t + 1.0, 0, n - 1)
    assert seen == [(0.0, 3), (1.0, 2), (2.0, 1), (3.0, 0)]


def test_fifo_server_serves_in_arrival_order() -> None:
    s = FifoServer()
    assert s.take() == -1
    for task in (7, 3, 5):
        s.arrive(task)
    assert s.pending() == 3
    assert [s.take(), s.take(), s.take(), s.take()] == [7, 3, 5, -1]


def test_ordered_server_waits_for_the_next_in_order() -> None:
    s = OrderedServer([4, 1, 2])
    s.arrive(1)
    assert s.take() == -1  # 4 has not arrived; 1 must wait its turn
    s.arrive(4)
    assert s.take() == 4
    assert s.take() == 1
    assert s.take() == -1 and s.pending() == 1
    s.arrive(2)
    assert s.take() == 2 and s.pending() == 0
    assert s.take() == -1
