"""Is every worker alive and making progress? Published state and the rules that read it.

Each rank publishes, in a few words of shared memory that the launcher reads (a
:class:`Board`), what it is doing: a progress counter with the time of the last progress
(a pass finished, a message delivered, an iteration completed), and whether its threads are
*busy* (computing a pass, stepping, writing a checkpoint: work that ends by itself) or
*waiting* (for a message, a barrier, a gather: something another process must do), since when
and on what. :class:`Liveness` is the worker's side; :func:`find_hang` is the launcher's rule:

1. a rank that has been busy on one task for longer than the hang timeout is **hung** (it
   stopped responding: a deadlock, an endless loop, a sleep; a pass never takes that long);
2. when every rank is waiting and none has made progress for the hang timeout, the job is
   **stalled** (a message that never comes): the message lists what each one waits for.

A rank that dies is seen by the launcher through its exit code; one that raises reports the
error itself. Without a launcher (``torchrun``), a rank applies rule 1 to itself
(:meth:`Liveness.stuck`) and exits, so that torchrun stops the job.

Pure Python (no torch): the launcher imports it before any worker starts.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipesl.exceptions import RuntimeSetupError

__all__ = ["BUSY", "DONE", "STARTING", "WAITING", "Board", "Liveness", "Status",
           "WorkerFailure", "find_hang"]

STARTING, BUSY, WAITING, DONE = 0.0, 1.0, 2.0, 3.0
_SLOTS = 4  # progress count, time of the last progress, state, since
_WHAT = 160  # bytes of the description


class WorkerFailure(RuntimeSetupError):
    """A worker died, raised or hung, and the launcher stopped the whole job.

    The message is one line naming the node, its rank and roles, and what happened.
    """

    def __init__(self, message: str, *, node: str | None = None, rank: int | None = None,
                 cause: str = "", pids: Sequence[int] = (), orphans: Sequence[int] = (),
                 completed_iterations: int = 0, stopped_s: float = 0.0) -> None:
        super().__init__(message)
        self.node = node
        """The node that failed (None when no single worker is to blame)."""
        self.rank = rank
        self.cause = cause
        """``signal``, ``exit``, ``raised``, ``hung``, ``stalled`` or ``startup``."""
        self.pids = tuple(pids)
        """Process ids of every worker the launcher started."""
        self.orphans = tuple(orphans)
        """Those still running after the teardown (should be empty)."""
        self.completed_iterations = completed_iterations
        """Iterations the source reported complete before the failure."""
        self.stopped_s = stopped_s
        """Seconds from detecting the failure to every worker having exited."""


@dataclass(frozen=True)
class Status:
    """What one rank last published."""

    progress: int
    last_progress: float
    """``time.monotonic()`` of the last progress (system-wide on one host)."""
    state: float
    """:data:`STARTING`, :data:`BUSY`, :data:`WAITING` or :data:`DONE`."""
    since: float
    """When the current busy task began (or the wait, when waiting)."""
    what: str


class Board:
    """Every rank's :class:`Status` in shared memory (lock-free: one writer per rank).

    Parameters
    ----------
    context : multiprocessing context
        The ``spawn`` context of the launcher (the arrays go to the workers as arguments).
    world_size : int
    """

    def __init__(self, context: Any, world_size: int) -> None:
        self.world_size = world_size
        self.values = context.RawArray("d", world_size * _SLOTS)
        self.texts = context.RawArray("c", world_size * _WHAT)

    def write(self, rank: int, progress: int, last: float, state: float, since: float,
              what: str) -> None:
        """Publish rank ``rank``'s status."""
        struct.pack_into(f"{_SLOTS}d", self.values, rank * _SLOTS * 8, float(progress), last,
                         state, since)
        raw = what.encode("utf-8", "replace")[:_WHAT - 1]
        struct.pack_into(f"{_WHAT}s", self.texts, rank * _WHAT, raw)  # zero-padded

    def read(self, rank: int) -> Status:
        """Rank ``rank``'s last published status."""
        progress, last, state, since = self.values[rank * _SLOTS:(rank + 1) * _SLOTS]
        raw = bytes(self.texts[rank * _WHAT:(rank + 1) * _WHAT]).split(b"\0", 1)[0]
        return Status(int(progress), last, state, since, raw.decode("utf-8", "replace"))


class Liveness:
    """A worker's published state; thread-safe.

    Each thread that marks itself :meth:`busy` or :meth:`waiting` counts; the process is busy
    when any of them is (since the oldest busy mark), else waiting. The main thread is busy
    by default once :meth:`ready` ("running") — code that is neither marked busy nor waiting
    is work that should end by itself.

    Parameters
    ----------
    board : Board or None
        None: keep the state for :meth:`stuck` only (torchrun).
    rank : int
    """

    def __init__(self, board: Board | None, rank: int) -> None:
        self.board, self.rank = board, rank
        self._lock = threading.Lock()
        self._stacks: dict[int, list[list[Any]]] = {}
        self._progress = 0
        self._last = time.monotonic()
        self._state = STARTING
        self._publish()

    def ready(self) -> None:
        """Startup is over (process group joined, node built): the hang rules apply."""
        now = time.monotonic()
        with self._lock:
            self._stacks[threading.get_ident()] = [[BUSY, now, "running"]]
            self._state, self._last = BUSY, now
            self._publish()

    def done(self) -> None:
        """The run is complete here: nothing more to watch."""
        with self._lock:
            self._state = DONE
            self._stacks.clear()
            self._publish()

    def progress(self) -> None:
        """Something completed (a pass, a delivery, an iteration)."""
        with self._lock:
            self._progress += 1
            self._last = time.monotonic()
            self._publish()

    @contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """Mark the calling thread busy on ``what`` (work that ends by itself)."""
        self._push(BUSY, what)
        try:
            yield
        finally:
            self._pop()

    @contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """Mark the calling thread waiting for ``what`` (another process must act)."""
        self._push(WAITING, what)
        try:
            yield
        finally:
            self._pop()

    def stuck(self, hang_timeout_s: float) -> str | None:
        """Rule 1 applied to this process: a description when it is hung, else None."""
        with self._lock:
            state, since, what = self._summary()
        if state == BUSY and time.monotonic() - since > hang_timeout_s:
            return f"busy for {time.monotonic() - since:.1f} s without progress in {what}"
        return None

    # ------------------------------------------------------------------ internals

    def _push(self, state: float, what: str) -> None:
        with self._lock:
            self._stacks.setdefault(threading.get_ident(), []).append(
                [state, time.monotonic(), what])
            self._publish()

    def _pop(self) -> None:
        with self._lock:
            stack = self._stacks.get(threading.get_ident())
            if stack:
                stack.pop()
                if stack:
                    stack[-1][1] = time.monotonic()  # busy again from now
                else:
                    del self._stacks[threading.get_ident()]
            self._publish()

    def _summary(self) -> tuple[float, float, str]:
        if self._state in (STARTING, DONE):
            return self._state, self._last, ""
        tops = [s[-1] for s in self._stacks.values() if s]
        busy = [t for t in tops if t[0] == BUSY]
        if busy:
            top = min(busy, key=lambda t: t[1])
            return BUSY, top[1], top[2]
        if tops:
            top = min(tops, key=lambda t: t[1])
            return WAITING, top[1], top[2]
        return WAITING, self._last, "nothing"

    def _publish(self) -> None:
        if self.board is not None:
            state, since, what = self._summary()
            self.board.write(self.rank, self._progress, self._last, state, since, what)


def find_hang(statuses: Sequence[Status], hang_timeout_s: float, now: float | None = None
              ) -> tuple[int | None, str] | None:
    """The launcher's hang rules (module docstring) over every rank's status.

    Returns
    -------
    (rank, description) or None
        ``rank`` is the hung rank (rule 1), or None when the whole job stalled (rule 2);
        None when neither rule applies (or some rank is still starting).
    """
    now = time.monotonic() if now is None else now
    if any(s.state == STARTING for s in statuses):
        return None
    for rank, s in enumerate(statuses):
        if s.state == BUSY and now - s.since > hang_timeout_s:
            return rank, f"busy for {now - s.since:.1f} s without progress in {s.what}"
    live = [s for s in statuses if s.state != DONE]
    if live and all(s.state == WAITING for s in live):
        last = max(s.last_progress for s in statuses)
        if now - last > hang_timeout_s:
            return None, f"no worker made progress for {now - last:.1f} s"
    return None
