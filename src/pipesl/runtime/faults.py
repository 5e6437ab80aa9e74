"""Fault injection for tests: make one worker die, hang or raise at a chosen point of a run.

Test mode only. A fault is one line, given as :attr:`RunConfig.liveness.fault
<pipesl.runtime.config.LivenessConfig.fault>`, ``pipesl train --inject-fault`` or the environment
variable ``PIPESL_FAULT`` (read by every rank, so it also works under ``torchrun``)::

    kill:node=a,iteration=2,phase=F            SIGKILL to itself at the start of the pass
    hang:node=a,iteration=2,phase=B,micro_batch=1   sleep forever inside the pass
    raise:node=src,iteration=0,phase=step      raise InjectedFault before the optimiser step

Fields: ``node`` (required, a node of the plan); ``iteration`` (0-based, default 0);
``phase`` (default ``F``): ``F`` / ``B`` (a compute stage's forward / backward pass), ``L``
(the U-shaped loss node's loss), ``step`` (before the optimiser step), ``checkpoint`` (after
the stage wrote its checkpoint files, before it reports them: a crash in the middle of a
checkpoint), ``relay`` (a relay forwarding a message, in its transport thread);
``micro_batch`` (default: the first pass of that phase in the iteration). The fault fires
once. Just before it acts the worker logs ``injecting fault ... (wall clock T)`` with
``T = time.time()``, from which tests and ``benchmarks/faults.py`` time the teardown.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipesl.exceptions import ProblemError

__all__ = ["FAULT_ENV", "FAULT_KINDS", "FAULT_PHASES", "FaultInjector", "FaultSpec",
           "InjectedFault", "parse_fault"]

logger = logging.getLogger(__name__)

FAULT_ENV = "PIPESL_FAULT"
"""Environment variable read by every rank when the run's config names no fault."""
FAULT_KINDS = ("kill", "hang", "raise")
FAULT_PHASES = ("F", "B", "L", "step", "checkpoint", "relay")
_PHASE_WORDS = {"F": "forward pass", "B": "backward pass", "L": "loss",
                "step": "optimiser step", "checkpoint": "checkpoint", "relay": "relay"}


class InjectedFault(RuntimeError):
    """The exception a ``raise`` fault raises."""


@dataclass(frozen=True)
class FaultSpec:
    """Where and how a worker fails (see the module docstring for the syntax)."""

    kind: str
    """``kill``, ``hang`` or ``raise``."""
    node: str
    iteration: int = 0
    phase: str = "F"
    micro_batch: int | None = None
    """None: the first pass of ``phase`` in the iteration."""

    def matches(self, node: str, iteration: int, phase: str, micro_batch: int | None) -> bool:
        """True at the point where the fault fires."""
        return (node == self.node and iteration == self.iteration and phase == self.phase
                and (self.micro_batch is None or micro_batch == self.micro_batch))

    def describe(self) -> str:
        """``kill at node a, iteration 2, forward pass of micro-batch 0``."""
        where = _PHASE_WORDS[self.phase]
        if self.micro_batch is not None:
            where += f" of micro-batch {self.micro_batch}"
        return f"{self.kind} at node {self.node}, iteration {self.iteration}, {where}"

    def to_text(self) -> str:
        """The one-line form :func:`parse_fault` reads."""
        text = f"{self.kind}:node={self.node},iteration={self.iteration},phase={self.phase}"
        return text if self.micro_batch is None else f"{text},micro_batch={self.micro_batch}"


def parse_fault(text: str) -> FaultSpec:
    """Read ``kind:key=value,...``.

    Raises
    ------
    ProblemError
        Naming ``fault``, the offending part and the rule.

    Examples
    --------
    >>> parse_fault("hang:node=es1,iteration=2,phase=B")
    FaultSpec(kind='hang', node='es1', iteration=2, phase='B', micro_batch=None)
    """
    kind, sep, rest = str(text).strip().partition(":")
    if kind not in FAULT_KINDS or not sep:
        raise ProblemError("fault", f"must look like 'KIND:node=N,iteration=I,phase=P' with "
                           f"KIND one of {', '.join(FAULT_KINDS)}", text)
    fields: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in ("node", "iteration", "phase", "micro_batch") or key in fields:
            raise ProblemError("fault", "fields are node, iteration, phase, micro_batch "
                               "(each once, as key=value)", part)
        fields[key] = value.strip()
    if not fields.get("node"):
        raise ProblemError("fault", "needs node=<a node of the plan>", text)
    phase = fields.get("phase", "F")
    if phase not in FAULT_PHASES:
        raise ProblemError("fault.phase", f"must be one of {', '.join(FAULT_PHASES)}", phase)
    numbers: dict[str, int] = {}
    for key in ("iteration", "micro_batch"):
        if key in fields:
            try:
                numbers[key] = int(fields[key])
            except ValueError:
                raise ProblemError(f"fault.{key}", "must be an integer >= 0",
                                   fields[key]) from None
            if numbers[key] < 0:
                raise ProblemError(f"fault.{key}", "must be an integer >= 0", numbers[key])
    return FaultSpec(kind, fields["node"], numbers.get("iteration", 0), phase,
                     numbers.get("micro_batch"))


class FaultInjector:
    """A worker's end of fault injection: :meth:`check` at every point a fault may fire.

    Parameters
    ----------
    spec : FaultSpec, sequence of FaultSpec, or None
        The faults to play (those of other nodes are ignored); None: :meth:`check` does
        nothing. A scripted node departure (:mod:`pipesl.runtime.conditions`) is one more.
    node : str
        The node this process runs.
    """

    def __init__(self, spec: FaultSpec | Sequence[FaultSpec] | None, node: str) -> None:
        specs = [spec] if isinstance(spec, FaultSpec) else list(spec or ())
        self.specs = [s for s in specs if s.node == node]
        self.spec = self.specs[0] if self.specs else None
        self._fired: set[int] = set()
        self._lock = threading.Lock()

    def check(self, iteration: int, phase: str, micro_batch: int | None = None) -> None:
        """Fire a fault if this is its point (each once).

        Raises
        ------
        InjectedFault
            For a ``raise`` fault.
        """
        for i, spec in enumerate(self.specs):
            if spec.matches(spec.node, iteration, phase, micro_batch):
                with self._lock:
                    if i in self._fired:
                        continue
                    self._fired.add(i)
                _fire(spec)


def _fire(spec: FaultSpec) -> None:
    logger.warning("injecting fault %s (wall clock %.6f)", spec.describe(), time.time())
    for handler in logging.getLogger().handlers:
        handler.flush()
    if spec.kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # pragma: no cover - the signal arrives first
    if spec.kind == "hang":
        while True:  # stop responding, but stay alive: only a monitor can tell
            time.sleep(3600)
    raise InjectedFault(f"injected fault ({spec.describe()})")
