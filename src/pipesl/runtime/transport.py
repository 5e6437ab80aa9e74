"""Hop-by-hop transport: one torch.distributed point-to-point message per transfer.

Messages travel only between neighbours of the network, along the plan's routes (see
:mod:`pipesl.runtime.program` for the streams and their tags). A message carries only the
tensor: the receiver knows from its program which micro-batch of which stream comes next on
each (peer, tag) and its shape (from the model's unit shapes), so there is no header and no
second message. Under the emulator's virtual clock the emulated time at which the tensor is
available travels with it, as 8 bytes in front of the payload, and a link's latency padding
(the testbed's) behind it: one message still.

Sends are gloo's asynchronous ``isend``, issued from the thread that produced the tensor (a
stage, a relay lane, a link's pacer); the transport keeps each pending send (and its buffer)
until :meth:`Transport.flush`. Receives are ``irecv``, posted ahead (as soon as one message of
a stream has been taken, the receive of the stream's next one is posted, so a message can land
while the receiver still computes) or when needed, per transfer (``ahead``). Every
wait is bounded by ``timeout_s``; a failure there is
a peer's (:class:`PeerFailure`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from pipesl.exceptions import RuntimeSetupError
from pipesl.runtime.program import Transfer

if TYPE_CHECKING:
    from pipesl.runtime.audit import Auditor

__all__ = [
    "BACKWARD",
    "FORWARD",
    "LABELS",
    "PeerFailure",
    "Transport",
    "sleep_until",
]

logger = logging.getLogger(__name__)

FORWARD, BACKWARD, LABELS = 1, 2, 3
"""Message kinds as the audit records them."""
_KIND_CODE = {"F": FORWARD, "B": BACKWARD, "labels": LABELS}
_STAMP = 8
"""Bytes of the emulated availability time in front of a stamped payload."""


class PeerFailure(RuntimeSetupError):
    """This process failed because another one did (a dead peer, a message that never came):
    the launcher blames the other process when it can."""


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (return at once if past)."""
    delay = deadline - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


class _Inbound:
    """The posted receives of one inbound transfer, in the stream's order."""

    def __init__(self, order: Sequence[int], total: int) -> None:
        self.order = tuple(order)
        self.total = total
        """Messages in the whole run on this transfer."""
        self.posted = 0
        self.pending: list[tuple[torch.Tensor, Any, int, int]] = []
        """(buffer, work, iteration, micro-batch) in order."""


class Transport:
    """This process's end of the network: posted receives and pending sends per neighbour.

    Parameters
    ----------
    node : str
        The node this process runs.
    ranks : mapping of str to int
        Every node's rank.
    group : ProcessGroup
        The data-plane process group.
    inbound : mapping of Transfer to tuple of int
        Every transfer this node receives on, with the micro-batches of one iteration in
        arrival order (:meth:`pipesl.runtime.program.Program.inbound`).
    shape_of : callable
        ``shape_of(transfer, micro_batch)``: the (shape, dtype) of the tensor it carries.
    iterations : range
        The iterations of the run (to post exactly the receives that will be matched).
    stamped : bool
        Carry the emulated availability time with every message (virtual clock).
    timeout_s : float
        Longest wait for a send or a receive.
    device : torch.device
        Where received tensors live (CPU for gloo).
    auditor : Auditor, optional
        Records every tensor sent and received (test mode).
    padding : mapping of str to int, optional
        Bytes of padding every activation and gradient carries over the link to a neighbour
        (``{neighbour: bytes}``, both ends alike), in the same message: on a kernel-shaped
        link, the link's per-transfer latency turned into wire time, so that it occupies
        the link as in the cost model (see :mod:`pipesl.testbed`).
    """

    def __init__(self, node: str, ranks: Mapping[str, int], group: Any, *,
                 inbound: Mapping[Transfer, Sequence[int]],
                 shape_of: Callable[[Transfer, int], tuple[tuple[int, ...], torch.dtype]],
                 iterations: range, stamped: bool, timeout_s: float,
                 device: torch.device | None = None, auditor: Auditor | None = None,
                 padding: Mapping[str, int] | None = None,
                 ahead: bool | Collection[Transfer] = True) -> None:
        self.node, self.ranks, self.group = node, dict(ranks), group
        self.shape_of = shape_of
        self.iterations = iterations
        self.stamped = stamped
        self.timeout = timedelta(seconds=timeout_s)
        self.timeout_s = timeout_s
        self.device = device or torch.device("cpu")
        self.auditor = auditor
        self._in = {t: _Inbound(order, len(order) * len(iterations))
                    for t, order in inbound.items()}
        self._sends: list[Any] = []
        self._lock = threading.Lock()
        self.padding = dict(padding or {})
        self.ahead = (frozenset(inbound) if ahead is True else frozenset()
                      if ahead is False else frozenset(ahead))
        """The transfers whose next receive is posted as soon as one is taken, so that a
        message lands while the receiver computes; the others are posted when the program
        needs them, as torch.distributed.pipelining does (see
        :func:`pipesl.runtime.program.posted_ahead`). In gloo a receive posted before its
        send lets the sender write at once; one posted after costs a round trip through the
        sender's loop thread, but the data then moves while the receiver waits instead of
        while both ends compute (docs/runtime.md)."""
        self._zeros = {peer: torch.zeros(n, dtype=torch.uint8, device=self.device)
                       for peer, n in self.padding.items() if n > 0}

    def _frame(self, transfer: Transfer, peer: str) -> tuple[int, int]:
        """Bytes of time stamp in front of the payload and of padding behind it."""
        pad = self.padding.get(peer, 0) if transfer.kind != "labels" else 0
        return (_STAMP if self.stamped else 0), pad

    def start(self) -> None:
        """Post the first receive of every inbound transfer posted ahead (:attr:`ahead`)."""
        for transfer, box in self._in.items():
            if transfer in self.ahead and box.total and not box.pending:
                self._post(transfer, box)

    # ------------------------------------------------------------------ sending

    def send(self, transfer: Transfer, iteration: int, micro_batch: int, tensor: torch.Tensor,
             avail: float = 0.0) -> None:
        """Start sending ``tensor`` on ``transfer`` (from ``transfer.sender``, this node)."""
        t = tensor.detach()
        if t.device != self.device:
            t = t.to(self.device)
        t = t.contiguous()
        if self.auditor is not None:
            self.auditor.message("send", transfer.receiver, _KIND_CODE[transfer.kind],
                                 iteration, transfer.route, transfer.position, micro_batch, t,
                                 owner=transfer.owner)
        stamp, pad = self._frame(transfer, transfer.receiver)
        if stamp or pad:
            parts = [t.reshape(-1).view(torch.uint8)]
            if stamp:
                when = torch.tensor([avail], dtype=torch.float64, device=self.device)
                parts.insert(0, when.view(torch.uint8))
            if pad:
                parts.append(self._zeros[transfer.receiver])
            t = torch.cat(parts)
        try:
            work = dist.isend(t, dst=self.ranks[transfer.receiver], group=self.group,
                              tag=transfer.tag)
        except RuntimeError as exc:
            raise PeerFailure(f"{self.node}: sending to {transfer.receiver} failed: "
                              f"{_short(exc)}") from exc
        with self._lock:
            self._sends.append((work, t, transfer.receiver))

    def flush(self) -> None:
        """Wait until every send started so far has completed."""
        with self._lock:
            sends, self._sends = self._sends, []
        for work, _, peer in sends:
            try:
                work.wait(self.timeout)
            except RuntimeError as exc:
                raise PeerFailure(f"{self.node}: sending to {peer} failed: "
                                  f"{_short(exc)}") from exc

    # ------------------------------------------------------------------ receiving

    def _post(self, transfer: Transfer, box: _Inbound) -> None:
        k = box.posted
        it = self.iterations[k // len(box.order)]
        m = box.order[k % len(box.order)]
        shape, dtype = self.shape_of(transfer, m)
        stamp, pad = self._frame(transfer, transfer.sender)
        if stamp or pad:
            nbytes = _numel(shape) * torch.empty((), dtype=dtype).element_size()
            buf = torch.empty(stamp + nbytes + pad, dtype=torch.uint8, device=self.device)
        else:
            buf = torch.empty(shape, dtype=dtype, device=self.device)
        work = dist.irecv(buf, src=self.ranks[transfer.sender], group=self.group,
                          tag=transfer.tag)
        box.pending.append((buf, work, it, m))
        box.posted += 1

    def recv(self, transfer: Transfer, iteration: int, micro_batch: int
             ) -> tuple[torch.Tensor, float]:
        """Wait for micro-batch ``micro_batch`` of ``iteration`` on ``transfer``: the tensor
        and the emulated time it was available (0.0 unless stamped). Receives on one
        transfer must be taken in the stream's order, by one thread.

        Raises
        ------
        PeerFailure
            After ``timeout_s``, or when the connection to the sender failed.
        """
        box = self._in[transfer]
        try:
            if not box.pending:
                self._post(transfer, box)
            buf, work, it, m = box.pending.pop(0)
            assert (it, m) == (iteration, micro_batch), (transfer, it, m, iteration,
                                                         micro_batch)
            if transfer not in self.ahead:
                self.flush()  # as torch's fused send + receive: the sends first
            work.wait(self.timeout)
            if transfer in self.ahead and box.posted < box.total:  # may land meanwhile
                self._post(transfer, box)
        except RuntimeError as exc:
            raise PeerFailure(f"{self.node}: receiving from {transfer.sender} failed: "
                              f"{_short(exc)}") from exc
        avail = 0.0
        stamp, pad = self._frame(transfer, transfer.sender)
        if stamp or pad:
            shape, dtype = self.shape_of(transfer, micro_batch)
            if stamp:
                avail = float(buf[:stamp].view(torch.float64).item())
            end = buf.numel() - pad
            buf = buf[stamp:end].view(dtype).view(shape)
        if self.auditor is not None:
            self.auditor.message("recv", transfer.sender, _KIND_CODE[transfer.kind],
                                 iteration, transfer.route, transfer.position, micro_batch,
                                 buf,
                                 owner=transfer.owner)
        return buf, avail


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
