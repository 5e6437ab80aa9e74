"""The launcher's say between iterations: go on, or stop here with a checkpoint.

An adaptive run (:mod:`pipesl.adapt.loop`) decides after each iteration whether to
move the job to another plan. It answers through a :class:`Control`, two words of shared
memory between the launcher and rank 0: the last iteration it has decided on and whether to
stop. Before every iteration but the first, rank 0 waits for the verdict on the previous one
and broadcasts it to every rank (:func:`agree_to_stop`), so that all ranks stop at the same
iteration boundary; the stages then write a checkpoint of the completed iterations if none
is due there anyway, and the run ends normally. Nothing in flight is lost.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pipesl.exceptions import RuntimeSetupError

if TYPE_CHECKING:
    from pipesl.runtime.liveness import Liveness

__all__ = ["Control", "agree_to_stop"]

_POLL_S = 0.001


class Control:
    """The launcher's verdict after each iteration, in shared memory.

    Parameters
    ----------
    context : multiprocessing context
        The ``spawn`` context (the array goes to rank 0 as a process argument).
    """

    def __init__(self, context: Any) -> None:
        self.values = context.RawArray("q", 2)
        self.values[0] = -1  # the last iteration decided
        self.values[1] = 0  # stop before the next one

    def decide(self, iteration: int, stop: bool) -> None:
        """The launcher's verdict on ``iteration`` (stop before the next one or not)."""
        self.values[1] = int(stop)
        self.values[0] = iteration

    def reset(self) -> None:
        """Forget every verdict (a pooled process serves several runs)."""
        self.values[0] = -1
        self.values[1] = 0

    def wait(self, iteration: int, timeout_s: float) -> bool:
        """Rank 0: wait for the verdict on ``iteration``; True means stop.

        Raises
        ------
        RuntimeSetupError
            When no verdict came within ``timeout_s`` (the launcher is gone or stuck).
        """
        deadline = time.monotonic() + timeout_s
        while self.values[0] < iteration:
            if time.monotonic() > deadline:
                raise RuntimeSetupError(f"no decision from the launcher on iteration {iteration} "
                                  f"within {timeout_s:g} s")
            time.sleep(_POLL_S)
        return bool(self.values[1])


def agree_to_stop(control: Control | None, rank: int, iteration: int, timeout_s: float,
                  live: Liveness, collective: Any) -> bool:
    """Every rank: stop before ``iteration``? Rank 0 asks ``control`` and broadcasts.

    ``collective(what, fn, *args)`` runs a collective as the worker does (marked waiting, a
    failure there blamed on a peer).
    """
    import torch
    import torch.distributed as dist

    flag = torch.zeros(1, dtype=torch.int64)
    if rank == 0:
        assert control is not None, "rank 0 of a stoppable run needs the launcher's control"
        with live.waiting(f"the launcher's decision after iteration {iteration - 1}"):
            flag[0] = int(control.wait(iteration - 1, timeout_s))
    collective(f"the decision to run iteration {iteration}", dist.broadcast, flag, 0)
    return bool(flag.item())
