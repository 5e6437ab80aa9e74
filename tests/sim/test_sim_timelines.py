"""Whole timelines, hand-computed, for tiny pipelines (as SimPy's tests assert literals).

Steps are built directly with constant durations (``Affine(0, d)``), so the numbers below can
be checked with a pencil. Each literal lists, per resource in order, ``(task, start, end)``.
"""

from __future__ import annotations

import random

import pytest

from pipesl.cost import Affine, Resource
from pipesl.exceptions import PlanError
from pipesl.schedules import GPipe, OneFOneB, ScheduleTable
from pipesl.sim import Step, Trace, run_pipeline


def const(d: float) -> Affine:
    return Affine(0.0, d)


def node(n: str) -> Resource:
    return Resource("node", n)


def link(u: str, v: str, full_duplex: bool = False) -> Resource:
    return Resource("link", u, v, full_duplex)


def timeline(trace: Trace) -> dict[str, list[tuple[str, float, float]]]:
    out: dict[str, list[tuple[str, float, float]]] = {r: [] for r in trace.resources}
    for rec in trace.records():
        out[rec.resource].append((f"{rec.kind}{rec.micro_batch}", rec.start_s, rec.end_s))
    return out


def two_stages(link_duplex: str = "half") -> list[Step]:
    """Stage 0 on node a (F 2, B 1), one hop a -> c (0.5 each way), stage 1 on c (F 1, B 1)."""
    fwd_link, bwd_link = ((link("a", "c", True), link("c", "a", True)) if link_duplex == "full"
                          else (link("a", "c"), link("a", "c")))
    return [Step("a[1-1]", const(2.0), const(1.0), node("a"), node("a"), 0),
            Step("a>c (L1)", const(0.5), const(0.5), fwd_link, bwd_link),
            Step("c[2-2]", const(1.0), const(1.0), node("c"), node("c"), 1)]


def test_two_stages_two_micro_batches_gpipe() -> None:
    trace = run_pipeline(two_stages(), GPipe().table(2, 2), [1, 1])
    assert timeline(trace) == {
        "node:a": [("F0", 0.0, 2.0), ("F1", 2.0, 4.0), ("B0", 7.0, 8.0), ("B1", 8.0, 9.0)],
        "link:a-c": [("F0", 2.0, 2.5), ("F1", 4.0, 4.5), ("B0", 6.5, 7.0), ("B1", 7.5, 8.0)],
        "node:c": [("F0", 2.5, 3.5), ("F1", 4.5, 5.5), ("B0", 5.5, 6.5), ("B1", 6.5, 7.5)],
    }
    # Analytic T: trip 3 + 1 + 2 = 6, bottleneck node:a = 3, M = 2 -> 9: GPipe meets it.
    assert trace.makespan_s == 9.0


def test_two_stages_two_micro_batches_1f1b() -> None:
    trace = run_pipeline(two_stages(), OneFOneB().table(2, 2), [1, 1])
    # Stage 1 runs F0 B0 F1 B1: B0 goes back while F1 is still on the link. At t = 4.5 the
    # link's F1 ends as the gradient B0 arrives; the link then serves B0 (its only waiter).
    assert timeline(trace) == {
        "node:a": [("F0", 0.0, 2.0), ("F1", 2.0, 4.0), ("B0", 5.0, 6.0), ("B1", 7.0, 8.0)],
        "link:a-c": [("F0", 2.0, 2.5), ("F1", 4.0, 4.5), ("B0", 4.5, 5.0), ("B1", 6.5, 7.0)],
        "node:c": [("F0", 2.5, 3.5), ("B0", 3.5, 4.5), ("F1", 4.5, 5.5), ("B1", 5.5, 6.5)],
    }
    # One less than the analytic 9: the bottleneck's second forward overlaps the first trip.
    assert trace.makespan_s == 8.0


def test_two_stages_full_duplex_1f1b() -> None:
    trace = run_pipeline(two_stages("full"), OneFOneB().table(2, 2), [1, 1])
    tl = timeline(trace)
    assert tl["link:a>c"] == [("F0", 2.0, 2.5), ("F1", 4.0, 4.5)]
    assert tl["link:c>a"] == [("B0", 4.5, 5.0), ("B1", 6.5, 7.0)]
    assert trace.makespan_s == 8.0


def test_shared_half_duplex_link_gpipe() -> None:
    """Two hops on one half-duplex link L = a-c: a -(L)-> c -(L)-> back (a U-shaped label hop).

    All tasks take 1. Ties at one time go backward first, then in scheduling order.
    """
    steps = [Step("a", const(1), const(1), node("a"), node("a"), 0),
             Step("h1", const(1), const(1), link("a", "c"), link("a", "c")),
             Step("c", const(1), const(1), node("c"), node("c"), 1),
             Step("h2", const(1), const(1), link("a", "c"), link("a", "c"))]
    trace = run_pipeline(steps, GPipe().table(2, 2), [1, 1])
    assert timeline(trace) == {
        "node:a": [("F0", 0, 1), ("F1", 1, 2), ("B0", 8, 9), ("B1", 9, 10)],
        "link:a-c": [("F0", 1, 2), ("F1", 2, 3), ("F0", 3, 4), ("F1", 4, 5), ("B0", 5, 6),
                   ("B1", 6, 7), ("B0", 7, 8), ("B1", 8, 9)],
        "node:c": [("F0", 2, 3), ("F1", 3, 4), ("B0", 6, 7), ("B1", 7, 8)],
    }
    steps_of = [rec.step for rec in trace.records() if rec.resource == "link:a-c"]
    assert steps_of == ["h1", "h1", "h2", "h2", "h2", "h2", "h1", "h1"]
    # Analytic T = trip 8 + (M-1) * load(L) 4 = 12; the simulation needs only 10.
    assert trace.makespan_s == 10


def test_single_micro_batch_is_the_trip() -> None:
    steps = two_stages()
    for table in (GPipe().table(2, 1), OneFOneB().table(2, 1)):
        trace = run_pipeline(steps, table, [1])
        assert trace.makespan_s == 2 + 0.5 + 1 + 1 + 0.5 + 1


def test_micro_batch_sizes_scale_durations() -> None:
    steps = [Step("a", Affine(1.0, 0.5), Affine(2.0, 0.0), node("a"), node("a"), 0)]
    trace = run_pipeline(steps, GPipe().table(1, 2), [3, 1])
    assert timeline(trace) == {"node:a": [("F0", 0.0, 3.5), ("F1", 3.5, 5.0),
                                          ("B0", 5.0, 11.0), ("B1", 11.0, 13.0)]}


@pytest.mark.parametrize("seed", range(20))
def test_forward_only_flow_shop(seed: int) -> None:
    """Identical jobs through P distinct machines in a line: sum d + (M - 1) max d."""
    r = random.Random(seed)
    k_total = r.randint(1, 5)
    steps = []
    for k in range(k_total):
        steps.append(Step(f"s{k}", const(r.uniform(0.1, 3)), const(9.0), node(str(k)),
                          node(str(k)), k))
        if k < k_total - 1:
            steps.append(Step(f"h{k}", const(r.uniform(0.1, 3)), const(9.0),
                              link(str(k), str(k + 1)), link(str(k), str(k + 1))))
    m_total = r.randint(1, 12)
    schedule = r.choice([GPipe(), OneFOneB()])
    trace = run_pipeline(steps, schedule.table(k_total, m_total), [1] * m_total,
                         forward_only=True)
    durations = [s.forward(1) for s in steps]
    assert len(trace) == len(steps) * m_total
    assert set(trace.kind.tolist()) == {0}
    assert trace.makespan_s == pytest.approx(sum(durations) + (m_total - 1) * max(durations),
                                             rel=1e-12)


def test_bad_pipelines_are_refused() -> None:
    table = GPipe().table(2, 2)
    with pytest.raises(PlanError, match="no steps"):
        run_pipeline([], table, [1, 1])
    with pytest.raises(PlanError, match="micro-batch sizes"):
        run_pipeline(two_stages(), table, [1])
    with pytest.raises(PlanError, match="do not match"):
        run_pipeline(two_stages()[:1], table, [1, 1])
    shared = [*two_stages()[:2], Step("c", const(1), const(1), node("a"), node("a"), 1)]
    with pytest.raises(PlanError, match="a node runs one stage"):
        run_pipeline(shared, table, [1, 1])
    split = [Step("a", const(1), const(1), node("a"), node("b"), 0)]
    with pytest.raises(PlanError, match="two resources"):
        run_pipeline(split, ScheduleTable.from_text("F0 B0"), [1])
