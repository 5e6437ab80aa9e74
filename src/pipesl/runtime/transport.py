"""Hop-by-hop transport over torch.distributed point-to-point messages, with link emulation.

Messages travel only between neighbours of the network, along the plan's routes: an
activation forward hop by hop, its gradient backward, and (once per batch, when the labels do
not stay on the loss node) the labels from the source along the stage routes. A relay — a
process, or a compute process that lies on another stage's route — forwards what it receives
without computing.

Wire format: per ordered pair of neighbours one *channel*, served by one sender thread and one
receiver thread, so that a message's header and payload are never interleaved with another
message's. The header is a fixed int64 tensor (:data:`HEADER_LEN`): kind, iteration, route,
hop position, micro-batch, emulated availability time, dtype code, number of dimensions, shape.
Every receive waits at most ``timeout_s``; a dead peer fails the run instead of hanging it.

Emulation (SPEC section 3): a transfer of a micro-batch of n samples over a hop occupies the
hop's resource for the planned ``x = 8 * n * out_bytes / bandwidth + latency`` (times the run's
time scale). Each emulated resource is one FIFO :class:`Pacer` thread in the process that owns
it (:attr:`pipesl.runtime.topology.Topology.owners`): a half-duplex link's lower-ranked end
paces both directions — outbound transfers before sending, inbound ones after receiving — and a
full-duplex direction is paced by its sender. A transfer starts at ``max(ready, previous end)``
and the pacer sleeps until ``start + x``, so sleep overshoot does not accumulate along a busy
link. The charged bytes are the profile's ``out_bytes`` (the cost model's), whatever the
tensors' dtype; the labels and the headers are not charged.

Emulated time (``virtual_clock``, local runs only): every message carries the emulated time
at which it is available (the end of the pass that produced it, or of the transfer that
brought it); a receiver starts the next transfer or pass from that time rather than from the
moment its thread actually got the message. The real delivery over loopback and the thread
wake-ups of an oversubscribed host (milliseconds per hop on a loaded 2-core machine) are then
absorbed wherever the next task is longer than them, as they would not exist on the emulated
network; what is not absorbed still shows in the measured time, which is always the source's
wall clock. All processes must share one clock (``time.perf_counter`` is system-wide on one
host), so this is off for multi-host runs. The records keep both times: the emulated one and
the real lag behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from pipesl.exceptions import RuntimeSetupError
from pipesl.runtime.topology import Direction, Hop, Topology

if TYPE_CHECKING:
    from pipesl.runtime.audit import Auditor
    from pipesl.runtime.conditions import Conditions
    from pipesl.runtime.faults import FaultInjector
    from pipesl.runtime.liveness import Liveness

__all__ = [
    "HEADER_LEN",
    "Event",
    "Mailbox",
    "Message",
    "Pacer",
    "PeerFailure",
    "Transport",
    "decode_header",
    "encode_header",
    "sleep_until",
]

logger = logging.getLogger(__name__)

HEADER_LEN = 16
_FIXED = 8
_MAX_DIMS = HEADER_LEN - _FIXED
STOP, FORWARD, BACKWARD, LABELS = 0, 1, 2, 3
_KIND_CODE = {"F": FORWARD, "B": BACKWARD}
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64,
           torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)
_DTYPE_CODE = {d: i for i, d in enumerate(_DTYPES)}
_TAG = 7

Event = tuple[Any, ...]
"""A timing record: ``(what, iteration, ...)`` with absolute ``time.perf_counter`` times."""


class PeerFailure(RuntimeSetupError):
    """This process failed because another one did (a dead peer, a message that never came):
    the launcher blames the other process when it can."""


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``deadline`` (return at once if past)."""
    delay = deadline - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


@dataclass
class Message:
    """One message on a channel."""

    kind: int
    """:data:`FORWARD`, :data:`BACKWARD`, :data:`LABELS` or :data:`STOP`."""
    iteration: int = 0
    route: int = 0
    """Route index; for labels, unused."""
    position: int = 0
    """Hop position along the route (labels: along the label path)."""
    micro_batch: int = 0
    avail: float = 0.0
    """Emulated time (sender's ``perf_counter``) at which the message is available."""
    tensor: torch.Tensor | None = None


def encode_header(msg: Message) -> torch.Tensor:
    """The fixed-size int64 header announcing ``msg`` (and its payload's dtype and shape)."""
    fields = [msg.kind, msg.iteration, msg.route, msg.position, msg.micro_batch,
              round(msg.avail * 1e9), 0, 0]
    shape: tuple[int, ...] = ()
    if msg.tensor is not None:
        shape = tuple(msg.tensor.shape)
        if len(shape) > _MAX_DIMS:
            raise RuntimeSetupError(f"cannot send a tensor of {len(shape)} dimensions; the "
                                    f"transport supports up to {_MAX_DIMS}")
        if msg.tensor.dtype not in _DTYPE_CODE:
            raise RuntimeSetupError(f"cannot send a tensor of dtype {msg.tensor.dtype}")
        fields[6], fields[7] = _DTYPE_CODE[msg.tensor.dtype], len(shape)
    fields += [*shape, *([0] * (_MAX_DIMS - len(shape)))]
    return torch.tensor(fields, dtype=torch.int64)


def decode_header(h: torch.Tensor) -> tuple[Message, torch.dtype, tuple[int, ...]]:
    """Inverse of :func:`encode_header`: the message (without payload), its dtype and shape."""
    v = [int(x) for x in h.tolist()]
    msg = Message(v[0], v[1], v[2], v[3], v[4], v[5] * 1e-9)
    return msg, _DTYPES[v[6]], tuple(v[_FIXED:_FIXED + v[7]])


class Mailbox:
    """Messages delivered to this process's stage or loss role, by key, with arrival times.

    Waits are published as *waiting* on ``liveness`` (see :mod:`pipesl.runtime.liveness`).
    """

    def __init__(self, liveness: Liveness | None = None) -> None:
        self.liveness = liveness
        self._lock = threading.Lock()
        self._slots: dict[tuple[Any, ...], queue.SimpleQueue[tuple[float, Any]]] = {}
        self._error: BaseException | None = None

    def _slot(self, key: tuple[Any, ...]) -> queue.SimpleQueue[tuple[float, Any]]:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = queue.SimpleQueue()
            return slot

    def put(self, key: tuple[Any, ...], value: Any, at: float | None = None) -> None:
        """Deliver ``value`` under ``key``, stamped ``at`` (default: now)."""
        self._slot(key).put((time.perf_counter() if at is None else at, value))

    def fail(self, error: BaseException) -> None:
        """Wake every waiter with ``error``."""
        self._error = error

    def get(self, key: tuple[Any, ...], timeout_s: float, what: str) -> tuple[float, Any]:
        """Wait for the value under ``key``: ``(arrival time, value)``.

        Raises
        ------
        PeerFailure
            After ``timeout_s`` seconds, or when the transport failed.
        """
        if self.liveness is None:
            return self._get(key, timeout_s, what)
        with self.liveness.waiting(what):
            return self._get(key, timeout_s, what)

    def _get(self, key: tuple[Any, ...], timeout_s: float, what: str) -> tuple[float, Any]:
        slot = self._slot(key)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._error is not None:
                raise PeerFailure(f"transport failed while waiting for {what}: "
                                  f"{self._error}") from self._error
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerFailure(f"timed out after {timeout_s:g} s waiting for {what}")
            try:
                item = slot.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            with self._lock:
                self._slots.pop(key, None)
            return item


class Pacer:
    """One emulated resource: a FIFO server that occupies itself for each job's duration.

    ``submit(duration, then, record, ready)``: the job starts at ``max(ready, previous end)``
    (``ready`` defaults to the submission time), the thread sleeps until ``start + duration``,
    then calls ``record(start, end)`` and ``then(end)``.
    """

    def __init__(self, name: str, on_error: Callable[[str], None]) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._free_at = 0.0
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=f"pace {name}", daemon=True)

    def start(self) -> None:
        """Start the server thread."""
        self._thread.start()

    def submit(self, duration: float, then: Callable[[float], None],
               record: Callable[[float, float], None], ready: float | None = None) -> None:
        """Queue a job of ``duration`` seconds, ready at ``ready`` (default: now)."""
        self._queue.put((time.perf_counter() if ready is None else ready, duration, then,
                         record))

    def close(self) -> None:
        """Stop after the queued jobs."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                ready, duration, then, record = item
                start = max(ready, self._free_at)
                end = start + duration
                sleep_until(end)
                self._free_at = end
                record(start, end)
                then(end)
        except BaseException as exc:
            self._on_error(f"pacing {self.name}: {exc!r}")


class _OutChannel:
    """Sends messages to one peer; a lock keeps each header and its payload together.

    :meth:`post` queues a message for the channel's own thread (the compute thread never
    blocks on the network); :meth:`send_now` sends from the calling thread (a pacer, whose
    link is busy anyway), saving a thread hand-off per hop.
    """

    def __init__(self, peer: str, rank: int, group: Any, timeout_s: float, device: torch.device,
                 on_error: Callable[[str], None], auditor: Auditor | None = None,
                 padding: int = 0) -> None:
        self.peer, self.rank, self.group = peer, rank, group
        self.timeout = timedelta(seconds=timeout_s)
        self.device = device
        self.auditor = auditor
        self._padding = torch.zeros(padding, dtype=torch.uint8) if padding > 0 else None
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name=f"send {peer}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def post(self, msg: Message) -> None:
        self._queue.put(msg)

    def close(self) -> None:
        self._queue.put(None)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _send(self, t: torch.Tensor) -> None:
        work = dist.isend(t.to(self.device), dst=self.rank, group=self.group, tag=_TAG)
        assert work is not None
        work.wait(self.timeout)

    def send_now(self, msg: Message) -> None:
        """Send ``msg`` (header, then payload) from the calling thread."""
        with self._lock:
            self._send(encode_header(msg))
            if msg.tensor is not None:
                self._send(msg.tensor.contiguous())
                if self._padding is not None and msg.kind != LABELS:
                    self._send(self._padding)
                if self.auditor is not None:
                    self.auditor.message("send", self.peer, msg.kind, msg.iteration, msg.route,
                                         msg.position, msg.micro_batch, msg.tensor)

    def _run(self) -> None:
        try:
            while True:
                msg = self._queue.get()
                if msg is None:
                    self.send_now(Message(STOP))
                    return
                self.send_now(msg)
        except BaseException as exc:
            self._on_error(f"sending to {self.peer}: {exc}")


class _InChannel:
    """Receives messages from one peer, in order, on one thread, until the peer's STOP."""

    def __init__(self, peer: str, rank: int, group: Any, timeout_s: float, device: torch.device,
                 on_message: Callable[[Message], None], on_error: Callable[[str, bool], None],
                 auditor: Auditor | None = None, padding: int = 0) -> None:
        self.peer, self.rank, self.group = peer, rank, group
        self.timeout = timedelta(seconds=timeout_s)
        self.device = device
        self.auditor = auditor
        self._padding = padding
        self._on_message, self._on_error = on_message, on_error
        self._thread = threading.Thread(target=self._run, name=f"recv {peer}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _recv(self, t: torch.Tensor) -> torch.Tensor:
        work = dist.irecv(t, src=self.rank, group=self.group, tag=_TAG)
        assert work is not None
        work.wait(self.timeout)
        return t

    def _run(self) -> None:
        try:
            header = torch.empty(HEADER_LEN, dtype=torch.int64, device=self.device)
            while True:
                msg, dtype, shape = decode_header(self._recv(header).cpu())
                if msg.kind == STOP:
                    return
                if msg.kind not in (FORWARD, BACKWARD, LABELS):
                    raise RuntimeSetupError(f"unknown message kind {msg.kind}")
                msg.tensor = self._recv(torch.empty(shape, dtype=dtype, device=self.device))
                if self._padding > 0 and msg.kind != LABELS:
                    self._recv(torch.empty(self._padding, dtype=torch.uint8,
                                           device=self.device))
                if self.auditor is not None:
                    self.auditor.message("recv", self.peer, msg.kind, msg.iteration, msg.route,
                                         msg.position, msg.micro_batch, msg.tensor)
                try:
                    self._on_message(msg)
                except BaseException as exc:  # this node's own handling failed, not the peer
                    self._on_error(f"raised {type(exc).__name__}: {exc} (handling a message "
                                   f"from {self.peer})", True)
                    return
        except BaseException as exc:
            self._on_error(f"receiving from {self.peer}: {exc}", False)


class Transport:
    """This process's end of the network: channels to its neighbours, pacers, a mailbox.

    Parameters
    ----------
    topology : Topology
    node : str
        The node this process runs.
    group : ProcessGroup
        The data-plane process group (every rank).
    emulate : bool
        Pace the resources this node owns.
    time_scale : float
        Multiplies every emulated transfer time.
    timeout_s : float
        Longest wait for a send or a receive.
    on_fatal : callable
        ``on_fatal(message, primary)``: ``primary`` is False when the failure is most likely
        a consequence of another process's (a closed connection, a send that timed out).
        Called with a message when a transport thread fails (the worker then exits).
    device : torch.device
        Where received tensors live (CPU for gloo).
    virtual_clock : bool
        Under emulation, time transfers and deliveries from the emulated availability time
        carried by each message (all processes on one host; see the module docstring).
    liveness : Liveness, optional
        Told of every delivery (progress) and every wait of the mailbox.
    auditor : Auditor, optional
        Records every tensor sent and received (test mode, :mod:`pipesl.runtime.audit`).
    faults : FaultInjector, optional
        Checked (phase ``relay``) before this node forwards a message (test mode).
    conditions : Conditions, optional
        Under emulation, the true transfer times under scripted network events
        (:mod:`pipesl.runtime.conditions`); None: the plan's.
    pace_links : bool
        Under emulation, pace the links too (default). False when something else (the
        kernel's traffic shaper, a real link) enforces the bandwidth: passes are still padded,
        transfers go out as soon as they are ready.
    padding : mapping, optional
        Bytes of padding every activation and gradient carries over the link to a neighbour
        (``{neighbour: bytes}``, both ends alike): on a kernel-shaped link, the link's
        per-transfer latency turned into wire time, so that it occupies the link as in the
        cost model (see :mod:`pipesl.testbed`).

    Notes
    -----
    Delivered messages land in :attr:`mailbox` under ``("act", iteration, k, m)`` (the input
    of stage k; k = K is the loss node's input), ``("grad", iteration, k, m)`` (the gradient
    of stage k's output) and ``("labels", iteration)``, stamped with their (emulated)
    arrival time. :meth:`take_events` gives, per transfer, ``("hand", it, step, kind, m, t)``
    when this node handed it to the link, ``("busy", it, step, kind, m, start, end)`` when a
    pacer served it and ``("deliver", it, step, kind, m, t, real)`` when its receiver had it
    (emulated and real times).
    """

    def __init__(self, topology: Topology, node: str, group: Any, *, emulate: bool,
                 time_scale: float, timeout_s: float, on_fatal: Callable[[str, bool], None],
                 device: torch.device | None = None, virtual_clock: bool = False,
                 liveness: Liveness | None = None, auditor: Auditor | None = None,
                 faults: FaultInjector | None = None,
                 conditions: Conditions | None = None, pace_links: bool = True,
                 padding: dict[str, int] | None = None) -> None:
        self.topology = topology
        self.node = node
        self.emulate = emulate and pace_links
        self.virtual = self.emulate and virtual_clock
        self.time_scale = time_scale
        self.timeout_s = timeout_s
        self.liveness = liveness
        self.faults = faults
        self.conditions = conditions
        self.mailbox = Mailbox(liveness)
        self._events: list[Event] = []
        self._events_lock = threading.Lock()
        self._fatal = on_fatal
        device = device or torch.device("cpu")
        peers = topology.neighbours(node)
        pad = padding or {}
        self._out = {p: _OutChannel(p, topology.rank(p), group, timeout_s, device,
                                    self._failed, auditor, pad.get(p, 0)) for p in peers}
        self._in = {p: _InChannel(p, topology.rank(p), group, timeout_s, device,
                                  self._received, self._failed, auditor, pad.get(p, 0))
                    for p in peers}
        self._pacers = {r: Pacer(r, self._failed) for r, owner in topology.owners.items()
                        if owner == node and self.emulate}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start every channel and pacer thread."""
        for p in self._pacers.values():
            p.start()
        for c in self._in.values():
            c.start()
        for o in self._out.values():
            o.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Send STOP on every channel and wait for the peers' STOPs."""
        for p in self._pacers.values():
            p.close()
        for o in self._out.values():
            o.close()
        deadline = time.monotonic() + timeout_s
        for o in self._out.values():
            o.join(max(0.0, deadline - time.monotonic()))
        for c in self._in.values():
            c.join(max(0.0, deadline - time.monotonic()))

    def _failed(self, message: str, primary: bool = False) -> None:
        error = RuntimeSetupError(f"{self.node}: {message}")
        self.mailbox.fail(error)
        self._fatal(message if primary else f"failed: {error}", primary)

    # ------------------------------------------------------------------ sending

    def send(self, kind: Direction, iteration: int, route: int, position: int,
             micro_batch: int, tensor: torch.Tensor, ready: float | None = None) -> None:
        """Start the transfer of ``tensor`` over hop ``position`` of ``route`` from this node.

        ``kind`` "F" sends the activation towards ``route[position + 1]``; "B" sends the
        gradient towards ``route[position]``. ``ready`` is the emulated time the tensor became
        available here (used with the virtual clock; default now).
        """
        hop = self.topology.hops[route][position]
        sender, receiver = hop.ends(kind)
        assert sender == self.node, (sender, self.node)
        now = time.perf_counter()
        ready = ready if (self.virtual and ready is not None) else now
        msg = Message(_KIND_CODE[kind], iteration, route, position, micro_batch, ready,
                      tensor.detach())
        self.record(("hand", iteration, hop.step, kind, micro_batch, ready))
        pacer = self._pacer(hop, kind)
        out = self._out[receiver]
        if pacer is None:
            out.post(msg)
        else:
            def transmit(end: float) -> None:
                msg.avail = end
                out.send_now(msg)

            pacer.submit(self._duration(hop, kind, micro_batch, iteration), transmit,
                         self._recorder(iteration, hop, kind, micro_batch), ready)

    def send_labels(self, iteration: int, labels: torch.Tensor) -> None:
        """From the source: send the batch's labels along the label path (not charged)."""
        path = self.topology.label_path
        assert path[0] == self.node
        if len(path) == 1:
            self.mailbox.put(("labels", iteration), labels)
        else:
            self._out[path[1]].post(Message(LABELS, iteration, tensor=labels))

    # ------------------------------------------------------------------ receiving

    def _pacer(self, hop: Hop, kind: Direction) -> Pacer | None:
        return self._pacers.get(hop.resource(kind)) if self.emulate else None

    def _duration(self, hop: Hop, kind: Direction, micro_batch: int, iteration: int) -> float:
        n = self.topology.sizes[micro_batch]
        if self.conditions is not None:
            return self.conditions.seconds(hop.step, kind, n, iteration,
                                           micro_batch) * self.time_scale
        return hop.duration(kind, n) * self.time_scale

    def _recorder(self, iteration: int, hop: Hop, kind: Direction, micro_batch: int
                  ) -> Callable[[float, float], None]:
        def record(start: float, end: float) -> None:
            self.record(("busy", iteration, hop.step, kind, micro_batch, start, end))
        return record

    def _received(self, msg: Message) -> None:
        if msg.kind == LABELS:
            self._forward_labels(msg)
            return
        kind: Direction = "F" if msg.kind == FORWARD else "B"
        hop = self.topology.hops[msg.route][msg.position]
        pacer = self._pacer(hop, kind)
        if pacer is None:  # paced by the sender (its end is msg.avail), or not emulated
            self._deliver(msg, kind, hop, msg.avail if self.virtual else time.perf_counter())
        else:
            pacer.submit(self._duration(hop, kind, msg.micro_batch, msg.iteration),
                         lambda end: self._deliver(msg, kind, hop, end),
                         self._recorder(msg.iteration, hop, kind, msg.micro_batch),
                         msg.avail if self.virtual else None)

    def _deliver(self, msg: Message, kind: Direction, hop: Hop, at: float) -> None:
        """The transfer is complete here at (emulated) time ``at``: relay it on, or hand it to
        the stage or loss role."""
        if self.liveness is None:
            self._hand_on(msg, kind, hop, at)
            return
        what = "activation" if kind == "F" else "gradient"
        with self.liveness.busy(f"the hand-over of {what} {msg.micro_batch} of iteration "
                                f"{msg.iteration} from {hop.ends(kind)[0]}"):
            self._hand_on(msg, kind, hop, at)
        self.liveness.progress()

    def _hand_on(self, msg: Message, kind: Direction, hop: Hop, at: float) -> None:
        it, m, r, p = msg.iteration, msg.micro_batch, msg.route, msg.position
        self.record(("deliver", it, hop.step, kind, m, at, time.perf_counter()))
        route = self.topology.routes[r]
        assert msg.tensor is not None
        if kind == "F":
            if p + 1 == len(route) - 1:
                self.mailbox.put(("act", it, r + 1, m), msg.tensor, at)
            else:
                self._relay(it, m)
                self.send("F", it, r, p + 1, m, msg.tensor, at)
        elif p == 0:
            self.mailbox.put(("grad", it, r, m), msg.tensor, at)
        else:
            self._relay(it, m)
            self.send("B", it, r, p - 1, m, msg.tensor, at)

    def _relay(self, iteration: int, micro_batch: int) -> None:
        if self.faults is not None:
            self.faults.check(iteration, "relay", micro_batch)

    def _forward_labels(self, msg: Message) -> None:
        path = self.topology.label_path
        q = msg.position + 1
        assert path[q] == self.node
        if q == len(path) - 1:
            assert msg.tensor is not None
            self.mailbox.put(("labels", msg.iteration), msg.tensor)
        else:
            msg.position = q
            self._out[path[q + 1]].post(msg)

    # ------------------------------------------------------------------ records

    def record(self, event: Event) -> None:
        """Add a timing record (thread-safe)."""
        with self._events_lock:
            self._events.append(event)

    def take_events(self, iteration: int) -> list[Event]:
        """Remove and return the records of ``iteration``."""
        with self._events_lock:
            mine = [e for e in self._events if e[1] == iteration]
            self._events[:] = [e for e in self._events if e[1] != iteration]
        return mine
