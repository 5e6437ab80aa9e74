"""The executor: runs a rank's :class:`~pipesl.runtime.program.Program`, iteration by
iteration, against a stage, a link layer and the emulator.

Each lane of the program runs in order on one thread (the stage lane on the calling thread,
the loss and relay lanes on their own), so a rank that only computes — every rank of a plan
without relays — runs its iteration on one thread, with gloo's asynchronous sends and
receives posted ahead underneath (:mod:`pipesl.runtime.transport`). The link layer is anything
with ``send(transfer, iteration, micro_batch, tensor, ready)`` and ``recv(transfer,
iteration, micro_batch) -> (tensor, at)`` (:class:`pipesl.runtime.emulator.Links`, or a fake
in tests).

Every action publishes what it does for the hang detection (busy on a pass or a hand-over,
waiting for a message), checks the fault to inject at its point (test mode) and records its
times (:mod:`pipesl.runtime.records`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from pipesl.runtime.emulator import Emulator
from pipesl.runtime.program import Compute, Lane, Program, Recv, Relay, Send, Transfer
from pipesl.runtime.records import Loss, Pass, Recorder
from pipesl.runtime.stages import Stage

__all__ = ["Executor", "LinkLayer"]


class LinkLayer(Protocol):
    """What the executor needs of the network."""

    def send(self, transfer: Transfer, iteration: int, micro_batch: int, tensor: Any,
             ready: float) -> None: ...

    def recv(self, transfer: Transfer, iteration: int, micro_batch: int
             ) -> tuple[Any, float]: ...


class _Quiet:
    """Liveness and faults when nobody watches (tests)."""

    @contextlib.contextmanager
    def busy(self, what: str) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        yield

    def progress(self) -> None:
        pass

    def check(self, iteration: int, phase: str, micro_batch: int | None = None) -> None:
        pass


@dataclass
class _Iteration:
    """What one iteration's lanes share on a rank."""

    iteration: int
    t0: float
    inputs: torch.Tensor | None
    labels: torch.Tensor | None
    received: dict[tuple[str, int], tuple[torch.Tensor, float]] = field(default_factory=dict)
    produced: tuple[torch.Tensor, float] | None = None
    free_at: float = 0.0


class Executor:
    """Runs one rank's program.

    Parameters
    ----------
    program : Program
    stage : Stage, optional
        The node's compute stage (with the loss when it is the last stage and there is no
        label route).
    stage_index : int, optional
        Its 0-based index k.
    loss : callable, optional
        The loss node's ``loss(output, labels)`` (U-shaped split learning).
    links : LinkLayer
    emulator : Emulator
    recorder : Recorder
    offsets : sequence of int
        Micro-batch m is rows ``offsets[m]:offsets[m + 1]`` of the batch.
    live, faults : optional
        Liveness (:mod:`pipesl.runtime.liveness`) and the fault injector.
    on_error : callable, optional
        Called with the exception as soon as a loss or relay lane fails (the stage lane's
        failures propagate from :meth:`run`).
    """

    def __init__(self, program: Program, *, stage: Stage | None, stage_index: int | None,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
                 links: LinkLayer, emulator: Emulator, recorder: Recorder,
                 offsets: tuple[int, ...], loss_stage: int, live: Any = None,
                 faults: Any = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.program, self.stage, self.k = program, stage, stage_index
        self.loss = loss
        self.links, self.emulator, self.recorder = links, emulator, recorder
        self.offsets = offsets
        self.loss_stage = loss_stage
        """The stage index of the loss node's records (K)."""
        self.live = live if live is not None else _Quiet()
        self.faults = faults if faults is not None else _Quiet()
        self.loss_here = stage is not None and stage.loss is not None
        self.on_error = on_error
        """Called at once when a lane other than the stage lane fails (the worker exits)."""

    def _rows(self, t: torch.Tensor, m: int) -> torch.Tensor:
        return t[self.offsets[m]:self.offsets[m + 1]]

    # ------------------------------------------------------------------ one iteration

    def run(self, iteration: int, t0: float, inputs: torch.Tensor | None = None,
            labels: torch.Tensor | None = None) -> None:
        """Run every lane of the program for ``iteration`` (started at ``t0``); ``inputs``
        on the source, ``labels`` where they are read locally."""
        state = _Iteration(iteration, t0, inputs, labels, free_at=t0)
        lanes = self.program.lanes
        if not lanes:
            return
        run_lanes(lanes, lambda lane: self._lane(lane, state), self.live, self.on_error,
                  iteration)

    def _lane(self, lane: Lane, st: _Iteration) -> None:
        it = st.iteration
        local: dict[str, Any] = {"produced": None}
        for action in lane.actions:
            if isinstance(action, Recv):
                tr, m = action.transfer, action.micro_batch
                what = _describe(tr, m, it)
                with self.live.waiting(what):
                    tensor, at = self.links.recv(tr, it, m)
                if tr.kind == "labels":
                    st.labels = tensor
                else:
                    local[f"{tr.kind}{m}"] = (tensor, at)
                self.live.progress()
            elif isinstance(action, Send):
                tr, m = action.transfer, action.micro_batch
                if tr.kind == "labels":
                    assert st.labels is not None
                    self.links.send(tr, it, m, st.labels, st.t0)
                else:
                    tensor, ready = local["produced"]
                    self.links.send(tr, it, m, tensor, ready)
            elif isinstance(action, Relay):
                self._relay(action, it)
            elif action.kind == "L":
                local["produced"] = self._loss(action, local, st)
            else:
                local["produced"] = self._compute(action, local, st)

    def _relay(self, action: Relay, it: int) -> None:
        tr, m = action.inbound, action.micro_batch
        with self.live.waiting(_describe(tr, m, it)):
            tensor, at = self.links.recv(tr, it, m)
        what = "labels" if tr.kind == "labels" else (
            "activation" if tr.kind == "F" else "gradient")
        with self.live.busy(f"the hand-over of {what} {m} of iteration {it} from "
                            f"{tr.sender}"):
            if tr.kind != "labels":
                self.faults.check(it, "relay", m)
            self.links.send(action.outbound, it, m, tensor, at)
        self.live.progress()

    def _compute(self, action: Compute, local: dict[str, Any], st: _Iteration
                 ) -> tuple[torch.Tensor | None, float]:
        stage, k, it, m = self.stage, self.k, st.iteration, action.micro_batch
        assert stage is not None and k is not None
        emu = self.emulator
        if action.kind == "F":
            if k == 0:
                assert st.inputs is not None
                ready, x = st.t0, self._rows(st.inputs, m)
            else:
                x, ready = local.pop(f"F{m}")
            labels = None
            if self.loss_here:
                assert st.labels is not None
                labels = self._rows(st.labels, m)
            with self.live.busy(f"the forward pass of micro-batch {m}, iteration {it}"):
                self.faults.check(it, "F", m)
                began = time.perf_counter()
                start = emu.window(ready, st.free_at, began)
                out = stage.forward(m, x, labels)
                if labels is not None:
                    self.recorder.add(Loss(it, m, float(out.detach())))
                real = time.perf_counter() - began
                end = emu.pad(start, emu.pass_s(k, "F", it, m)) if emu.devices else (
                    began + real)
            if self.loss_here:
                local[f"B{m}"] = (None, end)  # the backward pass starts from the loss
            produced: torch.Tensor | None = out.detach()
        else:
            grad, ready = local.pop(f"B{m}")
            with self.live.busy(f"the backward pass of micro-batch {m}, iteration {it}"):
                self.faults.check(it, "B", m)
                began = time.perf_counter()
                start = emu.window(ready, st.free_at, began)
                produced = stage.backward(m, grad)
                real = time.perf_counter() - began
                end = emu.pad(start, emu.pass_s(k, "B", it, m)) if emu.devices else (
                    began + real)
        st.free_at = end
        self.live.progress()
        self.recorder.add(Pass(it, k, action.kind, m, start, end, real, began))
        return produced, end

    def _loss(self, action: Compute, local: dict[str, Any], st: _Iteration
              ) -> tuple[torch.Tensor, float]:
        it, m = st.iteration, action.micro_batch
        out, ready = local.pop(f"F{m}")
        assert self.loss is not None and st.labels is not None
        with self.live.busy(f"the loss of micro-batch {m}, iteration {it}"):
            self.faults.check(it, "L", m)
            began = time.perf_counter()
            out.requires_grad_(True)
            loss = self.loss(out, self._rows(st.labels, m))
            loss.backward()
            real = time.perf_counter() - began
        self.live.progress()
        self.recorder.add(Loss(it, m, float(loss.detach())))
        self.recorder.add(Pass(it, self.loss_stage, "L", m, ready, ready, real, began))
        assert out.grad is not None
        return out.grad, ready


def _describe(tr: Transfer, m: int, it: int) -> str:
    if tr.kind == "labels":
        return f"the labels of iteration {it} from {tr.sender}"
    what = "activation" if tr.kind == "F" else "gradient"
    return f"{what} {m} of iteration {it} from {tr.sender}"


def run_lanes(lanes: Sequence[Lane], run_lane: Callable[[Lane], None], live: Any,
              on_error: Callable[[BaseException], None] | None, iteration: int) -> None:
    """Run ``lanes[0]`` here and every other lane on its own thread; join them (marked as
    waiting on ``live``) and re-raise the first failure."""
    failures: list[BaseException] = []
    threads = []
    for lane in lanes[1:]:
        def target(lane: Lane = lane) -> None:
            try:
                run_lane(lane)
            except BaseException as exc:
                failures.append(exc)
                if on_error is not None:
                    on_error(exc)
        threads.append(threading.Thread(target=target, daemon=True,
                                        name=f"{lane.name} {iteration}"))
    for t in threads:
        t.start()
    try:
        run_lane(lanes[0])
    finally:
        if threads:
            with live.waiting(f"the other lanes of iteration {iteration}"):
                for t in threads:
                    t.join()
    if failures:
        raise failures[0]
