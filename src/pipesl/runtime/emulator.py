"""The emulator: every planned duration and every pacer of a rank, in one place.

Locally, emulation makes a handful of processes behave like the problem's devices and links
(SPEC section 3); each part can be switched on or off (``RunConfig.emulation``:
``links,devices``, ``links``, ``devices`` or ``none``), e.g. links off when the kernel shapes
real links (netem) and only the devices need their planned speed.

* **Devices**: a pass of micro-batch m that becomes ready at ``r`` on a node free at ``f``
  occupies the node over ``[max(r, f), max(r, f) + planned]``; the process computes for real,
  then sleeps to the end of the window (:meth:`Emulator.pad`). A pass whose real compute
  exceeds its planned time *overruns* and ends late.
* **Links**: a transfer occupies its hop's resource for ``x = 8 * n * out_bytes / bandwidth +
  latency`` times the time scale. Each resource is one FIFO :class:`Pacer` thread in the
  process that owns it (:attr:`pipesl.runtime.topology.Topology.owners`): a half-duplex link's
  lower-ranked end paces both directions — outbound transfers before sending, inbound ones
  after receiving — and a full-duplex direction is paced by its sender. A transfer starts at
  ``max(ready, previous end)`` and the pacer sleeps until ``start + x``, so sleep overshoot
  does not accumulate along a busy link.
* **Virtual clock** (links emulated, every rank on one host): a message carries the emulated
  time at which it is available, and the next transfer or pass starts from that time rather
  than from the moment the process really got it (:mod:`pipesl.runtime.transport`).

Under scripted network events (:mod:`pipesl.runtime.conditions`) the durations are the
changed network's; else the plan's (:mod:`pipesl.cost` through the topology).

:class:`Links` is this node's side of the network as the executor sees it: the transport,
with the pacing of the links this node owns and the timing records of every transfer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipesl.runtime.config import EMULATE_PARTS, parse_emulate
from pipesl.runtime.program import Transfer
from pipesl.runtime.records import Deliver, Hand, LinkBusy, Recorder
from pipesl.runtime.topology import Hop, Topology
from pipesl.runtime.transport import PeerFailure, Transport, sleep_until

if TYPE_CHECKING:
    from pipesl.runtime.conditions import Conditions
    from pipesl.runtime.liveness import Liveness

__all__ = ["EMULATE_PARTS", "Emulator", "Links", "Pacer", "parse_emulate"]


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


class Emulator:
    """A rank's planned durations and pacers.

    Parameters
    ----------
    topology : Topology
    node : str
    parts : frozenset of str
        The emulated parts (:func:`parse_emulate`).
    time_scale : float
        Multiplies every emulated duration.
    conditions : Conditions, optional
        True durations under scripted network events.
    on_error : callable
        Called with a message when a pacer fails.
    """

    def __init__(self, topology: Topology, node: str, parts: frozenset[str], time_scale: float,
                 conditions: Conditions | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.topology, self.node = topology, node
        self.devices = "devices" in parts
        self.links = "links" in parts
        self.scale = time_scale
        self.conditions = conditions
        self._on_error = on_error or (lambda message: None)
        self.pacers = {r: Pacer(r, self._on_error) for r, owner in topology.owners.items()
                       if owner == node and self.links}

    def start(self) -> None:
        for p in self.pacers.values():
            p.start()

    def close(self) -> None:
        for p in self.pacers.values():
            p.close()

    # ------------------------------------------------------------------ durations

    def pass_s(self, stage: int, kind: str, iteration: int, micro_batch: int) -> float:
        """Planned duration of stage ``stage``'s pass ``kind`` of a micro-batch (scaled)."""
        st = self.topology.stages[stage]
        n = self.topology.sizes[micro_batch]
        if self.conditions is not None:
            base = self.conditions.seconds(st.step, kind, n, iteration, micro_batch)
        else:
            base = st.forward(n) if kind == "F" else st.backward(n)
        return base * self.scale

    def transfer_s(self, hop: Hop, kind: str, iteration: int, micro_batch: int) -> float:
        """Planned x of a transfer over ``hop`` in direction ``kind`` (scaled)."""
        n = self.topology.sizes[micro_batch]
        if self.conditions is not None:
            base = self.conditions.seconds(hop.step, kind, n, iteration, micro_batch)
        else:
            base = hop.duration("F" if kind == "F" else "B", n)
        return base * self.scale

    def transfer_time(self, transfer: Transfer, iteration: int, micro_batch: int) -> float:
        """Planned x of ``transfer`` (its hop and direction) for a micro-batch (scaled)."""
        hop = self.topology.hops[transfer.route][transfer.position]
        return self.transfer_s(hop, transfer.kind, iteration, micro_batch)

    # ------------------------------------------------------------------ devices

    def window(self, ready: float, free_at: float, began: float) -> float:
        """Start of a pass's window: ``max(ready, free_at)`` on an emulated device, else the
        moment the real computation began."""
        return max(ready, free_at) if self.devices else began

    def pad(self, start: float, planned_s: float) -> float:
        """Sleep to the end of the pass's window ``[start, start + planned]`` (at once when
        the real compute overran it, or when devices are not emulated); the window's end."""
        now = time.perf_counter()
        if not self.devices:
            return now
        end = max(start + planned_s, now)
        sleep_until(end)
        return end

    # ------------------------------------------------------------------ links

    def pacer(self, transfer: Transfer) -> Pacer | None:
        """The pacer of ``transfer``'s resource when this node paces it."""
        if not self.pacers or transfer.kind == "labels":
            return None
        hop = self.topology.hops[transfer.route][transfer.position]
        return self.pacers.get(hop.resource("F" if transfer.kind == "F" else "B"))


class Links:
    """This node's side of the network for the executor: send and receive per transfer, with
    the pacing of the links it owns and a record of every transfer.

    Receives on a link this node paces *after* receiving (a half-duplex link whose
    lower-ranked end is this receiver) are taken by one thread per such transfer as soon as
    they land, so that they enter the link's FIFO in arrival order, as the simulator's.
    """

    def __init__(self, transport: Transport, emulator: Emulator, recorder: Recorder,
                 live: Liveness | None, timeout_s: float, virtual: bool,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.transport, self.emulator, self.recorder = transport, emulator, recorder
        self.live, self.timeout_s = live, timeout_s
        self.virtual = virtual
        """Start transfers and passes from the emulated time carried by each message."""
        self.topology = emulator.topology
        self._pending = 0
        self._idle = threading.Condition()
        self._boxes: dict[Transfer, queue.SimpleQueue[Any]] = {}
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._on_error = on_error
        for transfer, order in transport._in.items():
            if transfer.receiver == emulator.node and emulator.pacer(transfer) is not None:
                self._boxes[transfer] = queue.SimpleQueue()
                self._threads.append(threading.Thread(
                    target=self._pace_in, args=(transfer, order.total), daemon=True,
                    name=f"pace-in {transfer.sender}"))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    # ------------------------------------------------------------------ sending

    def send(self, transfer: Transfer, iteration: int, micro_batch: int, tensor: Any,
             ready: float) -> None:
        """Hand ``tensor`` to the link (``ready``: when it was available here)."""
        if transfer.kind == "labels":
            self.transport.send(transfer, iteration, micro_batch, tensor, ready)
            return
        now = time.perf_counter()
        ready = ready if self.virtual else now
        self.recorder.add(Hand(iteration, transfer.step, transfer.kind, micro_batch, ready,
                              transfer.owner))
        pacer = self.emulator.pacer(transfer)
        if pacer is None:
            self.transport.send(transfer, iteration, micro_batch, tensor, ready)
            return
        with self._idle:
            self._pending += 1

        def transmit(end: float) -> None:
            try:
                self.transport.send(transfer, iteration, micro_batch, tensor, end)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

        pacer.submit(self.emulator.transfer_time(transfer, iteration, micro_batch),
                     transmit, self._busy(transfer, iteration, micro_batch), ready)

    def _busy(self, transfer: Transfer, iteration: int, micro_batch: int
              ) -> Callable[[float, float], None]:
        def record(start: float, end: float) -> None:
            self.recorder.add(LinkBusy(iteration, transfer.step, transfer.kind, micro_batch,
                                       start, end, transfer.owner))
        return record

    def drain(self) -> None:
        """Wait until every paced send has left and every send has completed."""
        deadline = time.monotonic() + self.timeout_s
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerFailure(f"{self.emulator.node}: paced sends still queued after "
                                      f"{self.timeout_s:g} s")
                self._idle.wait(min(left, 0.25))
        self.transport.flush()

    # ------------------------------------------------------------------ receiving

    def recv(self, transfer: Transfer, iteration: int, micro_batch: int) -> tuple[Any, float]:
        """The tensor of ``transfer`` and when it was delivered here (emulated time with the
        virtual clock)."""
        box = self._boxes.get(transfer)
        if box is None:
            tensor, avail = self.transport.recv(transfer, iteration, micro_batch)
            real = time.perf_counter()
            at = avail if self.virtual else real
            if transfer.kind != "labels":
                self.recorder.add(Deliver(iteration, transfer.step, transfer.kind,
                                          micro_batch, at, real, transfer.owner))
            return tensor, at
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self._error is not None:
                raise PeerFailure(f"{self.emulator.node}: {self._error}") from self._error
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerFailure(f"timed out after {self.timeout_s:g} s waiting for "
                                  f"micro-batch {micro_batch} from {transfer.sender}")
            try:
                it, m, tensor, at = box.get(timeout=min(left, 0.25))
            except queue.Empty:
                continue
            assert (it, m) == (iteration, micro_batch)
            return tensor, at

    def _pace_in(self, transfer: Transfer, total: int) -> None:
        """Take every message of ``transfer`` as it lands and pace it on the link."""
        box = self._boxes[transfer]
        pacer = self.emulator.pacer(transfer)
        assert pacer is not None
        order = self.transport._in[transfer].order
        iterations = self.transport.iterations
        try:
            for k in range(total):
                it, m = iterations[k // len(order)], order[k % len(order)]
                tensor, avail = self.transport.recv(transfer, it, m)

                def deliver(end: float, it: int = it, m: int = m, tensor: Any = tensor) -> None:
                    self.recorder.add(Deliver(it, transfer.step, transfer.kind, m, end,
                                              time.perf_counter(), transfer.owner))
                    box.put((it, m, tensor, end))
                    if self.live is not None:
                        self.live.progress()

                pacer.submit(self.emulator.transfer_time(transfer, it, m),
                             deliver, self._busy(transfer, it, m),
                             avail if self.virtual else None)
        except BaseException as exc:
            self._error = exc
            if self._on_error is not None:
                self._on_error(exc)
