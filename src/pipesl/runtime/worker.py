"""One process of a run: a network node that computes a stage, relays, or computes the loss.

:func:`run_worker` is the body of every rank, whether spawned locally by
:func:`pipesl.runtime.launch.train` or started by ``torchrun`` through ``pipesl worker``.
Per iteration, every rank

1. meets the others at a barrier and starts its clock;
2. the source sends the batch's labels along the stage routes (when the loss node does not
   hold them itself) and every compute stage executes its schedule's action list
   (:attr:`~pipesl.schedules.ScheduleTable.orders`), the very list the simulator runs; a
   U-shaped loss node computes the loss of each micro-batch as its output arrives and sends
   the gradient back; relays only forward (in their transport threads);
3. compute stages take one optimiser step over the gradients accumulated on every
   micro-batch, and write their units' checkpoint files when one is due
   (:mod:`pipesl.runtime.checkpoint`);
4. everybody sends its timing records (and checkpoint files) to rank 0 (the source), which
   assembles the iteration's report and writes the checkpoint's manifest.

Every rank publishes what it is doing — busy on a pass, waiting for a message — for the
launcher's hang detection (:mod:`pipesl.runtime.liveness`); test runs may inject a fault
(:mod:`pipesl.runtime.faults`) or audit every tensor that crosses a hop
(:mod:`pipesl.runtime.audit`).

Emulated compute: a pass that becomes ready at ``r`` on a node free at ``f`` occupies the
node over ``[max(r, f), max(r, f) + planned]``; the process computes for real, then sleeps to
the end of that window. So the node's timeline is the planned one as long as the real compute
fits in the planned time (else the pass overruns and is counted).
"""

from __future__ import annotations

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
from pipesl.runtime.faults import FaultInjector, FaultSpec
from pipesl.runtime.liveness import Board, Liveness
from pipesl.runtime.report import IterationReport, assemble_iteration, relative_events
from pipesl.runtime.stages import ModelInfo, build_chain, micro_batch_loss, stage_module
from pipesl.runtime.topology import Topology
from pipesl.runtime.transport import Event, PeerFailure, Transport, sleep_until

__all__ = ["Job", "Rendezvous", "Sink", "run_worker"]

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
    """Where rank 0 sends results and any rank its failure (overridden by the launcher)."""

    def iteration(self, report: IterationReport) -> None:
        """An iteration is complete (rank 0)."""

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


class _NodeProcess:
    """The roles of one node in one process: its stage, its loss role, its transport."""

    def __init__(self, job: Job, rank: int, group: Any, fatal: Callable[[str, bool], None],
                 virtual_clock: bool, live: Liveness) -> None:
        topo, cfg = job.topology, job.config
        self.job, self.rank, self.topo, self.cfg = job, rank, topo, cfg
        self.node = topo.nodes[rank]
        self.live = live
        departure = (job.conditions.departure_fault(self.node, topo, job.start_iteration)
                     if job.conditions is not None else None)
        self.faults = FaultInjector([f for f in (job.fault, departure) if f is not None],
                                    self.node)
        self.conditions = job.conditions
        self.auditor = (Auditor(job.audit_folder, self.node, topo)
                        if job.audit_folder is not None else None)
        self.stage = topo.stage_of(self.node)
        self.k_total = topo.num_stages
        self.loss_role = self.node == topo.loss_node and topo.has_label_route
        self.loss_at_stage = (self.stage is not None and self.stage.index == self.k_total - 1
                              and not topo.has_label_route)
        self.emulate, self.scale = cfg.emulate, cfg.time_scale
        self.timeout = cfg.timeout_s
        dtype = getattr(torch, cfg.dtype)
        holds_labels = topo.labels_local and self.node == topo.loss_node
        self.batches = (make_batches(job.data)
                        if self.node == topo.source or holds_labels else None)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.device = _device(cfg.backend, rank)
        self.holds_labels = holds_labels
        self.loss = micro_batch_loss(job.model.loss, topo.batch_size)
        self.module: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        if self.stage is not None:
            chain = build_chain(job.model.ref, cfg.seed, dtype, job.problem.model.num_layers)
            self.module = stage_module(chain, self.stage.first_layer,
                                       self.stage.last_layer).to(self.device)
            del chain
            self.module.train()
            params = [p for p in self.module.parameters() if p.requires_grad]
            if params:
                self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
            if job.resume_folder is not None and job.resume_manifest is not None:
                rng = ckpt.load_stage(job.resume_folder, job.resume_manifest, self.module,
                                      self.optimizer, self.stage.first_layer)
                logger.info("%s: stage %d resumed from %s%s", self.node, self.stage.index + 1,
                            job.resume_folder, " (with its RNG state)" if rng else "")
        offsets = [0]
        for n in topo.sizes:
            offsets.append(offsets[-1] + n)
        self.offsets = offsets
        self.transport = Transport(topo, self.node, group, emulate=self.emulate,
                                   time_scale=self.scale, timeout_s=self.timeout,
                                   on_fatal=fatal, device=self.device,
                                   virtual_clock=virtual_clock, liveness=live,
                                   auditor=self.auditor, faults=self.faults,
                                   conditions=job.conditions)

    # ------------------------------------------------------------------ helpers

    def prefetch(self, it: int) -> None:
        """Read batch ``it`` before the iteration's clock starts (the data loader is not part
        of the cost model)."""
        self._batch = None
        if self.batches is not None:
            x, y = self.batches.batch(it)
            self._batch = (x.to(self.device), y.to(self.device))

    def _labels(self, it: int) -> torch.Tensor:
        if self.holds_labels:
            assert self._batch is not None
            return self._batch[1]
        _, y = self.transport.mailbox.get(("labels", it), self.timeout,
                                          f"the labels of iteration {it} on {self.node}")
        return y

    def collective(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a collective of the process group, marked as waiting for ``what``; a failure
        there is a peer's (:class:`PeerFailure`)."""
        with self.live.waiting(what):
            try:
                return fn(*args, **kwargs)
            except RuntimeError as exc:
                raise PeerFailure(f"{self.node}: {what} failed: "
                                  f"{' '.join(str(exc).split())[:300]}") from exc

    def _slice(self, t: torch.Tensor, m: int) -> torch.Tensor:
        return t[self.offsets[m]:self.offsets[m + 1]]

    def _planned(self, kind: str, n: int, it: int, m: int) -> float:
        """The emulated duration of this stage's pass ``kind`` of micro-batch ``m``."""
        st = self.stage
        assert st is not None
        if self.conditions is not None:
            return self.conditions.seconds(st.step, kind, n, it, m)
        return st.forward(n) if kind == "F" else st.backward(n)

    def _pad(self, start: float, planned: float) -> float:
        """Sleep to the end of the pass's window; return the window's end."""
        if not self.emulate:
            return time.perf_counter()
        end = max(start + planned * self.scale, time.perf_counter())
        sleep_until(end)
        return end

    # ------------------------------------------------------------------ roles

    def run_stage(self, it: int, t0: float, inputs: torch.Tensor | None) -> None:
        """Execute this stage's action list for iteration ``it``."""
        st, topo, mod = self.stage, self.topo, self.module
        assert st is not None and mod is not None
        k = st.index
        mailbox = self.transport.mailbox
        saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        forward_end: dict[int, float] = {}
        labels: torch.Tensor | None = None
        free_at = t0
        out_route = k  # route k leaves stage k (the label route when k = K - 1)
        for kind, m in topo.table.orders[k]:
            n = topo.sizes[m]
            if kind == "F":
                if k == 0:
                    assert inputs is not None
                    ready, x = t0, self._slice(inputs, m)
                else:
                    ready, x = mailbox.get(("act", it, k, m), self.timeout,
                                           f"activation {m} of iteration {it} for stage "
                                           f"{k + 1} on {self.node}")
                    x.requires_grad_(True)
                if self.loss_at_stage and labels is None:
                    labels = self._labels(it)
                with self.live.busy(f"the forward pass of micro-batch {m}, iteration {it}"):
                    self.faults.check(it, "F", m)
                    c0 = time.perf_counter()
                    start = max(ready, free_at) if self.emulate else c0
                    out = mod(x)
                    if labels is not None:
                        out = self.loss(out, self._slice(labels, m))
                        self.transport.record(("loss", it, m, float(out.detach())))
                    real = time.perf_counter() - c0
                    end = self._pad(start, self._planned("F", n, it, m))
                saved[m] = (x, out)
                forward_end[m] = end
                if not self.loss_at_stage:
                    self.transport.send("F", it, out_route, 0, m, out, end)
            else:
                x, out = saved.pop(m)
                if self.loss_at_stage:
                    ready, grad = forward_end.pop(m), None
                else:
                    ready, grad = mailbox.get(("grad", it, k, m), self.timeout,
                                              f"gradient {m} of iteration {it} for stage "
                                              f"{k + 1} on {self.node}")
                with self.live.busy(f"the backward pass of micro-batch {m}, iteration {it}"):
                    self.faults.check(it, "B", m)
                    c0 = time.perf_counter()
                    start = max(ready, free_at) if self.emulate else c0
                    if out.requires_grad:  # a first stage without parameters has no graph
                        out.backward(grad)
                    real = time.perf_counter() - c0
                    end = self._pad(start, self._planned("B", n, it, m))
                if k > 0:
                    assert x.grad is not None
                    prev = topo.routes[k - 1]
                    self.transport.send("B", it, k - 1, len(prev) - 2, m, x.grad, end)
            free_at = end
            self.live.progress()
            self.transport.record(("compute", it, k, kind, m, start, end, real, c0))

    def run_loss(self, it: int) -> None:
        """U-shaped loss node: the loss of every micro-batch, its gradient sent back."""
        topo, mailbox = self.topo, self.transport.mailbox
        k_loss = self.k_total
        route = topo.routes[k_loss - 1]
        labels = self._labels(it)
        for m in range(topo.num_micro_batches):
            ready, out = mailbox.get(("act", it, k_loss, m), self.timeout,
                                     f"output {m} of iteration {it} at the loss node "
                                     f"{self.node}")
            with self.live.busy(f"the loss of micro-batch {m}, iteration {it}"):
                self.faults.check(it, "L", m)
                c0 = time.perf_counter()
                out.requires_grad_(True)
                loss = self.loss(out, self._slice(labels, m))
                loss.backward()
                real = time.perf_counter() - c0
            self.live.progress()
            self.transport.record(("loss", it, m, float(loss.detach())))
            self.transport.record(("compute", it, k_loss, "L", m, ready, ready, real, c0))
            assert out.grad is not None
            self.transport.send("B", it, k_loss - 1, len(route) - 2, m, out.grad, ready)

    # ------------------------------------------------------------------ one iteration

    def iteration(self, it: int) -> tuple[list[Event], float, list[ckpt.UnitFile]]:
        """Run iteration ``it``; return this process's records, its start time and the
        checkpoint files it wrote after the iteration (if any)."""
        self.prefetch(it)
        self.collective(f"the other workers at the start of iteration {it}", dist.barrier)
        t0 = time.perf_counter()
        inputs = None
        if self.node == self.topo.source:
            assert self._batch is not None
            inputs, labels = self._batch
            if not self.topo.labels_local:
                self.transport.send_labels(it, labels)
        failure: list[BaseException] = []
        loss_thread = None
        if self.loss_role:
            def target() -> None:
                try:
                    self.run_loss(it)
                except BaseException as exc:
                    failure.append(exc)
            loss_thread = threading.Thread(target=target, name="loss", daemon=True)
            loss_thread.start()
        if self.stage is not None:
            if self.optimizer is not None:
                self.optimizer.zero_grad(set_to_none=True)
            self.run_stage(it, t0, inputs)
        if loss_thread is not None:
            with self.live.waiting(f"the losses of iteration {it}"):
                loss_thread.join()
            if failure:
                raise failure[0]
        done = time.perf_counter()
        if self.stage is not None:
            with self.live.busy(f"the optimiser step of iteration {it}"):
                self.faults.check(it, "step")
                if self.optimizer is not None:
                    self.optimizer.step()
        stepped = time.perf_counter()
        files = self.save_checkpoint(it)
        # Every transfer of the iteration has completed and been recorded.
        self.collective(f"the other workers at the end of iteration {it}", dist.barrier)
        events = self.transport.take_events(it)
        if self.node == self.topo.source:
            events += [("done", it, done), ("stepped", it, stepped)]
        self.live.progress()
        return events, t0, files

    def checkpoint_on_stop(self, completed: int) -> None:
        """Stopped before iteration ``completed``: make sure a complete checkpoint holds the
        state after it (written now unless one was due after the last iteration)."""
        cfg = self.cfg
        if cfg.checkpoint_dir is None or completed % cfg.checkpoint_every == 0:
            return
        files: list[ckpt.UnitFile] = []
        if self.stage is not None:
            assert self.module is not None
            with self.live.busy(f"the checkpoint after {completed} iterations"):
                files = ckpt.save_stage(cfg.checkpoint_dir, completed, self.module,
                                        self.optimizer, self.stage.first_layer, self.node)
        gathered: list[Any] | None = [None] * len(self.topo.nodes) if self.rank == 0 else None
        self.collective("rank 0 to gather the checkpoint on stop", dist.gather_object, files,
                        gathered, dst=0)
        if self.rank == 0:
            assert gathered is not None
            with self.live.busy(f"the checkpoint manifest after {completed} iterations"):
                ckpt.write_manifest(cfg.checkpoint_dir, completed, ckpt.unit_files(gathered),
                                    self.job.problem.model.num_layers, self.job.checkpoint_meta)

    def save_checkpoint(self, it: int) -> list[ckpt.UnitFile]:
        """After iteration ``it``: write this stage's unit files when a checkpoint is due."""
        cfg = self.cfg
        due = (it + 1) % cfg.checkpoint_every == 0 or it == cfg.steps - 1
        if cfg.checkpoint_dir is None or not due or self.stage is None:
            return []
        assert self.module is not None
        with self.live.busy(f"the checkpoint of iteration {it}"):
            files = ckpt.save_stage(cfg.checkpoint_dir, it + 1, self.module, self.optimizer,
                                    self.stage.first_layer, self.node)
            self.faults.check(it, "checkpoint")
        return files

    def state(self) -> dict[str, torch.Tensor]:
        """This stage's parameters and buffers (CPU copies)."""
        if self.module is None:
            return {}
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}


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
    """The body of one rank: join the group, run every iteration, report to rank 0.

    Parameters
    ----------
    job : Job
    rendezvous : Rendezvous
    sink : Sink
        Rank 0 reports each iteration and the end of the run to it; any rank its failure.
    exit_on_fatal : bool
        When a transport thread fails, exit the process at once (``os._exit(1)``) so that the
        launcher or torchrun tears the job down instead of waiting for collectives.
    one_host : bool
        Every rank runs on this host (one clock): the emulation may use the virtual clock.
    self_watch : bool
        Exit when this rank has been busy on one task for ``config.hang_timeout_s`` (for
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

    timeout = timedelta(seconds=cfg.timeout_s)
    try:
        logger.debug("rank %d (%s): joining the process group", rank, node)
        dist.init_process_group("gloo", init_method=rendezvous.init_method, rank=rank,
                                world_size=rendezvous.world_size, timeout=timeout)
        group = dist.new_group(list(range(rendezvous.world_size)), timeout=timeout,
                               backend=cfg.backend)
        logger.debug("rank %d (%s): joined; building the node", rank, node)
        proc = _NodeProcess(job, rank, group, lambda m, p: fatal(m, p),
                            cfg.virtual_clock and one_host, live)
        proc.transport.start()
        live.ready()
        if self_watch:
            threading.Thread(target=_watch_self, args=(live, cfg.hang_timeout_s, fatal),
                             name="watchdog", daemon=True).start()
        logger.info("rank %d runs %s: %s", rank, node, ", ".join(topo.roles(node)) or "idle")
        _iterations(proc, job, rendezvous, sink, one_host)
        state: dict[str, Any] | None = None
        if cfg.return_state:
            mine = proc.state()
            if rank != 0 and proc.auditor is not None and mine:
                proc.auditor.control("trained parameters", "parameters", topo.source, None,
                                     mine)
            parts: list[Any] | None = [None] * rendezvous.world_size if rank == 0 else None
            proc.collective("the trained parameters", dist.gather_object, mine, parts, dst=0)
            if rank == 0:
                assert parts is not None
                state = {k: v for part in parts for k, v in part.items()}
        logger.debug("rank %d (%s): closing", rank, node)
        with live.waiting("the neighbours to close their channels"):
            proc.transport.close(timeout_s=min(cfg.timeout_s, 30.0))
        if proc.auditor is not None:
            proc.auditor.flush()
        logger.debug("rank %d (%s): closed", rank, node)
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


def _iterations(proc: _NodeProcess, job: Job, rendezvous: Rendezvous, sink: Sink,
                one_host: bool) -> None:
    """Every iteration of the run; rank 0 assembles the reports and writes the manifests."""
    rank, topo, cfg = rendezvous.rank, job.topology, job.config
    for it in range(job.start_iteration, cfg.steps):
        if job.stoppable and it > job.start_iteration and agree_to_stop(
                rendezvous.control, rank, it, cfg.timeout_s, proc.live, proc.collective):
            logger.info("rank %d (%s): stopping before iteration %d (launcher's decision)",
                        rank, proc.node, it)
            proc.checkpoint_on_stop(it)
            return
        logger.debug("rank %d (%s): iteration %d", rank, proc.node, it)
        events, t0, files = proc.iteration(it)
        if rank != 0 and proc.auditor is not None:
            proc.auditor.control(f"timing records of iteration {it}", "control", topo.source,
                                 it, (events, t0, files))
        gathered: list[Any] | None = [None] * rendezvous.world_size if rank == 0 else None
        proc.collective(f"rank 0 to gather the records of iteration {it}",
                        dist.gather_object, (events, t0, files), gathered, dst=0)
        if rank != 0:
            continue
        assert gathered is not None
        if cfg.checkpoint_dir is not None:
            with proc.live.busy(f"the checkpoint manifest of iteration {it}"):
                reported = ckpt.unit_files([part[2] for part in gathered])
                if reported:
                    ckpt.write_manifest(cfg.checkpoint_dir, it + 1, reported,
                                        job.problem.model.num_layers, job.checkpoint_meta)
                ckpt.write_progress(cfg.checkpoint_dir, it + 1)
        # One host, one clock: every record on the source's timeline. Else each process's
        # records from its own start (aligned to within the barrier's skew).
        origin = gathered[0][1]
        merged = [e for events, t_start, _ in gathered
                  for e in relative_events(events, origin if one_host else t_start)]
        report = assemble_iteration(topo, job.resources, it, merged, job.simulated_s,
                                    job.analytic_s)
        sink.iteration(replace(report, started_s=origin))
