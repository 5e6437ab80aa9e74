"""The built-in pipeline schedules, GPipe, 1F1B and 1F1B-net, and the registry that names them.

Each schedule is a small stateless class whose :meth:`~PipelineSchedule.stage_actions` gives
one compute stage's order; :meth:`~PipelineSchedule.table` assembles and validates all stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import ClassVar

from pipesl.exceptions import ProblemError
from pipesl.schedules.actions import Action, ScheduleTable

__all__ = [
    "SCHEDULES",
    "GPipe",
    "OneFOneB",
    "OneFOneBNet",
    "PipelineSchedule",
    "get_schedule",
    "schedule_names",
]


@lru_cache(maxsize=16)
def _actions(num_micro_batches: int) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
    """The forward and backward actions of micro-batches 0..M-1 (shared, immutable)."""
    m = range(num_micro_batches)
    return tuple(Action("F", i) for i in m), tuple(Action("B", i) for i in m)


class PipelineSchedule(ABC):
    """A rule that orders each compute stage's forward and backward actions."""

    name: ClassVar[str]
    """Registry name (``gpipe``, ``1f1b``)."""

    @abstractmethod
    def stage_actions(self, stage: int, num_stages: int,
                      num_micro_batches: int) -> tuple[Action, ...]:
        """Stage ``stage`` (0-based, of K = ``num_stages``)'s actions in execution order."""

    def table(self, num_stages: int, num_micro_batches: int) -> ScheduleTable:
        """Every stage's order for K stages and M micro-batches, validated.

        Raises
        ------
        ProblemError
            When K or M is below 1.
        """
        if num_stages < 1:
            raise ProblemError("num_stages", "must be at least 1", num_stages)
        if num_micro_batches < 1:
            raise ProblemError("num_micro_batches", "must be at least 1", num_micro_batches)
        orders = tuple(self.stage_actions(k, num_stages, num_micro_batches)
                       for k in range(num_stages))
        return ScheduleTable(self.name, num_micro_batches, orders).validate()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GPipe(PipelineSchedule):
    """All forwards, then all backwards (a flush): ``F0 F1 ... F(M-1) B0 B1 ... B(M-1)``.

    Every stage keeps the activations of the whole mini-batch until its backward passes
    (SPEC memory rule: W * b = B).

    Examples
    --------
    >>> print(GPipe().table(2, 3))
    F0 F1 F2 B0 B1 B2
    F0 F1 F2 B0 B1 B2
    """

    name = "gpipe"

    def stage_actions(self, stage: int, num_stages: int,
                      num_micro_batches: int) -> tuple[Action, ...]:
        fwd, bwd = _actions(num_micro_batches)
        return fwd + bwd


class OneFOneB(PipelineSchedule):
    """One-forward-one-backward with a flush (PipeDream-flush / Megatron 1F1B).

    Stage k (0-based, of K) runs ``w = min(K - k, M)`` warm-up forwards, then alternates one
    backward and one forward, then drains the remaining backwards. At most w micro-batches
    are in flight on stage k (SPEC memory rule: W = min(M, K - k + 1) with 1-based k).

    Examples
    --------
    >>> print(OneFOneB().table(3, 4))
    F0 F1 F2 B0 F3 B1 B2 B3
    F0 F1 B0 F2 B1 F3 B2 B3
    F0 B0 F1 B1 F2 B2 F3 B3
    """

    name = "1f1b"

    def stage_actions(self, stage: int, num_stages: int,
                      num_micro_batches: int) -> tuple[Action, ...]:
        m_total = num_micro_batches
        fwd, bwd = _actions(m_total)
        warmup = min(num_stages - stage, m_total)
        steady = [a for i in range(m_total - warmup) for a in (bwd[i], fwd[warmup + i])]
        return (*fwd[:warmup], *steady, *bwd[m_total - warmup:])


class OneFOneBNet(PipelineSchedule):
    """1F1B whose warm-up depth per stage covers the round trip, hops included.

    Plain 1F1B keeps ``K - k`` micro-batches in flight on stage k (0-based), which counts
    compute stages only: on a multi-hop route the first stage then idles while its oldest
    micro-batch travels. This schedule takes each stage's warm-up depth from ``warmups``
    (``pipesl.cost.net_warmups`` derives them from the plan: enough micro-batches to cover the
    round trip at the bottleneck's rate, capped by the node's memory, non-increasing along the
    pipeline), then alternates one backward and one forward exactly like 1F1B. At most
    ``warmups[k]`` micro-batches are in flight on stage k (its memory rule). Without
    ``warmups`` it is 1F1B. Build it for a plan with :func:`pipesl.schedules.plan_table`.

    Examples
    --------
    >>> print(OneFOneBNet((3, 1)).table(2, 4))
    F0 F1 F2 B0 F3 B1 B2 B3
    F0 B0 F1 B1 F2 B2 F3 B3
    """

    name = "1f1b-net"

    def __init__(self, warmups: tuple[int, ...] | None = None):
        self.warmups = None if warmups is None else tuple(int(w) for w in warmups)

    def stage_actions(self, stage: int, num_stages: int,
                      num_micro_batches: int) -> tuple[Action, ...]:
        m_total = num_micro_batches
        fwd, bwd = _actions(m_total)
        depth = num_stages - stage if self.warmups is None else self.warmups[stage]
        warmup = max(1, min(depth, m_total))
        steady = [a for i in range(m_total - warmup) for a in (bwd[i], fwd[warmup + i])]
        return (*fwd[:warmup], *steady, *bwd[m_total - warmup:])

    def table(self, num_stages: int, num_micro_batches: int) -> ScheduleTable:
        if self.warmups is not None and len(self.warmups) != num_stages:
            raise ProblemError("schedule 1f1b-net", f"has {len(self.warmups)} warm-up depths "
                               f"for {num_stages} stages")
        return super().table(num_stages, num_micro_batches)

    def __repr__(self) -> str:
        return f"OneFOneBNet({self.warmups!r})" if self.warmups is not None else "OneFOneBNet()"


SCHEDULES: dict[str, type[PipelineSchedule]] = {GPipe.name: GPipe, OneFOneB.name: OneFOneB,
                                                OneFOneBNet.name: OneFOneBNet}
"""Registry: schedule name -> class."""


def schedule_names() -> tuple[str, ...]:
    """The valid schedule names, in registry order."""
    return tuple(SCHEDULES)


def get_schedule(name: str | PipelineSchedule) -> PipelineSchedule:
    """The schedule called ``name`` (case-insensitive); a schedule object passes through.

    Raises
    ------
    ProblemError
        When ``name`` is unknown; the message lists the valid names.

    Examples
    --------
    >>> get_schedule("1F1B")
    OneFOneB()
    """
    if isinstance(name, PipelineSchedule):
        return name
    cls = SCHEDULES.get(str(name).strip().lower())
    if cls is None:
        raise ProblemError("schedule", f"is not a known schedule; valid names: "
                           f"{', '.join(SCHEDULES)}", name)
    return cls()
