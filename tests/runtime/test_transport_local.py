"""Emulator pieces that need no process group: the pacers and the emulate option."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest

from pipesl.exceptions import ProblemError
from pipesl.runtime.config import RunConfig, build_config, parse_emulate
from pipesl.runtime.emulator import Pacer


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


@pytest.mark.parametrize(("value", "parts"), [
    ("links,devices", {"links", "devices"}), ("devices", {"devices"}), ("links", {"links"}),
    (" devices , links ", {"links", "devices"}), ("none", set()), (True, {"links", "devices"}),
    (False, set())])
def test_emulate_option(value: str | bool, parts: set[str]) -> None:
    assert parse_emulate(value) == parts
    cfg = build_config(RunConfig(), emulate=value)
    assert cfg.emulated == parts
    assert cfg.emulation.enabled == bool(parts)


@pytest.mark.parametrize("value", ["link", "devices,cpu", ""])
def test_emulate_option_refuses_unknown_parts(value: str) -> None:
    with pytest.raises(ProblemError, match=r"^emulation\.parts: "):
        build_config(RunConfig(), emulate=value)
