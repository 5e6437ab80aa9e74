"""One process of a many-owner run: a node that computes stages of several owners, relays
their streams, or computes their losses.

:func:`run_owners_worker` is the body of every rank spawned by
:func:`pipesl.runtime.owners.launch.train_owners`. Per iteration:

* ``parallel``: every rank meets the others at a barrier (so every owner's iteration starts
  together, as in the simulator), runs its merged program
  (:func:`~pipesl.runtime.owners.program.lower_owners`), and every stage takes one
  optimiser step;
* ``sequential``: the owners take turns (owner 0's iteration, then owner 1's, ...), each turn
  started by a barrier and followed by the optimiser steps of that owner's stages, so a
  ``shared`` server stage is stepped after every owner's turn and carries over to the next.

Models: every stage is built from the same chain (the run's seed), so every owner's replica
starts from the same weights. ``per-owner`` replicas: each owner's stage on a node has its own
module and optimiser. ``shared``: a node's server stage is one module, with one optimiser,
whose gradients accumulate over every owner's backward passes (the sum of the owners'
mean-loss gradients) before its step; each owner's first stage (layers 1..c, on the owner's
own node) stays private. Data: owner o's batches are seeded with ``seed + o``, so owners' data
differ and owner 0's are a single-owner run's.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from pipesl.problem.types import Problem
from pipesl.runtime.config import RunConfig
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.emulator import Links
from pipesl.runtime.liveness import Liveness
from pipesl.runtime.owners.executor import OwnersAuditor, OwnersEmulator, OwnersExecutor
from pipesl.runtime.owners.program import lower_owner, lower_owners
from pipesl.runtime.owners.topology import OwnersTopology
from pipesl.runtime.program import Lane, Program, Transfer
from pipesl.runtime.records import IterationRecords, IterationTimes, Recorder
from pipesl.runtime.stages import ModelInfo, Stage, build_chain, micro_batch_loss, stage_module
from pipesl.runtime.transport import PeerFailure, Transport
from pipesl.runtime.worker import (
    Rendezvous,
    Sink,
    _device,
    _error_text,
    _loopback_interface,
)

__all__ = ["OwnersJob", "run_owners_worker"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnersJob:
    """Everything a rank of a many-owner run needs, identical on every rank (picklable)."""

    problem: Problem
    plans: tuple[Any, ...]
    """Owner o's single-source plan."""
    topology: OwnersTopology
    config: RunConfig
    model: ModelInfo
    data: tuple[DataSpec, ...]
    """Owner o's data."""
    simulated_s: float
    """The simulator's makespan (parallel: the joint iteration; sequential: the round),
    scaled."""
    owner_simulated_s: tuple[float, ...]
    """Parallel: when each owner's last backward ends; sequential: each owner's turn."""
    label_shape: tuple[int, ...] = ()
    label_dtype: str = "int64"
    audit_folder: str | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        """Rank order."""
        return self.topology.nodes

    def roles(self, node: str) -> list[str]:
        """People-readable roles of ``node``."""
        return self.topology.roles(node)


def owner_seed(seed: int, owner: int) -> int:
    """The data seed of owner ``owner``: owner 0 has the run's."""
    return seed + owner


class _Node:
    """One node's process: every owner's stage on it, its programs, transport, emulator."""

    def __init__(self, job: OwnersJob, rank: int, group: Any,
                 fatal: Callable[[str, bool], None], live: Liveness) -> None:
        otopo, cfg = job.topology, job.config
        self.job, self.rank, self.otopo, self.cfg = job, rank, otopo, cfg
        self.node = node = otopo.nodes[rank]
        self.live = live
        n_owners = otopo.num_owners
        self.auditor = (OwnersAuditor(job.audit_folder, node, otopo)
                        if job.audit_folder is not None else None)
        self.batches = {}
        for o, topo in enumerate(otopo.owners):
            if node == topo.source or (topo.labels_local and node == topo.loss_node):
                self.batches[o] = make_batches(job.data[o])
        dtype = getattr(torch, cfg.job.dtype)
        self.device = _device(cfg.transport.backend, rank)
        here = otopo.stages_at(node)
        self.stages: dict[int, Stage] = {}
        self.stage_index: dict[int, int] = {}
        self.modules: list[tuple[tuple[int, ...], Stage]] = []
        """Every distinct module on this node: the owners it serves and the stage that
        steps it."""
        if here:
            chain = build_chain(job.model.ref, cfg.job.seed, dtype, job.problem.model.num_layers)
            shared: dict[tuple[int, int, int], Any] = {}
            for o, role in here:
                topo = otopo.owners[o]
                loss_here = role.index == topo.num_stages - 1 and not topo.has_label_route
                loss = micro_batch_loss(job.model.loss, topo.batch_size)
                key = (role.index, role.first_layer, role.last_layer)
                if otopo.is_shared(role.index) and key in shared:
                    module = shared[key]
                else:
                    module = copy.deepcopy(stage_module(chain, role.first_layer,
                                                        role.last_layer)).to(self.device)
                    if otopo.is_shared(role.index):
                        shared[key] = module
                stage = Stage(module, cfg.training.lr, cfg.training.momentum,
                              loss if loss_here else None, input_grad=role.index > 0)
                self.stages[o], self.stage_index[o] = stage, role.index
                for i, (served, s) in enumerate(self.modules):
                    if s.module is module:
                        self.modules[i] = ((*served, o), s)
                        break
                else:
                    self.modules.append(((o,), stage))
            del chain
        losses = {o: micro_batch_loss(job.model.loss, t.batch_size)
                  for o, t in enumerate(otopo.owners)
                  if t.has_label_route and node == t.loss_node}
        offsets: dict[int, tuple[int, ...]] = {}
        for o, t in enumerate(otopo.owners):
            off = [0]
            for n in t.sizes:
                off.append(off[-1] + n)
            offsets[o] = tuple(off)
        if otopo.mode == "parallel":
            self.turns: list[tuple[tuple[int, ...], Program]] = [
                (tuple(range(n_owners)), lower_owners(otopo)[node])]
        else:
            self.turns = [((o,), lower_owner(otopo, o)[node]) for o in range(n_owners)]
        inbound: dict[Transfer, tuple[int, ...]] = {}
        for _, prog in self.turns:
            inbound.update(prog.inbound())
        parts = cfg.emulated
        virtual = "links" in parts and cfg.emulation.virtual_clock
        self.recorder = Recorder()
        self.emulator = OwnersEmulator(otopo, node, parts, cfg.emulation.time_scale,
                                       on_error=lambda message: fatal(f"failed: {message}",
                                                                      False))
        self.transport = Transport(
            node, {n: i for i, n in enumerate(otopo.nodes)}, group, inbound=inbound,
            shape_of=wire_shapes(job), iterations=range(cfg.training.steps), stamped=virtual,
            timeout_s=cfg.transport.timeout_s, device=self.device, auditor=self.auditor,
            ahead=cfg.transport.post_ahead is not False)  # None: every receive ahead

        def lane_failed(exc: BaseException) -> None:
            fatal(_error_text(exc), not isinstance(exc, PeerFailure))

        self.links = Links(self.transport, self.emulator, self.recorder, live,
                           cfg.transport.timeout_s, virtual, on_error=lane_failed)
        self.executor = OwnersExecutor(
            stages=self.stages, stage_index=self.stage_index, losses=losses, offsets=offsets,
            links=self.links, emulator=self.emulator, recorder=self.recorder,
            loss_stage={o: t.num_stages for o, t in enumerate(otopo.owners)}, live=live,
            on_error=lane_failed)

    def start(self) -> None:
        self.transport.start()
        self.emulator.start()
        self.links.start()

    def close(self) -> None:
        self.links.drain()
        self.emulator.close()

    def collective(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self.live.waiting(what):
            try:
                return fn(*args)
            except RuntimeError as exc:
                raise PeerFailure(f"{self.node}: {what} failed: "
                                  f"{' '.join(str(exc).split())[:300]}") from exc

    def iteration(self, it: int) -> IterationRecords:
        """Run iteration ``it`` (every owner's turn in sequential mode)."""
        first: float | None = None
        times: list[IterationTimes] = []
        for owners, program in self.turns:
            inputs: dict[int, torch.Tensor] = {}
            labels: dict[int, torch.Tensor] = {}
            for o in owners:
                if o in self.batches:  # read before the clock starts (as for one owner)
                    x, y = self.batches[o].batch(it)
                    if self.node == self.otopo.owners[o].source:
                        inputs[o] = x.to(self.device)
                    labels[o] = y.to(self.device)
            self.collective(f"the other workers at the start of iteration {it}", dist.barrier)
            t0 = time.perf_counter()
            first = t0 if first is None else first
            mine = [(served, s) for served, s in self.modules
                    if any(o in owners for o in served)]
            for _, s in mine:
                s.zero_grad()
            self.executor.run(tuple(_nonempty(program.lanes)), it, t0, inputs, labels)
            done = time.perf_counter()
            with self.live.busy(f"the optimiser step of iteration {it}"):
                for _, s in mine:
                    s.step()
            stepped = time.perf_counter()
            with self.live.waiting(f"the sends of iteration {it} to complete"):
                self.links.drain()
            times += [IterationTimes(it, t0, done, stepped, owner=o) for o in owners
                      if self.node == self.otopo.owners[o].source]
        self.live.progress()
        assert first is not None
        return IterationRecords(self.rank, it, first, (*self.recorder.take(it), *times))

    def state(self) -> dict[int, dict[str, torch.Tensor]]:
        """Owner -> the parameters and buffers of its stage on this node (CPU copies)."""
        return {o: {k: v.detach().cpu().clone() for k, v in s.module.state_dict().items()}
                for o, s in self.stages.items()}


def _nonempty(lanes: tuple[Lane, ...]) -> list[Lane]:
    return [lane for lane in lanes if lane.actions]


def wire_shapes(job: OwnersJob) -> Callable[[Transfer, int], tuple[tuple[int, ...],
                                                                    torch.dtype]]:
    """``shape_of(transfer, micro_batch)`` of every owner's streams."""
    dtype = getattr(torch, job.config.job.dtype)
    label_dtype = getattr(torch, job.label_dtype)
    units = job.model.unit_shapes
    topos = job.topology.owners

    def shape_of(transfer: Transfer, m: int) -> tuple[tuple[int, ...], torch.dtype]:
        topo = topos[transfer.owner]
        if transfer.kind == "labels":
            return (topo.batch_size, *job.label_shape), label_dtype
        return (topo.sizes[m], *units[topo.stages[transfer.route].last_layer]), dtype

    return shape_of


def run_owners_worker(job: OwnersJob, rendezvous: Rendezvous, sink: Sink) -> None:
    """The body of one rank of a many-owner run: join the group, run every iteration,
    report each iteration's records to ``sink`` (the launcher)."""
    rank, otopo, cfg = rendezvous.rank, job.topology, job.config
    node = otopo.nodes[rank]
    live = Liveness(rendezvous.board, rank)
    torch.set_num_threads(1)
    if rendezvous.loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        iface = _loopback_interface()
        if iface:
            os.environ["GLOO_SOCKET_IFNAME"] = iface

    def fatal(message: str, primary: bool = True) -> None:
        sink.error(rank, node, message, primary)
        logging.shutdown()
        os._exit(1)

    timeout = timedelta(seconds=cfg.transport.timeout_s)
    try:
        dist.init_process_group("gloo", init_method=rendezvous.init_method, rank=rank,
                                world_size=rendezvous.world_size, timeout=timeout)
        group = (dist.new_group(list(range(rendezvous.world_size)), timeout=timeout,
                                backend=cfg.transport.backend)
                 if cfg.transport.backend != "gloo" else dist.group.WORLD)
        proc = _Node(job, rank, group, fatal, live)
        proc.start()
        live.ready()
        logger.info("rank %d runs %s: %s", rank, node, ", ".join(otopo.roles(node)) or "idle")
        for it in range(cfg.training.steps):
            sink.records(proc.iteration(it))
        state: dict[int, dict[str, torch.Tensor]] | None = None
        if cfg.outputs.return_state:
            mine = proc.state()
            parts: list[Any] | None = [None] * rendezvous.world_size if rank == 0 else None
            proc.collective("the trained parameters", dist.gather_object, mine, parts, 0)
            if rank == 0:
                assert parts is not None
                state = {}
                for part in parts:
                    for o, d in part.items():
                        state.setdefault(o, {}).update(d)
        with live.waiting("the last sends to complete"):
            proc.close()
        if proc.auditor is not None:
            proc.auditor.flush()
        proc.collective("the other workers at the end of the run", dist.barrier)
        live.done()
        if rank == 0:
            sink.done(state)  # type: ignore[arg-type]
    except Exception as exc:
        fatal(_error_text(exc), not isinstance(exc, PeerFailure))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
