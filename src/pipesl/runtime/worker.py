"""One process of a run: a network node that computes a stage, relays, or computes the loss.

:func:`run_worker` is the body of every rank, whether spawned locally by
:func:`pipesl.runtime.launch.train` or started by ``torchrun`` through ``pipesl worker``.
Every rank lowers the schedule table to its own program (:mod:`pipesl.runtime.program`)
and, per iteration,

1. runs it (:class:`~pipesl.runtime.executor.Executor`): the source's stage lane starts with
   the labels' send when they travel; compute stages run their table order; a U-shaped loss
   node computes the loss of each micro-batch as its output arrives; relays hand every
   message on;
2. compute stages take one optimiser step over the gradients accumulated on every
   micro-batch, and write their units' checkpoint files when one is due
   (:mod:`pipesl.runtime.checkpoint`);
3. reports that iteration's typed records (:mod:`pipesl.runtime.records`) in one message:
   to the launcher on local runs, which assembles the report and writes the checkpoint's
   manifest; under torchrun to rank 0 (a gather), which does the same.

No barrier separates iterations on one host (the schedule orders everything through the
messages); ranks on several hosts meet at one before each iteration, which lines up their
clocks' records to within its skew. Every rank publishes what it is doing for the launcher's
hang detection (:mod:`pipesl.runtime.liveness`); test runs may inject a fault
(:mod:`pipesl.runtime.faults`) or audit every tensor that crosses a hop
(:mod:`pipesl.runtime.audit`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from pipesl.exceptions import RuntimeSetupError
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.runtime import checkpoint as ckpt
from pipesl.runtime.audit import Auditor
from pipesl.runtime.conditions import Conditions
from pipesl.runtime.config import RunConfig
from pipesl.runtime.control import Control, agree_to_stop
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.emulator import Emulator, Links
from pipesl.runtime.executor import Executor
from pipesl.runtime.faults import FaultInjector, FaultSpec
from pipesl.runtime.liveness import Board, Liveness
from pipesl.runtime.program import Transfer, lower, posted_ahead
from pipesl.runtime.records import IterationRecords, IterationTimes, Recorder, shifted
from pipesl.runtime.report import IterationReport, assemble_iteration
from pipesl.runtime.stages import ModelInfo, Stage, build_chain, micro_batch_loss, stage_module
from pipesl.runtime.topology import Topology
from pipesl.runtime.transport import PeerFailure, Transport

__all__ = ["Job", "Rendezvous", "Sink", "finish_iteration", "run_worker", "wire_shapes"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Job:
    """Everything a rank needs, identical on every rank (picklable)."""

    problem: Problem
    plan: Plan
    topology: Topology
    config: RunConfig
    model: ModelInfo
    data: DataSpec
    simulated_s: float
    """The simulator's makespan (scaled)."""
    analytic_s: float
    """T(plan, b) (scaled)."""
    resources: tuple[str, ...]
    """Row order of the traces: the simulated trace's resources."""
    start_iteration: int = 0
    """The first iteration to run: the checkpoint's when resuming, else 0."""
    resume_folder: str | None = None
    """The checkpoint to resume from (:mod:`pipesl.runtime.checkpoint`)."""
    resume_manifest: dict[str, Any] | None = field(default=None, repr=False)
    resume_lost: int | None = None
    """Iterations the stopped run completed after that checkpoint (None: unknown)."""
    checkpoint_meta: dict[str, Any] = field(default_factory=dict, repr=False)
    """What a checkpoint's manifest records about the run (and a resume must match)."""
    fault: FaultSpec | None = None
    """Test mode: the fault to inject (:mod:`pipesl.runtime.faults`)."""
    audit_folder: str | None = None
    """Test mode: where every process writes its audit records."""
    conditions: Conditions | None = None
    """Emulation under scripted network events: the true durations of passes and transfers
    and the departures to play (:mod:`pipesl.runtime.conditions`); None: the plan's."""
    stoppable: bool = False
    """The launcher decides after every iteration whether the run goes on
    (:mod:`pipesl.runtime.control`); every rank then agrees before each iteration."""
    label_shape: tuple[int, ...] = ()
    """Per-sample shape of the labels (what travels when they do)."""
    label_dtype: str = "int64"


@dataclass(frozen=True)
class Rendezvous:
    """How a rank joins the process group."""

    init_method: str
    """``file://...`` (local runs), ``tcp://host:port`` or ``env://`` (torchrun)."""
    rank: int
    world_size: int
    loopback: bool = True
    """Bind gloo's sockets to the loopback interface (local runs)."""
    board: Board | None = None
    """Where this rank publishes its liveness to the launcher (local runs)."""
    control: Control | None = None
    """Rank 0 of a stoppable run: the launcher's verdicts (:mod:`pipesl.runtime.control`)."""


class Sink:
    """Where a rank sends its results and its failure (overridden by the launcher).

    With :attr:`collects_records` every rank sends its records of each iteration to
    :meth:`records` (the launcher assembles them); without, rank 0 gathers them and sends
    the assembled report to :meth:`iteration` (torchrun).
    """

    collects_records = False

    def records(self, records: IterationRecords) -> None:
        """One rank's records of one iteration (when :attr:`collects_records`)."""

    def iteration(self, report: IterationReport) -> None:
        """An iteration is complete (rank 0, when not :attr:`collects_records`)."""

    def done(self, state: dict[str, Any] | None) -> None:
        """The run is complete (rank 0); ``state`` with ``return_state``."""

    def error(self, rank: int, node: str, message: str, primary: bool = True) -> None:
        """A rank failed; ``primary`` is False when most likely because another one did."""
        logger.error("rank %d (%s) failed: %s", rank, node, message)


def _device(backend: str, rank: int) -> torch.device:
    """CPU for gloo; for nccl this rank's GPU (``LOCAL_RANK``, else rank modulo the GPUs)."""
    if backend != "nccl":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeSetupError("backend nccl needs CUDA GPUs; use --backend gloo on CPUs")
    local = int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count()))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def _loopback_interface() -> str | None:
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:  # pragma: no cover - platforms without if_nameindex
        return None
    for name in names:
        if name == "lo" or name.startswith("lo0"):
            return name
    return None


def wire_shapes(job: Job) -> Callable[[Transfer, int], tuple[tuple[int, ...], torch.dtype]]:
    """``shape_of(transfer, micro_batch)``: the shape and dtype of what a transfer carries
    (route r carries stage r's output and its gradient; the labels the whole batch's)."""
    topo = job.topology
    dtype = getattr(torch, job.config.job.dtype)
    label_dtype = getattr(torch, job.label_dtype)
    units = job.model.unit_shapes

    def shape_of(transfer: Transfer, m: int) -> tuple[tuple[int, ...], torch.dtype]:
        if transfer.kind == "labels":
            return (topo.batch_size, *job.label_shape), label_dtype
        last = topo.stages[transfer.route].last_layer
        return (topo.sizes[m], *units[last]), dtype

    return shape_of


class _Node:
    """One node's process: its stage, program, transport, emulator and executor."""

    def __init__(self, job: Job, rank: int, group: Any, fatal: Callable[[str, bool], None],
                 one_host: bool, live: Liveness) -> None:
        topo, cfg = job.topology, job.config
        self.job, self.rank, self.topo, self.cfg = job, rank, topo, cfg
        self.node = topo.nodes[rank]
        self.live = live
        departure = (job.conditions.departure_fault(self.node, topo, job.start_iteration)
                     if job.conditions is not None else None)
        self.faults = FaultInjector([f for f in (job.fault, departure) if f is not None],
                                    self.node)
        self.auditor = (Auditor(job.audit_folder, self.node, topo)
                        if job.audit_folder is not None else None)
        role = topo.stage_of(self.node)
        self.role = role
        self.holds_labels = topo.labels_local and self.node == topo.loss_node
        self.batches = (make_batches(job.data)
                        if self.node == topo.source or self.holds_labels else None)
        self.device = _device(cfg.transport.backend, rank)
        loss = micro_batch_loss(job.model.loss, topo.batch_size)
        self.stage: Stage | None = None
        if role is not None:
            chain = build_chain(job.model.ref, cfg.job.seed, getattr(torch, cfg.job.dtype),
                                job.problem.model.num_layers)
            module = stage_module(chain, role.first_layer, role.last_layer).to(self.device)
            del chain
            loss_here = role.index == topo.num_stages - 1 and not topo.has_label_route
            self.stage = Stage(module, cfg.training.lr, cfg.training.momentum,
                               loss if loss_here else None, input_grad=role.index > 0)
            if job.resume_folder is not None and job.resume_manifest is not None:
                rng = ckpt.load_stage(job.resume_folder, job.resume_manifest, module,
                                      self.stage.optimizer, role.first_layer)
                logger.info("%s: stage %d resumed from %s%s", self.node, role.index + 1,
                            job.resume_folder, " (with its RNG state)" if rng else "")
        offsets = [0]
        for n in topo.sizes:
            offsets.append(offsets[-1] + n)
        self.program = lower(topo)[self.node]
        parts = cfg.emulated
        virtual = "links" in parts and cfg.emulation.virtual_clock and one_host
        self.one_host = one_host
        self.recorder = Recorder()
        self.emulator = Emulator(topo, self.node, parts, cfg.emulation.time_scale, job.conditions,
                                 on_error=lambda message: fatal(f"failed: {message}", False))
        self.transport = Transport(
            self.node, {n: i for i, n in enumerate(topo.nodes)}, group,
            inbound=self.program.inbound(), shape_of=wire_shapes(job),
            iterations=range(job.start_iteration, cfg.training.steps), stamped=virtual,
            timeout_s=cfg.transport.timeout_s, device=self.device, auditor=self.auditor,
            padding=cfg.padding_of(self.node),
            ahead=(posted_ahead(self.program, topo, "devices" in parts)
                   if cfg.transport.post_ahead is None else cfg.transport.post_ahead))
        def lane_failed(exc: BaseException) -> None:
            fatal(_error_text(exc), not isinstance(exc, PeerFailure))

        self.links = Links(self.transport, self.emulator, self.recorder, live,
                           cfg.transport.timeout_s, virtual, on_error=lane_failed)
        self.executor = Executor(
            self.program, stage=self.stage, stage_index=None if role is None else role.index,
            loss=loss if topo.has_label_route and self.node == topo.loss_node else None,
            links=self.links, emulator=self.emulator, recorder=self.recorder,
            offsets=tuple(offsets), loss_stage=topo.num_stages, live=live, faults=self.faults,
            on_error=lane_failed)

    def start(self) -> None:
        self.transport.start()  # before any thread takes a receive
        self.emulator.start()
        self.links.start()

    def close(self) -> None:
        self.links.drain()
        self.emulator.close()

    def collective(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a collective of the process group, marked as waiting for ``what``; a failure
        there is a peer's (:class:`PeerFailure`)."""
        with self.live.waiting(what):
            try:
                return fn(*args, **kwargs)
            except RuntimeError as exc:
                raise PeerFailure(f"{self.node}: {what} failed: "
                                  f"{' '.join(str(exc).split())[:300]}") from exc

    # ------------------------------------------------------------------ one iteration

    def iteration(self, it: int) -> IterationRecords:
        """Run iteration ``it``; this rank's records of it and the checkpoint files it
        wrote after it."""
        inputs = labels = None
        if self.batches is not None:  # read before the clock starts (not in the cost model)
            x, y = self.batches.batch(it)
            inputs, labels = x.to(self.device), y.to(self.device)
        if not self.one_host:
            self.collective(f"the other workers at the start of iteration {it}", dist.barrier)
        t0 = time.perf_counter()
        if self.stage is not None:
            self.stage.zero_grad()
        self.executor.run(it, t0, inputs if self.node == self.topo.source else None, labels)
        done = time.perf_counter()
        if self.stage is not None:
            with self.live.busy(f"the optimiser step of iteration {it}"):
                self.faults.check(it, "step")
                self.stage.step()
        stepped = time.perf_counter()
        files = self.save_checkpoint(it)
        with self.live.waiting(f"the sends of iteration {it} to complete"):
            self.links.drain()
        records = self.recorder.take(it)
        if self.node == self.topo.source:
            records += (IterationTimes(it, t0, done, stepped),)
        self.live.progress()
        return IterationRecords(self.rank, it, t0, records, tuple(files))

    def checkpoint_on_stop(self, completed: int) -> None:
        """Stopped before iteration ``completed``: make sure a complete checkpoint holds the
        state after it (written now unless one was due after the last iteration)."""
        cfg = self.cfg
        if cfg.checkpoint.folder is None or completed % cfg.checkpoint.every == 0:
            return
        files: list[ckpt.UnitFile] = []
        if self.stage is not None and self.role is not None:
            with self.live.busy(f"the checkpoint after {completed} iterations"):
                files = ckpt.save_stage(cfg.checkpoint.folder, completed, self.stage.module,
                                        self.stage.optimizer, self.role.first_layer,
                                        self.node)
        gathered: list[Any] | None = [None] * len(self.topo.nodes) if self.rank == 0 else None
        self.collective("rank 0 to gather the checkpoint on stop", dist.gather_object, files,
                        gathered, dst=0)
        if self.rank == 0:
            assert gathered is not None
            with self.live.busy(f"the checkpoint manifest after {completed} iterations"):
                ckpt.write_manifest(cfg.checkpoint.folder, completed, ckpt.unit_files(gathered),
                                    self.job.problem.model.num_layers, self.job.checkpoint_meta)

    def save_checkpoint(self, it: int) -> list[ckpt.UnitFile]:
        """After iteration ``it``: write this stage's unit files when a checkpoint is due."""
        cfg = self.cfg
        due = (it + 1) % cfg.checkpoint.every == 0 or it == cfg.training.steps - 1
        if cfg.checkpoint.folder is None or not due or self.stage is None or self.role is None:
            return []
        with self.live.busy(f"the checkpoint of iteration {it}"):
            files = ckpt.save_stage(cfg.checkpoint.folder, it + 1, self.stage.module,
                                    self.stage.optimizer, self.role.first_layer, self.node)
            self.faults.check(it, "checkpoint")
        return files

    def state(self) -> dict[str, torch.Tensor]:
        """This stage's parameters and buffers (CPU copies)."""
        if self.stage is None:
            return {}
        return {k: v.detach().cpu().clone()
                for k, v in self.stage.module.state_dict().items()}


def _watch_self(live: Liveness, hang_timeout_s: float,
                fatal: Callable[[str, bool], None]) -> None:
    """Without a launcher (torchrun): exit when this process is hung (liveness rule 1)."""
    while True:
        time.sleep(min(1.0, hang_timeout_s / 4))
        stuck = live.stuck(hang_timeout_s)
        if stuck is not None:
            fatal(f"hung: {stuck}", True)
            return


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, RuntimeSetupError):
        return f"failed: {exc}"
    return f"raised {type(exc).__name__}: {exc}"


def run_worker(job: Job, rendezvous: Rendezvous, sink: Sink, exit_on_fatal: bool = True,
               one_host: bool = True, self_watch: bool = False) -> None:
    """The body of one rank: join the group, run every iteration, report.

    Parameters
    ----------
    job : Job
    rendezvous : Rendezvous
    sink : Sink
        Where this rank reports its records (or rank 0 each iteration), the end of the run
        and its failure.
    exit_on_fatal : bool
        When a pacer or a lane fails, exit the process at once (``os._exit(1)``) so that the
        launcher or torchrun tears the job down instead of waiting for collectives.
    one_host : bool
        Every rank runs on this host (one clock): the emulation may use the virtual clock.
    self_watch : bool
        Exit when this rank has been busy on one task for ``config.liveness.hang_timeout_s`` (for
        torchrun, where no launcher watches the ranks).
    """
    rank, topo, cfg = rendezvous.rank, job.topology, job.config
    node = topo.nodes[rank]
    live = Liveness(rendezvous.board, rank)
    torch.set_num_threads(1)
    if rendezvous.loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        iface = _loopback_interface()
        if iface:
            os.environ["GLOO_SOCKET_IFNAME"] = iface

    def fatal(message: str, primary: bool = True) -> None:
        sink.error(rank, node, message, primary)
        if exit_on_fatal:
            logging.shutdown()
            os._exit(1)

    timeout = timedelta(seconds=cfg.transport.timeout_s)
    try:
        logger.debug("rank %d (%s): joining the process group", rank, node)
        dist.init_process_group("gloo", init_method=rendezvous.init_method, rank=rank,
                                world_size=rendezvous.world_size, timeout=timeout)
        group = (dist.new_group(list(range(rendezvous.world_size)), timeout=timeout,
                                backend=cfg.transport.backend)
                 if cfg.transport.backend != "gloo" else dist.group.WORLD)
        logger.debug("rank %d (%s): joined; building the node", rank, node)
        proc = _Node(job, rank, group, fatal, one_host, live)
        proc.start()
        live.ready()
        if self_watch:
            threading.Thread(target=_watch_self, args=(live, cfg.liveness.hang_timeout_s, fatal),
                             name="watchdog", daemon=True).start()
        logger.info("rank %d runs %s: %s", rank, node, ", ".join(topo.roles(node)) or "idle")
        _iterations(proc, job, rendezvous, sink)
        state: dict[str, Any] | None = None
        if cfg.outputs.return_state:
            mine = proc.state()
            if rank != 0 and proc.auditor is not None and mine:
                proc.auditor.control("trained parameters", "parameters", topo.source, None,
                                     mine)
            parts: list[Any] | None = [None] * rendezvous.world_size if rank == 0 else None
            proc.collective("the trained parameters", dist.gather_object, mine, parts, dst=0)
            if rank == 0:
                assert parts is not None
                state = {k: v for part in parts for k, v in part.items()}
        with live.waiting("the last sends to complete"):
            proc.close()
        if proc.auditor is not None:
            proc.auditor.flush()
        proc.collective("the other workers at the end of the run", dist.barrier)
        live.done()
        if rank == 0:
            sink.done(state)
        logger.debug("rank %d (%s): done", rank, node)
    except Exception as exc:
        fatal(_error_text(exc), not isinstance(exc, PeerFailure))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        logger.debug("rank %d (%s): left the process group", rank, node)


def _iterations(proc: _Node, job: Job, rendezvous: Rendezvous, sink: Sink) -> None:
    """Every iteration of the run, each reported as one message of records."""
    rank, topo, cfg = rendezvous.rank, job.topology, job.config
    for it in range(job.start_iteration, cfg.training.steps):
        if job.stoppable and it > job.start_iteration and agree_to_stop(
                rendezvous.control, rank, it, cfg.transport.timeout_s, proc.live, proc.collective):
            logger.info("rank %d (%s): stopping before iteration %d (launcher's decision)",
                        rank, proc.node, it)
            proc.checkpoint_on_stop(it)
            return
        records = proc.iteration(it)
        to = "the launcher" if sink.collects_records else topo.source
        if rank != 0 and proc.auditor is not None:
            proc.auditor.control(f"timing records of iteration {it}", "control", to, it,
                                 records)
        if sink.collects_records:
            sink.records(records)
            continue
        gathered: list[Any] | None = [None] * rendezvous.world_size if rank == 0 else None
        proc.collective(f"rank 0 to gather the records of iteration {it}",
                        dist.gather_object, records, gathered, dst=0)
        if rank == 0:
            assert gathered is not None
            sink.iteration(finish_iteration(job, gathered, proc.one_host, proc.live))


def finish_iteration(job: Job, parts: list[IterationRecords], one_host: bool,
                     live: Liveness | None = None) -> IterationReport:
    """Every rank's records of one iteration in, its report out; the checkpoint's manifest
    (when the stages wrote one) and the progress file written first (the launcher, or rank 0
    under torchrun).

    One host, one clock: every record on the source's timeline. Else each process's records
    count from its own start (aligned to within the start barrier's skew).
    """
    cfg, topo = job.config, job.topology
    parts = sorted(parts, key=lambda p: p.rank)
    it = parts[0].iteration
    if cfg.checkpoint.folder is not None:
        busy = (live.busy(f"the checkpoint manifest of iteration {it}") if live is not None
                else contextlib.nullcontext())
        with busy:
            reported = ckpt.unit_files([list(p.files) for p in parts])
            if reported:
                ckpt.write_manifest(cfg.checkpoint.folder, it + 1, reported,
                                    job.problem.model.num_layers, job.checkpoint_meta)
            ckpt.write_progress(cfg.checkpoint.folder, it + 1)
    origin = parts[0].start
    merged = [r for p in parts for r in shifted(p.records, origin if one_host else p.start)]
    report = assemble_iteration(topo, job.resources, it, merged, job.simulated_s,
                                job.analytic_s)
    return replace(report, started_s=origin)
