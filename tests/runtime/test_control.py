"""The launcher's verdict between iterations, in shared memory (spawn context)."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from pipesl.exceptions import RuntimeSetupError
from pipesl.runtime.control import Control


@pytest.fixture(scope="module")
def ctx():
    return multiprocessing.get_context("spawn")


def test_decide_then_wait_returns_the_verdict(ctx) -> None:
    control = Control(ctx)
    control.decide(0, False)
    assert control.wait(0, timeout_s=1.0) is False
    control.decide(1, True)
    assert control.wait(1, timeout_s=1.0) is True
    # A verdict on a later iteration answers for an earlier one too.
    control.decide(3, False)
    assert control.wait(2, timeout_s=1.0) is False


def test_wait_times_out_naming_the_iteration(ctx) -> None:
    control = Control(ctx)
    with pytest.raises(RuntimeSetupError, match=r"iteration 0 within 0\.01 s"):
        control.wait(0, timeout_s=0.01)
    control.decide(4, True)
    start = time.monotonic()
    with pytest.raises(RuntimeSetupError, match="on iteration 5 "):
        control.wait(5, timeout_s=0.05)
    assert time.monotonic() - start >= 0.05


def test_reset_forgets_every_verdict(ctx) -> None:
    control = Control(ctx)
    control.decide(7, True)
    control.reset()
    assert list(control.values) == [-1, 0]
    with pytest.raises(RuntimeSetupError, match="iteration 0"):
        control.wait(0, timeout_s=0.01)
    control.decide(0, False)
    assert control.wait(0, timeout_s=1.0) is False


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_rank_0_in_another_process_receives_the_verdict(ctx) -> None:
    control = Control(ctx)
    # Rank 0's side in a spawned process (the array travels as a process argument): its
    # wait raises, and the process exits with 1, unless the launcher's verdict arrives.
    proc = ctx.Process(target=control.wait, args=(2, 60.0))
    proc.start()
    try:
        control.decide(1, False)
        control.decide(2, True)
    finally:
        proc.join(timeout=90)
    assert proc.exitcode == 0
    assert list(control.values) == [2, 1]
