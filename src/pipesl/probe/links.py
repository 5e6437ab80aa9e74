"""Time transfers over each link of a ``torch.distributed`` job, the runtime's way (torch).

Every rank runs :func:`probe_links` with the same arguments. The links are probed one after
the other (a barrier between them), both directions, so that no two measurements share the
CPU or a link. A *transfer* is what the runtime's transport sends for one activation or
gradient (:mod:`pipesl.runtime.transport`): one gloo point-to-point message, the float32
payload with the link's latency padding if any behind it (no header). It is timed by a
round trip: the receiver answers with a small acknowledgement, and the one-way time is the
round trip minus half the round trip of two bare acknowledgements measured on the same link
just before, so no two hosts' clocks are compared. Sizes cycle inside every repetition, so a
burst of load on a shared machine spreads over every size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import torch
import torch.distributed as dist

from pipesl.probe.estimate import DirectionEstimate, LinkEstimate, fit_direction

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


def _direction(pair: _Pair, sending: bool, sizes: Sequence[int], reps: int,
               warmup: int) -> list[list[float]] | None:
    """Time ``reps`` transfers of each size from the sending end; None on the receiver."""
    payloads = [torch.zeros(max(1, s // 4), dtype=torch.float32) for s in sizes]
    bare: list[float] = []
    seconds: list[list[float]] = [[] for _ in sizes]
    for r in range(warmup + reps):
        # a bare round trip (two headers), then one transfer of every size
        for i in (-1, *range(len(sizes))):
            payload = None if i < 0 else payloads[i]
            if sending:
                t0 = time.perf_counter()
                pair.transfer_out(payload)
                pair.recv(pair.header)
                rtt = time.perf_counter() - t0
                if r >= warmup:
                    if i < 0:
                        bare.append(rtt)
                    else:
                        seconds[i].append(rtt - bare[-1] / 2)
            else:
                pair.transfer_in(payload)
                pair.send(pair.header)
    return seconds if sending else None


def probe_links(nodes: Sequence[str], rank: int, links: Sequence[tuple[str, str]],
                sizes: Mapping[frozenset[str], Sequence[int]], reps: int = 8,
                warmup: int = 2, padding: Mapping[frozenset[str], int] | None = None,
                timeout_s: float = 120.0, progress: Progress | None = None
                ) -> list[LinkEstimate] | None:
    """Probe ``links`` (pairs of ``nodes``; node i is rank i) in the process group.

    ``sizes`` gives the payload bytes to time per link (by its pair of ends). Returns the
    estimates on rank 0 (gathered), None elsewhere.
    """
    me = nodes[rank]
    pad = padding or {}
    mine: list[tuple[str, str, list[list[float]]]] = []
    for u, v in links:
        ends = frozenset((u, v))
        todo = list(sizes[ends])
        if me in ends:
            peer = nodes.index(v if me == u else u)
            pair = _Pair(peer, timeout_s, pad.get(ends, 0))
            for a, b in ((u, v), (v, u)):
                result = _direction(pair, me == a, todo, reps, warmup)
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
        fwd: DirectionEstimate = fit_direction(u, v, todo, timed[(u, v)])
        bwd: DirectionEstimate = fit_direction(v, u, todo, timed[(v, u)])
        out.append(LinkEstimate(u, v, fwd, bwd))
    return out
