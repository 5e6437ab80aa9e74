"""Warm spare worker processes, so that relaunching a job does not wait for torch to import.

Starting a run spawns one process per node, and each imports torch: seconds of CPU per
process, tens of seconds for a handful of them on a small, busy machine. An adaptive run
(:mod:`pipesl.adapt.loop`) relaunches its job on every switch of plan, so it keeps a
:class:`WorkerPool`: spare processes spawned ahead of time that import torch and the worker,
then wait for a job on a pipe. :meth:`WorkerPool.take` hands ``n`` of them to
:func:`pipesl.runtime.launch.train` (``pool=``) and spawns replacements at once, which
import while the job runs.

Spares start under Linux's ``SCHED_IDLE`` policy (set by the launcher right after the
spawn, so it covers the interpreter's start-up and every import): they take only CPU time
that nothing else wants, so a running emulation keeps its timing. The launcher puts every
thread of a spare back to the normal policy when it hands it a job (if it has not finished
importing by then, it finishes at normal priority: no worse than a fresh process).
Elsewhere, spares start at normal priority.

Each spare owns its liveness board and its control word (shared memory must be handed to a
process when it is spawned) and a pipe to the launcher: the job goes one way, the results
the other (no queue is shared between spares, so a spare killed while writing harms only
its own pipe). A spare is used for one run only and exits with it. Spares die with the
launcher (``PR_SET_PDEATHSIG``), and :meth:`WorkerPool.close` stops those never used.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipesl.exceptions import RuntimeSetupError
from pipesl.runtime.control import Control
from pipesl.runtime.launch import pooled_entry
from pipesl.runtime.liveness import Board, Status
from pipesl.runtime.supervise import stop_processes

__all__ = ["Spare", "WorkerPool"]


@dataclass
class Spare:
    """One warm process and its private shared memory."""

    process: Any
    conn: Any
    """The launcher's end of the pipe the job is sent on."""
    board: Board
    control: Control
    ready: bool = False
    """It has imported torch and the worker (it said so on its pipe)."""


def _set_policy(pid: int, policy: str) -> None:
    """Linux: put every thread of process ``pid`` under scheduling ``policy`` (best effort)."""
    number = getattr(os, policy, None)
    if number is None:  # pragma: no cover - not Linux
        return
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for tid in threads:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(tid, number, os.sched_param(0))


class _BoardView:
    """The supervisor's view of a run on spares: rank r publishes on spare r's board."""

    def __init__(self, boards: Sequence[Board]) -> None:
        self.boards = list(boards)

    def read(self, rank: int) -> Status:
        return self.boards[rank].read(rank)


class WorkerPool:
    """Spare worker processes, warm (torch imported), for runs of up to ``size`` ranks.

    Parameters
    ----------
    size : int
        Spares kept ready, and the most ranks one run may take (the network's node count
        covers every plan).
    idle : bool
        Start spares under ``SCHED_IDLE`` (Linux).
    replenish : bool
        Spawn replacements for the spares a run takes (False: a cold pool for one run, what
        :func:`pipesl.runtime.launch.train` makes when given none).

    Notes
    -----
    The pool starts empty: the first :meth:`take` spawns fresh processes (as a plain
    launch does) and then ``size`` spares for the next one, unless :meth:`warm_up` filled
    it first. A spare that is not warm yet when taken finishes its imports first.
    """

    def __init__(self, size: int, *, idle: bool = True, replenish: bool = True) -> None:
        if size < 1:
            raise ValueError("a pool needs size >= 1")
        self.size, self.idle, self.replenish = size, idle, replenish
        self._ctx = mp.get_context("spawn")
        self._spares: list[Spare] = []
        self.spawned = 0

    def _spawn(self, idle: bool) -> Spare:
        parent, child = self._ctx.Pipe()
        board, control = Board(self._ctx, self.size), Control(self._ctx)
        process = self._ctx.Process(target=pooled_entry, name="pipesl-spare", daemon=True,
                                    args=(child, board, control))
        process.start()
        child.close()
        if idle:
            _set_policy(process.pid, "SCHED_IDLE")
        self.spawned += 1
        return Spare(process, parent, board, control)

    def take(self, n: int) -> list[Spare]:
        """``n`` processes for one run (rank r runs on the r-th), then spares for the next.

        Raises
        ------
        ValueError
            When ``n`` exceeds the pool's size.
        """
        if n > self.size:
            raise ValueError(f"a run of {n} ranks on a pool of {self.size}")
        alive = [s for s in self._spares if s.process.is_alive()]
        for s in alive:  # warm ones first
            self._ready(s, 0.0)
        alive.sort(key=lambda s: not s.ready)
        taken, self._spares = alive[:n], alive[n:]
        for s in taken:
            _set_policy(s.process.pid, "SCHED_OTHER")
        taken += [self._spawn(idle=False) for _ in range(n - len(taken))]
        if self.replenish:
            self._spares += [self._spawn(self.idle)
                             for _ in range(self.size - len(self._spares))]
        return taken

    def warm_up(self, timeout_s: float = 300.0) -> float:
        """Spawn the spares now at normal priority and wait until they have imported
        everything; return the seconds it took (a cold start of ``size`` processes).

        Raises
        ------
        RuntimeSetupError
            When a spare died or did not get ready within ``timeout_s``.
        """
        started = time.monotonic()
        self._spares += [self._spawn(idle=False) for _ in range(self.size - len(self._spares))]
        for s in self._spares:
            self._ready(s, max(0.0, started + timeout_s - time.monotonic()))
        return time.monotonic() - started

    def _ready(self, spare: Spare, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for ``spare``'s "ready"; True when it is warm."""
        if spare.ready:
            return True
        try:
            if spare.conn.poll(timeout_s):
                spare.ready = spare.conn.recv() == "ready"
        except (EOFError, OSError):
            pass
        if not spare.ready and timeout_s > 0:
            raise RuntimeSetupError(f"a spare worker (pid {spare.process.pid}) did not get "
                                    f"ready within {timeout_s:.0f} s (exit code "
                                    f"{spare.process.exitcode})")
        return spare.ready

    def board_view(self, spares: Sequence[Spare]) -> _BoardView:
        """What :class:`~pipesl.runtime.supervise.Supervisor` reads for a run on ``spares``."""
        return _BoardView([s.board for s in spares])

    def close(self) -> None:
        """Stop every spare never used (a run's processes are stopped by the run)."""
        for s in self._spares:
            with contextlib.suppress(OSError, BrokenPipeError):
                s.conn.send(None)
        stop_processes([s.process for s in self._spares], grace_s=2.0)
        for s in self._spares:
            s.conn.close()
        self._spares = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
