"""The simulator's trace: every task with its resource, pass, micro-batch, step and times.

The trace is stored column-wise (numpy arrays, one row per task, sorted by start time) so that
recording costs no Python object per task; :meth:`Trace.records` materialises
:class:`TaskRecord` objects on demand, and :meth:`Trace.to_chrome` renders the Chrome trace
event format that ``chrome://tracing`` and https://ui.perfetto.dev open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipesl.cost.model import Resource

__all__ = ["TaskRecord", "Trace"]

FORWARD, BACKWARD = 0, 1
"""Codes of :attr:`Trace.kind`."""


@dataclass(frozen=True)
class TaskRecord:
    """One task of the simulation: a forward or backward pass of a micro-batch on a step."""

    resource: str
    """The resource that served it (``node:x``, ``link:u-v``, ``link:u>v``)."""
    kind: Literal["F", "B"]
    """``"F"`` forward (activation), ``"B"`` backward (gradient)."""
    micro_batch: int
    """0-based micro-batch index."""
    step: str
    """The pipeline step: a compute stage (``dev0[1-4]``) or a hop (``dev0>r1 (L4)``)."""
    step_index: int
    """0-based position of the step in pipeline order."""
    stage: int | None
    """0-based compute stage index, or None for a hop."""
    start_s: float
    end_s: float
    owner: int = 0
    """0-based data owner whose micro-batch it is (0 with one owner)."""

    @property
    def duration_s(self) -> float:
        """``end_s - start_s``."""
        return self.end_s - self.start_s


@dataclass(frozen=True, eq=False, repr=False)
class Trace:
    """Every task of one simulated iteration, column-wise, sorted by (start, end, resource)."""

    resources: tuple[str, ...]
    """Resource names; :attr:`resource` indexes into it. In order of first use."""
    steps: tuple[str, ...]
    """Step names in pipeline order; :attr:`step` indexes into it."""
    step_stages: tuple[int | None, ...]
    """For each step, its compute stage index (None for a hop)."""
    resource: np.ndarray
    """Per task: index into :attr:`resources`."""
    step: np.ndarray
    """Per task: index into :attr:`steps`."""
    kind: np.ndarray
    """Per task: 0 forward, 1 backward."""
    micro_batch: np.ndarray
    """Per task: 0-based micro-batch."""
    start: np.ndarray
    """Per task: start time (s)."""
    end: np.ndarray
    """Per task: end time (s)."""
    owner: np.ndarray | None = None
    """Per task: 0-based data owner (None: a single owner, every task is owner 0's)."""
    owner_labels: tuple[str, ...] = ()
    """Names of the owners :attr:`owner` indexes (empty with one owner)."""
    typed_resources: tuple[Resource, ...] = ()
    """The typed :class:`~pipesl.cost.Resource` of each of :attr:`resources`, in the same
    order (node ids may contain ``-`` or ``>``, so a name is not parsed back); empty when the
    trace's producer only knows names."""

    def owners(self) -> np.ndarray:
        """Per task: its owner index (zeros for a single-owner trace)."""
        if self.owner is None:
            return np.zeros(len(self), dtype=np.int64)
        return self.owner

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def __repr__(self) -> str:
        return (f"Trace({len(self)} tasks on {len(self.resources)} resources, "
                f"makespan_s={self.makespan_s!r})")

    @property
    def makespan_s(self) -> float:
        """The time the last task ends (0 for an empty trace)."""
        return float(self.end.max()) if len(self) else 0.0

    def busy_s(self) -> dict[str, float]:
        """Seconds each resource spent serving tasks."""
        busy = np.bincount(self.resource, weights=self.end - self.start,
                           minlength=len(self.resources))
        return {r: float(busy[i]) for i, r in enumerate(self.resources)}

    def records(self) -> list[TaskRecord]:
        """The tasks as :class:`TaskRecord` objects, in trace order."""
        kinds: tuple[Literal["F", "B"], Literal["F", "B"]] = ("F", "B")
        return [TaskRecord(self.resources[r], kinds[k], m, self.steps[s], s,
                           self.step_stages[s], t0, t1, o)
                for r, k, m, s, t0, t1, o in zip(self.resource.tolist(), self.kind.tolist(),
                                                  self.micro_batch.tolist(), self.step.tolist(),
                                                  self.start.tolist(), self.end.tolist(),
                                                  self.owners().tolist(), strict=True)]

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(self.records())

    def to_chrome(self, name: str = "pipesl simulation") -> dict[str, Any]:
        """The trace in Chrome trace event format (JSON object form).

        One complete event (``"ph": "X"``, times in microseconds) per task, on one thread per
        resource, plus metadata events (``"ph": "M"``) naming the process and the threads.
        """
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": name}}]
        for i, r in enumerate(self.resources):
            events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": i + 1,
                           "args": {"name": r}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": i + 1,
                           "args": {"sort_index": i}})
        cats = ("forward", "backward")
        letters = ("F", "B")
        labels = self.owner_labels
        for r, k, m, s, t0, t1, o in zip(self.resource.tolist(), self.kind.tolist(),
                                          self.micro_batch.tolist(), self.step.tolist(),
                                          self.start.tolist(), self.end.tolist(),
                                          self.owners().tolist(), strict=True):
            args: dict[str, Any] = {"micro_batch": m, "step": self.steps[s]}
            name = f"{letters[k]}{m}"
            if labels:
                args["owner"] = labels[o]
                name = f"{labels[o]} {name}"
            events.append({"name": name, "cat": cats[k], "ph": "X", "pid": 1,
                           "tid": r + 1, "ts": t0 * 1e6, "dur": (t1 - t0) * 1e6,
                           "args": args})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def dump_chrome(self, path: str | Path, name: str = "pipesl simulation") -> None:
        """Write :meth:`to_chrome` as a JSON file."""
        Path(path).write_text(json.dumps(self.to_chrome(name)) + "\n")
