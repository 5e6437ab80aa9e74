"""What a worker records while it runs: typed, frozen timing records (no torch).

Every rank appends records to its :class:`Recorder` as it executes; once per iteration the
worker takes that iteration's records (:meth:`Recorder.take`) and reports them in one message
(:class:`IterationRecords`) — to the launcher on local runs, to rank 0 under torchrun — where
:func:`pipesl.runtime.report.assemble_iteration` merges every rank's into the iteration's
report. Times are absolute ``time.perf_counter()`` values of the recording process; a record's
:meth:`shifted` copy counts them from an origin.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "Deliver",
    "Hand",
    "IterationRecords",
    "IterationTimes",
    "LinkBusy",
    "Loss",
    "Pass",
    "Record",
    "Recorder",
    "shifted",
]


@dataclass(frozen=True)
class Pass:
    """A compute stage's pass (or the loss node's loss, ``stage`` = K, ``kind`` L)."""

    iteration: int
    stage: int
    kind: str
    micro_batch: int
    start: float
    """Start of the pass on the device's timeline (emulated: its window's start)."""
    end: float
    """End of the pass (emulated: its window's end)."""
    real_s: float
    """Seconds the real computation took."""
    began: float
    """When the real computation began."""
    owner: int = 0
    """The data owner (0 with one owner)."""

    def shifted(self, t0: float) -> Pass:
        return replace(self, start=self.start - t0, end=self.end - t0, began=self.began - t0)


@dataclass(frozen=True)
class Hand:
    """The sending node handed a transfer to its link."""

    iteration: int
    step: int
    kind: str
    micro_batch: int
    t: float
    owner: int = 0
    """The data owner (0 with one owner)."""

    def shifted(self, t0: float) -> Hand:
        return replace(self, t=self.t - t0)


@dataclass(frozen=True)
class LinkBusy:
    """An emulated link served a transfer over ``[start, end]``."""

    iteration: int
    step: int
    kind: str
    micro_batch: int
    start: float
    end: float
    owner: int = 0
    """The data owner (0 with one owner)."""

    def shifted(self, t0: float) -> LinkBusy:
        return replace(self, start=self.start - t0, end=self.end - t0)


@dataclass(frozen=True)
class Deliver:
    """The receiving node had a transfer: at ``t`` (emulated time with the virtual clock),
    really at ``real``."""

    iteration: int
    step: int
    kind: str
    micro_batch: int
    t: float
    real: float
    owner: int = 0
    """The data owner (0 with one owner)."""

    def shifted(self, t0: float) -> Deliver:
        return replace(self, t=self.t - t0, real=self.real - t0)


@dataclass(frozen=True)
class Loss:
    """The (scaled) loss of one micro-batch."""

    iteration: int
    micro_batch: int
    value: float
    owner: int = 0
    """The data owner (0 with one owner)."""

    def shifted(self, t0: float) -> Loss:
        return self


@dataclass(frozen=True)
class IterationTimes:
    """The source's clock: the iteration's start, its last backward's end (``done``) and the
    end of its optimiser step (``stepped``)."""

    iteration: int
    start: float
    done: float
    stepped: float
    owner: int = 0
    """The data owner whose source this is (its turn's times in sequential mode)."""

    def shifted(self, t0: float) -> IterationTimes:
        return replace(self, start=self.start - t0, done=self.done - t0,
                       stepped=self.stepped - t0)


Record = Pass | Hand | LinkBusy | Deliver | Loss | IterationTimes


@dataclass(frozen=True)
class IterationRecords:
    """One rank's report of one iteration: its records, its start and the checkpoint files it
    wrote after the iteration."""

    rank: int
    iteration: int
    start: float
    """This rank's ``perf_counter`` when it started the iteration."""
    records: tuple[Record, ...]
    files: tuple[Any, ...] = field(default=())
    """:class:`~pipesl.runtime.checkpoint.UnitFile` of the units this rank saved."""


class Recorder:
    """A rank's records, appended by any of its threads, taken once per iteration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []

    def add(self, record: Record) -> None:
        """Append ``record`` (thread-safe)."""
        with self._lock:
            self._records.append(record)

    def take(self, iteration: int) -> tuple[Record, ...]:
        """Remove and return the records of ``iteration``."""
        with self._lock:
            mine = tuple(r for r in self._records if r.iteration == iteration)
            self._records = [r for r in self._records if r.iteration != iteration]
        return mine


def shifted(records: Sequence[Record], t0: float) -> list[Record]:
    """``records`` with their times counted from ``t0``."""
    return [r.shifted(t0) for r in records]
