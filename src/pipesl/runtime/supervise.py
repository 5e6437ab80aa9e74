"""The launcher's watch over its workers: results in, failures out, nothing left behind.

:class:`Supervisor` reads what the workers send (iteration reports, the end of the run, errors)
and every 0.2 s looks at their exit codes and their published liveness
(:mod:`pipesl.runtime.liveness`). A failure is one of

* a worker **died** (killed by a signal, or exited with an error code without a word);
* a worker **raised** (it reports its own error before exiting);
* a worker **hung** (busy on one task for ``hang_timeout_s``), or the whole job **stalled**
  (every worker waiting, none progressing for ``hang_timeout_s``);
* a worker did not **start** within ``startup_timeout_s``.

When one worker dies, its neighbours fail a moment later (closed connections): those errors
are marked secondary by the workers, and the supervisor waits up to a second for the primary
evidence before it names the culprit. Then it stops every worker (SIGTERM, then SIGKILL after
a grace period), checks through ``/proc`` that none is left, and raises
:class:`~pipesl.runtime.liveness.WorkerFailure` with one line naming the node, its rank and
roles, what happened and where.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipesl.runtime.liveness import BUSY, STARTING, WAITING, Board, WorkerFailure, find_hang
from pipesl.runtime.procfs import running

__all__ = ["Supervisor", "stop_processes"]

logger = logging.getLogger(__name__)

_POLL_S = 0.2
_EVIDENCE_S = 1.0
_QUIET_S = 0.25


def stop_processes(processes: Sequence[Any], grace_s: float = 3.0) -> None:
    """Terminate every process still alive, wait ``grace_s``, then kill the stubborn ones."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join(2.0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Supervisor:
    """Watch a job's worker processes until rank 0 reports the end of the run.

    Parameters
    ----------
    processes : sequence of multiprocessing.Process
        Started, in rank order.
    nodes : sequence of str
        The node of each rank.
    roles : sequence of str
        People-readable roles of each rank (``stage 2 (L3-4), loss``).
    board : Board
        Where the workers publish their liveness.
    channel : multiprocessing.Queue
        ``("iteration", report)``, ``("done", state)``, ``("error", (rank, node, message,
        primary))``.
    hang_timeout_s, startup_timeout_s : float
    start_iteration : int
        The run's first iteration (to count completed iterations on failure).
    on_message : callable
        Called with ``(kind, payload)`` for every iteration report and the end of the run.
    """

    def __init__(self, processes: Sequence[Any], nodes: Sequence[str], roles: Sequence[str],
                 board: Board, channel: Any, *, hang_timeout_s: float,
                 startup_timeout_s: float, start_iteration: int,
                 on_message: Callable[[str, Any], None]) -> None:
        self.processes, self.nodes, self.roles = processes, nodes, roles
        self.board, self.channel = board, channel
        self.hang_timeout_s, self.startup_timeout_s = hang_timeout_s, startup_timeout_s
        self.completed = start_iteration
        self.on_message = on_message
        self.pids = [p.pid for p in processes]
        self._errors: list[tuple[int, str, str, bool]] = []

    def _who(self, rank: int) -> str:
        roles = self.roles[rank]
        return f"worker {self.nodes[rank]} (rank {rank}{': ' + roles if roles else ''})"

    def _take(self, timeout: float) -> bool:
        """Handle one message; True when it was the end of the run."""
        return self._handle_next(timeout) == "done"

    def _handle_next(self, timeout: float) -> str | None:
        """Handle one message and return its kind (None when none came within ``timeout``)."""
        try:
            kind, payload = self.channel.get(timeout=timeout)
        except queue.Empty:
            return None
        if kind == "error":
            rank, node, message, primary = payload
            self._errors.append((rank, node, message, primary))
            return kind
        if kind == "iteration":
            self.completed = payload.iteration + 1
        self.on_message(kind, payload)
        return str(kind)

    def _drain(self) -> None:
        """Take what the surviving ranks already sent before they are stopped.

        Ranks run without barriers, so a rank may fail while another one's records of the
        iteration before are still on their way; without this, ``completed_iterations``
        would depend on that race. Waits until the channel has been quiet for
        ``_QUIET_S``, at most ``_EVIDENCE_S``.
        """
        deadline = time.monotonic() + _EVIDENCE_S
        while time.monotonic() < deadline:
            if self._handle_next(_QUIET_S) is None:
                return

    def run(self) -> None:
        """Return when rank 0 reported the end of the run.

        Raises
        ------
        WorkerFailure
            When a worker died, raised, hung or did not start (every worker is stopped).
        """
        started = time.monotonic()
        while True:
            if self._take(_POLL_S):
                return
            if self._errors or any(p.exitcode not in (None, 0) for p in self.processes):
                self._fail(None)
            if all(p.exitcode is not None for p in self.processes):
                if self._take(2.0):  # rank 0 may have reported and exited since
                    return
                self._fail((None, "every worker exited before the run completed", "exit"))
            now = time.monotonic()
            statuses = [self.board.read(r) for r in range(len(self.processes))]
            late = [r for r, s in enumerate(statuses) if s.state == STARTING]
            if late and now - started > self.startup_timeout_s:
                names = ", ".join(self.nodes[r] for r in late)
                self._fail((late[0] if len(late) == 1 else None,
                            f"did not start within {self.startup_timeout_s:g} s ({names})",
                            "startup"))
            hang = find_hang(statuses, self.hang_timeout_s, now)
            if hang is not None:
                rank, text = hang
                if rank is not None:
                    self._fail((rank, f"hung: {text} (hang timeout {self.hang_timeout_s:g} s)",
                                "hung"))
                waits = "; ".join(f"{self.nodes[r]} waits for {s.what}"
                                  for r, s in enumerate(statuses) if s.state == WAITING)
                self._fail((None, f"stalled: {text} (hang timeout {self.hang_timeout_s:g} "
                                  f"s); {waits}", "stalled"))

    def _where(self, rank: int) -> str:
        s = self.board.read(rank)
        if s.state == BUSY and s.what:
            return f" during {s.what}"
        if s.state == WAITING and s.what:
            return f" (it was waiting for {s.what})"
        return ""

    def _evidence(self) -> tuple[int | None, str, str]:
        """The culprit of a failure seen through errors or exit codes."""
        deadline = time.monotonic() + _EVIDENCE_S
        while time.monotonic() < deadline:
            if any(p.exitcode is not None and p.exitcode < 0 for p in self.processes):
                break
            if any(primary for *_, primary in self._errors):
                break
            self._take(0.05)
        for rank, p in enumerate(self.processes):
            if p.exitcode is not None and p.exitcode < 0:
                sig = -p.exitcode
                return rank, (f"died with signal {sig} ({_signal_name(sig)})"
                              f"{self._where(rank)}"), "signal"
        for rank, _, message, primary in self._errors:
            if primary:
                return rank, message, "raised" if message.startswith("raised") else "failed"
        for rank, p in enumerate(self.processes):
            if p.exitcode not in (None, 0) and rank not in {e[0] for e in self._errors}:
                return rank, f"exited with code {p.exitcode}{self._where(rank)}", "exit"
        rank, _, message, _ = self._errors[0]
        return rank, message, "failed"

    def _fail(self, verdict: tuple[int | None, str, str] | None) -> None:
        detected = time.monotonic()
        rank, what, cause = verdict if verdict is not None else self._evidence()
        self._drain()
        stop_processes(self.processes)
        stopped = time.monotonic() - detected
        orphans = [pid for pid in self.pids if pid is not None and running(pid)]
        who = self._who(rank) if rank is not None else "job"
        tail = f"; stopped all {len(self.processes)} processes in {stopped:.1f} s"
        if orphans:
            tail += f", but {len(orphans)} still run (pids {orphans})"
        logger.debug("failure evidence: %s", self._errors)
        raise WorkerFailure(f"{who} {what}{tail}",
                            node=self.nodes[rank] if rank is not None else None, rank=rank,
                            cause=cause, pids=[p for p in self.pids if p is not None],
                            orphans=orphans, completed_iterations=self.completed,
                            stopped_s=stopped)
