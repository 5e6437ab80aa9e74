"""Time transfers over each link of a ``torch.distributed`` job, the runtime's way (torch).

The torch half of ``pipesl probe``: :mod:`pipesl.probe` (no torch) chooses what to time and
fits the timings.

Every rank runs :func:`time_links` with the same arguments. The links are probed one after
the other (a barrier between them), both directions, so that no two measurements share the
CPU or a link. A *transfer* is what the runtime's transport sends for one activation or
gradient (:mod:`pipesl.runtime.transport`): one gloo point-to-point message, the float32
payload with the link's latency padding if any behind it (no header). It is timed by a
round trip: the receiver answers with a small acknowledgement, and the one-way time is the
round trip minus half the round trip of two bare acknowledgements measured on the same link
just before, so no two hosts' clocks are compared. Each size is also sent ``stream`` times
back to back before the answer: the difference to one transfer, divided by ``stream - 1``, is
what a transfer adds to a busy link (a pipeline's bottleneck in its steady state), without the
token bucket's burst that a transfer over an idle link gets for free and without the
per-message work that overlaps with the previous transfer's bytes on the wire. Sizes cycle
inside every repetition, so a burst of load on a shared machine spreads over every size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["LinkTimings", "probe_rank", "time_links"]

logger = logging.getLogger(__name__)

_TAG = 11
_ACK = 8
"""Bytes of the acknowledgement (and of the bare round trip's messages)."""
Progress = Callable[[str], None]
Timings = tuple[list[list[float]], list[list[float]]]
"""Seconds per size and repetition of one direction: transfers alone, and streamed."""
LinkTimings = dict[tuple[str, str], Timings]
"""The timings of every direction (sender, receiver) of the probed links."""


class _Pair:
    def __init__(self, peer: int, timeout_s: float, padding: int) -> None:
        self.peer = peer
        self.timeout = timedelta(seconds=timeout_s)
        self.header = torch.zeros(_ACK, dtype=torch.uint8)
        self.padding = padding
        self._framed: dict[int, torch.Tensor] = {}

    def send(self, t: torch.Tensor) -> None:
        work = dist.isend(t, dst=self.peer, tag=_TAG)
        assert work is not None
        work.wait(self.timeout)

    def recv(self, t: torch.Tensor) -> None:
        work = dist.irecv(t, src=self.peer, tag=_TAG)
        assert work is not None
        work.wait(self.timeout)

    def _message(self, payload: torch.Tensor) -> torch.Tensor:
        """The payload's bytes with the padding behind them: one message, as the runtime."""
        if not self.padding:
            return payload
        key = payload.numel()
        if key not in self._framed:
            self._framed[key] = torch.zeros(payload.numel() * payload.element_size()
                                            + self.padding, dtype=torch.uint8)
        return self._framed[key]

    def transfer_out(self, payload: torch.Tensor | None) -> None:
        self.send(self.header if payload is None else self._message(payload))

    def transfer_in(self, payload: torch.Tensor | None) -> None:
        self.recv(self.header if payload is None else self._message(payload))


def _direction(pair: _Pair, sending: bool, sizes: Sequence[int], reps: int, warmup: int,
               stream: int) -> tuple[list[list[float]], list[list[float]]] | None:
    """Time ``reps`` transfers of each size from the sending end: alone (one-way time) and
    ``stream`` back to back (the time each adds); None on the receiver."""
    payloads = [torch.zeros(max(1, s // 4), dtype=torch.float32) for s in sizes]
    bare: list[float] = []
    alone: list[list[float]] = [[] for _ in sizes]
    streamed: list[list[float]] = [[] for _ in sizes]
    for r in range(warmup + reps):
        # a bare round trip (two acks), then every size alone and `stream` times in a row
        for i in (-1, *range(len(sizes))):
            payload = None if i < 0 else payloads[i]
            times = []
            for count in ((1,) if i < 0 else (1, stream)):
                if sending:
                    t0 = time.perf_counter()
                    for _ in range(count):
                        pair.transfer_out(payload)
                    pair.recv(pair.header)
                    times.append(time.perf_counter() - t0)
                else:
                    for _ in range(count):
                        pair.transfer_in(payload)
                    pair.send(pair.header)
            if not sending or r < warmup:
                continue
            if i < 0:
                bare.append(times[0])
            else:
                alone[i].append(times[0] - bare[-1] / 2)
                streamed[i].append((times[1] - times[0]) / (stream - 1))
    return (alone, streamed) if sending else None


def time_links(nodes: Sequence[str], rank: int, links: Sequence[tuple[str, str]],
               sizes: Mapping[frozenset[str], Sequence[int]], reps: int = 8,
               warmup: int = 2, padding: Mapping[frozenset[str], int] | None = None,
               stream: int = 4,
               timeout_s: float = 120.0, progress: Progress | None = None
               ) -> LinkTimings | None:
    """Time ``links`` (pairs of ``nodes``; node i is rank i) in the process group.

    ``sizes`` gives the payload bytes to time per link (by its pair of ends). Returns every
    direction's timings on rank 0 (gathered), None elsewhere.
    """
    me = nodes[rank]
    pad = padding or {}
    mine: list[tuple[str, str, Timings]] = []
    for u, v in links:
        ends = frozenset((u, v))
        todo = list(sizes[ends])
        if me in ends:
            peer = nodes.index(v if me == u else u)
            pair = _Pair(peer, timeout_s, pad.get(ends, 0))
            for a, b in ((u, v), (v, u)):
                result = _direction(pair, me == a, todo, reps, warmup, stream)
                if result is not None:
                    mine.append((a, b, result))
            if progress is not None and me == u:
                progress(f"{u} - {v}")
        dist.barrier()
    parts: list[object] | None = [None] * len(nodes) if rank == 0 else None
    dist.gather_object(mine, parts, dst=0)
    if rank != 0:
        return None
    assert parts is not None
    return {(a, b): s for part in parts for a, b, s in part}  # type: ignore[attr-defined]


def probe_rank(nodes: Sequence[str], rank: int, world: int, links: Sequence[tuple[str, str]],
               sizes: Mapping[frozenset[str], Sequence[int]], *, reps: int,
               padding: Mapping[frozenset[str], int] | None, timeout_s: float,
               calibrate: Callable[[], Any] | None = None
               ) -> tuple[LinkTimings, dict[str, Any]] | None:
    """Join torchrun's gloo group as ``rank``, time the links and gather ``calibrate()``.

    Returns, on rank 0, the links' timings and every node's calibration (by node name,
    where ``calibrate`` gave one); None elsewhere.
    """
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        timed = time_links(nodes, rank, links, sizes, reps=reps, padding=padding,
                           timeout_s=timeout_s,
                           progress=lambda what: logger.info("probed %s", what))
        measured: dict[str, Any] = {}
        if calibrate is not None:
            mine = calibrate()
            parts: list[Any] | None = [None] * world if rank == 0 else None
            dist.gather_object(mine, parts, dst=0)
            if parts is not None:
                measured = {nodes[i]: p for i, p in enumerate(parts) if p is not None}
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return None if timed is None else (timed, measured)
