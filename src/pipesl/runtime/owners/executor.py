"""Runs a node's many-owner program: every owner's passes on one device, relays, losses.

As :class:`pipesl.runtime.executor.Executor` for one owner — each lane of the program on its
own thread, the stage lane on the calling thread — with every action resolved through its
owner: owner o's stage on this node (its module: its own copy, or the server stage's one
module under ``shared`` replicas), its micro-batch offsets, inputs and labels. The device is
one resource for every owner: under emulation a pass starts at ``max(ready, the end of the
node's previous pass of any owner)``.

:class:`OwnersEmulator` is the emulator of :mod:`pipesl.runtime.emulator` over the union of
the owners' resources (one pacer per shared link, every owner's transfers in its FIFO), with
each owner's planned durations from its topology (:mod:`pipesl.cost`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from pipesl.runtime.audit import Auditor
from pipesl.runtime.emulator import Emulator, Pacer
from pipesl.runtime.executor import LinkLayer, _describe, _Quiet, run_lanes
from pipesl.runtime.owners.topology import OwnersTopology
from pipesl.runtime.program import Compute, Lane, Recv, Relay, Send, Transfer
from pipesl.runtime.records import Loss, Pass, Recorder
from pipesl.runtime.stages import Stage

__all__ = ["OwnersAuditor", "OwnersEmulator", "OwnersExecutor"]


class OwnersEmulator(Emulator):
    """Planned durations and pacers of one node of a many-owner job.

    Parameters
    ----------
    otopo : OwnersTopology
    node : str
    parts : frozenset of str
        Emulated parts (``links``, ``devices``).
    time_scale : float
    on_error : callable, optional
    """

    def __init__(self, otopo: OwnersTopology, node: str, parts: frozenset[str],
                 time_scale: float, on_error: Callable[[str], None] | None = None) -> None:
        self.otopo = otopo
        self.topology, self.node = otopo.owners[0], node
        self.devices = "devices" in parts
        self.links = "links" in parts
        self.scale = time_scale
        self.conditions = None
        self._on_error = on_error or (lambda message: None)
        self.pacers = {r: Pacer(r, self._on_error) for r, who in otopo.pacing.items()
                       if who == node and self.links}

    def owner_pass_s(self, owner: int, stage: int, kind: str, micro_batch: int) -> float:
        """Planned duration of owner ``owner``'s stage ``stage`` pass (scaled)."""
        topo = self.otopo.owners[owner]
        st, n = topo.stages[stage], topo.sizes[micro_batch]
        return (st.forward(n) if kind == "F" else st.backward(n)) * self.scale

    def transfer_time(self, transfer: Transfer, iteration: int, micro_batch: int) -> float:
        """Planned x of ``transfer`` of its owner (scaled)."""
        topo = self.otopo.owners[transfer.owner]
        hop = topo.hops[transfer.route][transfer.position]
        return hop.duration("F" if transfer.kind == "F" else "B",
                            topo.sizes[micro_batch]) * self.scale

    def pacer(self, transfer: Transfer) -> Pacer | None:
        """The pacer of ``transfer``'s resource when this node paces it."""
        if not self.pacers or transfer.kind == "labels":
            return None
        hop = self.otopo.owners[transfer.owner].hops[transfer.route][transfer.position]
        return self.pacers.get(hop.resource("F" if transfer.kind == "F" else "B"))


class OwnersAuditor(Auditor):
    """The transport audit of one node, each record with its owner's layer."""

    def __init__(self, folder: str, node: str, otopo: OwnersTopology) -> None:
        super().__init__(folder, node, otopo.owners[0])
        self.otopo = otopo

    def _layer(self, owner: int, route: int) -> int:
        return self.otopo.owners[owner].stages[route].last_layer


@dataclass
class _Iteration:
    iteration: int
    t0: float
    inputs: dict[int, torch.Tensor]
    labels: dict[int, torch.Tensor]
    free_at: float = 0.0
    local: dict[tuple[int, str, int], tuple[Any, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class OwnersExecutor:
    """Runs one node's lanes for every owner.

    Parameters
    ----------
    stages : dict of int to Stage
        Owner -> that owner's stage on this node (its loss when it ends in it).
    stage_index : dict of int to int
        Owner -> its stage's 0-based index.
    losses : dict of int to callable
        Owner -> ``loss(output, labels)`` where this node is its U-shaped loss node.
    offsets : dict of int to tuple of int
        Owner -> micro-batch m is rows ``offsets[m]:offsets[m + 1]`` of its batch.
    links : LinkLayer
    emulator : OwnersEmulator
    recorder : Recorder
    live : optional
        Liveness (:mod:`pipesl.runtime.liveness`).
    on_error : callable, optional
        Called at once when a lane other than the stage lane fails.
    """

    def __init__(self, *, stages: dict[int, Stage], stage_index: dict[int, int],
                 losses: dict[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]],
                 offsets: dict[int, tuple[int, ...]], links: LinkLayer,
                 emulator: OwnersEmulator, recorder: Recorder, loss_stage: dict[int, int],
                 live: Any = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.stages, self.k, self.losses = stages, stage_index, losses
        self.offsets, self.links, self.emulator = offsets, links, emulator
        self.recorder, self.loss_stage = recorder, loss_stage
        self.live = live if live is not None else _Quiet()
        self.on_error = on_error

    def _rows(self, t: torch.Tensor, owner: int, m: int) -> torch.Tensor:
        off = self.offsets[owner]
        return t[off[m]:off[m + 1]]

    def run(self, lanes: tuple[Lane, ...], iteration: int, t0: float,
            inputs: dict[int, torch.Tensor], labels: dict[int, torch.Tensor]) -> None:
        """Run ``lanes`` (a node's program, or one owner's turn of it) for ``iteration``
        started at ``t0``; ``inputs`` of the owners whose source this is, ``labels`` where
        they are read locally."""
        state = _Iteration(iteration, t0, dict(inputs), dict(labels), free_at=t0)
        if not lanes:
            return
        run_lanes(lanes, lambda lane: self._lane(lane, state), self.live, self.on_error,
                  iteration)

    def _lane(self, lane: Lane, st: _Iteration) -> None:
        it = st.iteration
        produced: tuple[Any, float] | None = None
        for action in lane.actions:
            if isinstance(action, Recv):
                tr, m = action.transfer, action.micro_batch
                with self.live.waiting(_describe(tr, m, it)):
                    tensor, at = self.links.recv(tr, it, m)
                if tr.kind == "labels":
                    st.labels[tr.owner] = tensor
                else:
                    with st.lock:
                        st.local[(tr.owner, tr.kind, m)] = (tensor, at)
                self.live.progress()
            elif isinstance(action, Send):
                tr, m = action.transfer, action.micro_batch
                if tr.kind == "labels":
                    self.links.send(tr, it, m, st.labels[tr.owner], st.t0)
                else:
                    assert produced is not None
                    self.links.send(tr, it, m, produced[0], produced[1])
            elif isinstance(action, Relay):
                tr, m = action.inbound, action.micro_batch
                with self.live.waiting(_describe(tr, m, it)):
                    tensor, at = self.links.recv(tr, it, m)
                self.links.send(action.outbound, it, m, tensor, at)
                self.live.progress()
            elif action.kind == "L":
                produced = self._loss(action, st)
            else:
                produced = self._compute(action, st)

    def _take(self, st: _Iteration, key: tuple[int, str, int]) -> tuple[Any, float]:
        with st.lock:
            return st.local.pop(key)

    def _compute(self, action: Compute, st: _Iteration) -> tuple[torch.Tensor | None, float]:
        o, m, it = action.owner, action.micro_batch, st.iteration
        stage, k, emu = self.stages[o], self.k[o], self.emulator
        if action.kind == "F":
            if k == 0:
                ready, x = st.t0, self._rows(st.inputs[o], o, m)
            else:
                x, ready = self._take(st, (o, "F", m))
            labels = self._rows(st.labels[o], o, m) if stage.loss is not None else None
            with self.live.busy(f"owner {o}'s forward pass of micro-batch {m}, iteration "
                                f"{it}"):
                began = time.perf_counter()
                start = emu.window(ready, st.free_at, began)
                out = stage.forward(m, x, labels)
                if labels is not None:
                    self.recorder.add(Loss(it, m, float(out.detach()), owner=o))
                real = time.perf_counter() - began
                end = emu.pad(start, emu.owner_pass_s(o, k, "F", m)) if emu.devices else (
                    began + real)
            if stage.loss is not None:
                with st.lock:
                    st.local[(o, "B", m)] = (None, end)
            produced: torch.Tensor | None = out.detach()
        else:
            grad, ready = self._take(st, (o, "B", m))
            with self.live.busy(f"owner {o}'s backward pass of micro-batch {m}, iteration "
                                f"{it}"):
                began = time.perf_counter()
                start = emu.window(ready, st.free_at, began)
                produced = stage.backward(m, grad)
                real = time.perf_counter() - began
                end = emu.pad(start, emu.owner_pass_s(o, k, "B", m)) if emu.devices else (
                    began + real)
        st.free_at = end
        self.live.progress()
        self.recorder.add(Pass(it, k, action.kind, m, start, end, real, began, owner=o))
        return produced, end

    def _loss(self, action: Compute, st: _Iteration) -> tuple[torch.Tensor, float]:
        o, m, it = action.owner, action.micro_batch, st.iteration
        out, ready = self._take(st, (o, "F", m))
        with self.live.busy(f"owner {o}'s loss of micro-batch {m}, iteration {it}"):
            began = time.perf_counter()
            out.requires_grad_(True)
            loss = self.losses[o](out, self._rows(st.labels[o], o, m))
            loss.backward()
            real = time.perf_counter() - began
        self.live.progress()
        self.recorder.add(Loss(it, m, float(loss.detach()), owner=o))
        self.recorder.add(Pass(it, self.loss_stage[o], "L", m, ready, ready, real, began,
                               owner=o))
        assert out.grad is not None
        return out.grad, ready
