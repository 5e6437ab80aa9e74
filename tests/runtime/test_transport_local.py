"""Transport pieces that need no process group: headers, pacers, the mailbox."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest
import torch

from pipesl.exceptions import RuntimeSetupError
from pipesl.runtime.transport import (
    FORWARD,
    LABELS,
    Mailbox,
    Message,
    Pacer,
    decode_header,
    encode_header,
)


@pytest.mark.parametrize(("dtype", "shape"), [(torch.float32, (8, 16, 8, 8)),
                                              (torch.float64, (3,)),
                                              (torch.int64, (5, 7)),
                                              (torch.bfloat16, (1, 2, 3, 4, 5, 6, 7, 8))])
def test_header_round_trip(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    msg = Message(FORWARD, 12, 1, 3, 7, 1234.567891234, torch.zeros(shape, dtype=dtype))
    back, got_dtype, got_shape = decode_header(encode_header(msg))
    assert (back.kind, back.iteration, back.route, back.position, back.micro_batch) == (
        FORWARD, 12, 1, 3, 7)
    assert back.avail == pytest.approx(1234.567891234, abs=1e-9)
    assert (got_dtype, got_shape) == (dtype, shape)


def test_header_refuses_too_many_dimensions() -> None:
    with pytest.raises(RuntimeSetupError, match="dimensions"):
        encode_header(Message(LABELS, tensor=torch.zeros((1,) * 9)))


def test_pacer_serves_fifo_back_to_back_on_its_own_clock() -> None:
    records: list[tuple[int, float, float]] = []
    done = threading.Event()
    errors: list[str] = []
    pacer = Pacer("link:x-y", errors.append)
    pacer.start()
    t0 = time.perf_counter()
    for i in range(3):
        pacer.submit(0.02, (lambda end, i=i: done.set() if i == 2 else None),
                     (lambda s, e, i=i: records.append((i, s, e))), ready=t0)
    assert done.wait(5.0)
    pacer.close()
    assert not errors
    assert [r[0] for r in records] == [0, 1, 2]
    assert records[0][1] == t0
    for (_, _, end), (_, start, _) in pairwise(records):
        assert start == end  # the next transfer starts exactly when the link frees up
    assert records[-1][2] == pytest.approx(t0 + 0.06)
    assert time.perf_counter() - t0 >= 0.06


def test_pacer_waits_for_a_later_ready_time() -> None:
    got: list[float] = []
    done = threading.Event()
    pacer = Pacer("link:a>b", lambda m: None)
    pacer.start()
    ready = time.perf_counter() + 0.03
    pacer.submit(0.01, lambda end: done.set(), lambda s, e: got.extend((s, e)), ready=ready)
    assert done.wait(5.0)
    pacer.close()
    assert got == [ready, pytest.approx(ready + 0.01)]


def test_mailbox_delivers_with_time_and_times_out() -> None:
    box = Mailbox()
    box.put(("act", 0, 1, 2), "x", at=5.0)
    assert box.get(("act", 0, 1, 2), 1.0, "x") == (5.0, "x")
    t = time.monotonic()
    with pytest.raises(RuntimeSetupError, match=r"timed out after 0\.3 s waiting for grad 1"):
        box.get(("grad", 0, 0, 1), 0.3, "grad 1")
    assert time.monotonic() - t < 2.0


def test_mailbox_wakes_waiters_on_failure() -> None:
    box = Mailbox()
    threading.Timer(0.1, box.fail, args=(RuntimeError("peer r died"),)).start()
    with pytest.raises(RuntimeSetupError, match="peer r died"):
        box.get(("act", 0, 1, 0), 10.0, "activation 0")
