"""Time transfers over each link of a ``torch.distributed`` job, the runtime's way (torch).

Every rank runs :func:`probe_links` with the same arguments. The links are probed one after
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

import torch
import torch.distributed as dist

from pipesl.probe.estimate import LinkEstimate, fit_direction

__all__ = ["probe_links"]

logger = logging.getLogger(__name__)

_TAG = 11
_ACK = 8
"""Bytes of the acknowledgement (and of the bare round trip's messages)."""
Progress = Callable[[str], None]


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


def probe_links(nodes: Sequence[str], rank: int, links: Sequence[tuple[str, str]],
                sizes: Mapping[frozenset[str], Sequence[int]], reps: int = 8,
                warmup: int = 2, padding: Mapping[frozenset[str], int] | None = None,
                stream: int = 4,
                timeout_s: float = 120.0, progress: Progress | None = None
                ) -> list[LinkEstimate] | None:
    """Probe ``links`` (pairs of ``nodes``; node i is rank i) in the process group.

    ``sizes`` gives the payload bytes to time per link (by its pair of ends). Returns the
    estimates on rank 0 (gathered), None elsewhere: fitted on the streamed transfers, with
    the fit of the lone ones beside (:attr:`LinkEstimate.forward_alone`).
    """
    me = nodes[rank]
    pad = padding or {}
    mine: list[tuple[str, str, tuple[list[list[float]], list[list[float]]]]] = []
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
    timed = {(a, b): s for part in parts for a, b, s in part}  # type: ignore[attr-defined]
    out = []
    for u, v in links:
        todo = list(sizes[frozenset((u, v))])
        (fa, fs), (ba, bs) = timed[(u, v)], timed[(v, u)]
        out.append(LinkEstimate(u, v, fit_direction(u, v, todo, fs),
                                fit_direction(v, u, todo, bs),
                                fit_direction(u, v, todo, fa), fit_direction(v, u, todo, ba)))
    return out
