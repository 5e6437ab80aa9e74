"""Start a run: one process per network node of the plan, locally or under torchrun.

* :func:`train` spawns every rank on this machine (``spawn`` start method, gloo, every socket
  on loopback, a file rendezvous in a private temporary folder), watches them
  (:mod:`pipesl.runtime.supervise`), and returns a :class:`~pipesl.runtime.report.TrainResult`.
  A rank that dies, raises or hangs ends the whole run with
  :class:`~pipesl.runtime.liveness.WorkerFailure` naming the node; no process is left behind
  (each worker also dies with the launcher, through ``PR_SET_PDEATHSIG`` on Linux).
* :func:`run_torchrun_worker` is one rank of a multi-host job started by ``torchrun`` (the
  standard ``MASTER_ADDR``/``MASTER_PORT``/``RANK``/``WORLD_SIZE`` environment); the rank
  runs the plan's node of the same index in :attr:`Topology.nodes`, or the host's
  ``host_nodes[LOCAL_RANK]``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from pipesl.exceptions import ProblemError, RuntimeSetupError
from pipesl.plan import Plan, plan_to_dict
from pipesl.problem.events import NetworkScript
from pipesl.problem.types import Problem
from pipesl.runtime import checkpoint as ckpt
from pipesl.runtime.audit import AuditReport, check_audit, collect_audit
from pipesl.runtime.conditions import Conditions
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.control import Control
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.faults import FAULT_ENV, FaultSpec, parse_fault
from pipesl.runtime.liveness import Board
from pipesl.runtime.records import IterationRecords
from pipesl.runtime.report import IterationReport, TrainResult, summarise
from pipesl.runtime.stages import inspect_model
from pipesl.runtime.supervise import Supervisor, stop_processes
from pipesl.runtime.topology import Topology, build_topology
from pipesl.runtime.worker import Job, Rendezvous, Sink, finish_iteration, run_worker
from pipesl.sim import simulate

if TYPE_CHECKING:
    from pipesl.runtime.pool import WorkerPool

__all__ = ["PipeChannel", "make_job", "pooled_entry", "run_torchrun_worker", "train"]

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_job(problem: Problem, plan: Plan, config: RunConfig | None = None, *,
             dataset: Any = None, events: NetworkScript | None = None,
             truth: Problem | None = None, stoppable: bool = False) -> Job:
    """Validate everything a run needs and describe it as a :class:`Job`.

    Checks the plan, the schedule, the model (units against the profile's layers), the data,
    the fault to inject and the checkpoint folder (the checkpoint to resume from) before any
    process starts; computes the predictions (simulated makespan for the actual micro-batch
    sizes, analytic T), scaled by the time scale under emulation.

    ``events`` (under emulation) changes the emulated network during the run, relative to
    ``truth`` (default ``problem``): the planner's ``problem`` only predicts
    (:mod:`pipesl.runtime.conditions`). ``stoppable``: the launcher may stop the run at an
    iteration boundary (:mod:`pipesl.runtime.control`).

    Raises
    ------
    PlanError, ProblemError
        Naming what is wrong.
    """
    cfg = build_config(config)
    topology = build_topology(problem, plan, cfg.training.schedule)
    info = inspect_model(problem, cfg.job.model)
    if dataset is not None and not (hasattr(dataset, "__getitem__")
                                    and hasattr(dataset, "__len__")):
        raise ProblemError("dataset", "must be a map-style torch Dataset of (input, label)",
                           type(dataset).__name__)
    data = DataSpec(kind="dataset" if dataset is not None else cfg.job.data,
                    batch_size=problem.training.batch_size, sample_shape=info.sample_shape,
                    num_classes=info.num_classes, tokens=info.loss == "lm",
                    zoo_name=info.zoo_name, seed=cfg.job.seed, dtype=cfg.job.dtype, dataset=dataset)
    if data.kind == "digits":
        from pipesl.runtime.data import make_batches

        make_batches(data)  # shape and class checks before spawning
    sim = simulate(problem, plan, topology.table, last_micro_batch="remainder")
    scale = cfg.scale
    conditions = None
    if events and cfg.emulation.enabled:
        base = truth if truth is not None else problem
        events.validate(base)
        conditions = Conditions(base, plan, events, cfg.job.seed)
    _check_hang_timeout(topology, cfg, conditions)
    fault_text = cfg.liveness.fault or os.environ.get(FAULT_ENV) or None
    fault = _check_fault(parse_fault(fault_text), topology, cfg) if fault_text else None
    cfg = replace(cfg, job=replace(cfg.job, model=info.ref),
                  training=replace(cfg.training, schedule=topology.table.name),
                  liveness=replace(cfg.liveness,
                                   fault=None if fault is None else fault.to_text()))
    meta = ckpt.meta_of(info.ref, problem.model.num_layers, data.kind, cfg.job.seed,
                        data.batch_size, cfg.job.dtype,
                        {"plan": plan_to_dict(plan), "schedule": cfg.training.schedule,
                         "optimizer": {"name": "SGD", "lr": cfg.training.lr,
                                       "momentum": cfg.training.momentum},
                         "data_position": "batch i of iteration i (seeded)"})
    resume: ckpt.Checkpoint | None = None
    lost: int | None = None
    if cfg.checkpoint.folder is not None:
        resume, lost = ckpt.prepare_resume(cfg.checkpoint.folder, cfg.checkpoint.resume, meta,
                                           cfg.training.steps)
    label_shape, label_dtype = _label_shape(data, dataset)
    return Job(problem, plan, topology, cfg, info, data, sim.makespan_s * scale,
               sim.analytic_s * scale, sim.trace.resources, label_shape=label_shape,
               label_dtype=label_dtype,
               start_iteration=resume.completed if resume is not None else 0,
               resume_folder=str(resume.folder) if resume is not None else None,
               resume_manifest=resume.manifest if resume is not None else None,
               resume_lost=lost, checkpoint_meta=meta, fault=fault,
               audit_folder=None if cfg.outputs.audit is None else f"{cfg.outputs.audit}.parts",
               conditions=conditions, stoppable=stoppable)


def _label_shape(data: DataSpec, dataset: Any) -> tuple[tuple[int, ...], str]:
    """Per-sample shape and dtype of the labels (what travels when they do)."""
    if dataset is not None:
        import torch

        y = torch.as_tensor(dataset[0][1])
        return tuple(y.shape), str(y.dtype).removeprefix("torch.")
    if data.tokens:
        return data.sample_shape, "int64"
    return (), "int64"


def _check_hang_timeout(topology: Topology, cfg: RunConfig,
                        conditions: Conditions | None = None) -> None:
    """Under emulation, no single pass or transfer may look like a hang (under scripted
    events too: every state the network goes through, jitter at its worst)."""
    if not cfg.emulation.enabled:
        return
    b = max(topology.sizes)
    longest = max([st.forward(b) for st in topology.stages]
                  + [st.backward(b) for st in topology.stages]
                  + [h.duration(k, b) for route in topology.hops for h in route
                     for k in ("F", "B")])
    if conditions is not None:
        for it in {0, *(e.iteration for e in conditions.script.events),
                   *(e.until for e in conditions.script.events if e.until is not None)}:
            worst = 1.0 + max([0.0, *(e.jitter or 0.0 for e in conditions.script.events)])
            steps = conditions.steps_at(it)
            longest = max(longest, worst * max(max(st.forward(b), st.backward(b))
                                               for st in steps))
    longest *= cfg.emulation.time_scale
    if cfg.liveness.hang_timeout_s < 2 * longest + 1.0:
        raise ProblemError("liveness.hang_timeout_s", "must exceed twice the longest emulated "
                           f"pass or transfer plus a second ({2 * longest + 1.0:.3g} s here): "
                           "raise --hang-timeout", cfg.liveness.hang_timeout_s)


def _check_fault(fault: FaultSpec, topology: Topology, cfg: RunConfig) -> FaultSpec:
    """The fault must be able to fire: its node runs what its phase names."""
    if fault.node not in topology.nodes:
        raise ProblemError("fault.node",
                           f"is not a node of the plan ({', '.join(topology.nodes)})", fault.node)
    stage = topology.stage_of(fault.node)
    relays = {n for r in topology.routes for n in r[1:-1]}
    can = {"F": stage is not None, "B": stage is not None, "step": stage is not None,
           "checkpoint": stage is not None and cfg.checkpoint.folder is not None,
           "L": topology.has_label_route and fault.node == topology.loss_node,
           "relay": fault.node in relays}
    if not can[fault.phase]:
        raise ProblemError("fault.phase", f"cannot happen on {fault.node} "
                           f"({', '.join(topology.roles(fault.node)) or 'no role'})",
                           fault.phase)
    if not 0 <= fault.iteration < cfg.training.steps:
        raise ProblemError("fault.iteration",
                           f"must be below --steps ({cfg.training.steps})", fault.iteration)
    if fault.micro_batch is not None and fault.micro_batch >= topology.num_micro_batches:
        raise ProblemError("fault.micro_batch", f"must be below M = "
                           f"{topology.num_micro_batches}", fault.micro_batch)
    return fault


def _finish_audit(job: Job, end: int) -> AuditReport | None:
    """Merge the workers' audit files and check them (rank 0 / the launcher)."""
    if job.audit_folder is None or job.config.outputs.audit is None:
        return None
    records, tensors = collect_audit(job.audit_folder, job.config.outputs.audit)
    return check_audit(records, tensors, topology=job.topology, batches=make_batches(job.data),
                       iterations=range(job.start_iteration, end))


def _result(job: Job, reports: Sequence[IterationReport], state: dict[str, Any] | None,
            startup_s: float) -> TrainResult:
    topo, cfg = job.topology, job.config
    stages, hops = summarise(topo, reports, cfg.emulation.time_scale, cfg.emulation.enabled)
    nodes = tuple((n, r, tuple(topo.roles(n))) for r, n in enumerate(topo.nodes))
    end = max((r.iteration + 1 for r in reports), default=job.start_iteration)
    stopped = end if job.stoppable and end < cfg.training.steps else None
    saved: tuple[int, ...] = ()
    if cfg.checkpoint.folder is not None:
        saved = tuple(n for n in range(job.start_iteration + 1, end + 1)
                      if n % cfg.checkpoint.every == 0 or n in (cfg.training.steps, stopped))
    return TrainResult(problem=job.problem.name or job.problem.model.name, plan=job.plan,
                       schedule=topo.table.name, config=cfg, nodes=nodes,
                       iterations=tuple(sorted(reports, key=lambda r: r.iteration)),
                       stages=stages, hops=hops, simulated_s=job.simulated_s,
                       analytic_s=job.analytic_s, startup_s=startup_s, state=state,
                       start_iteration=job.start_iteration,
                       lost_iterations=job.resume_lost, checkpoints=saved,
                       audit=_finish_audit(job, end), stopped_at=stopped)


# ---------------------------------------------------------------------- local processes


def _to_bytes(state: dict[str, Any]) -> bytes:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> dict[str, Any]:
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _PipeSink(Sink):
    """Forwards a rank's records, rank 0's end of the run and the rank's failure to the
    launcher, over the rank's own pipe (a process killed while writing corrupts only its own
    pipe, not a channel that others share)."""

    collects_records = True

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self._lock = threading.Lock()

    def _put(self, message: Any) -> None:
        with self._lock:
            self.channel.send(message)

    def records(self, records: IterationRecords) -> None:
        self._put(("records", records))

    def done(self, state: dict[str, Any] | None) -> None:
        self._put(("done", None if state is None else _to_bytes(state)))

    def error(self, rank: int, node: str, message: str, primary: bool = True) -> None:
        with contextlib.suppress(Exception):
            self._put(("error", (rank, node, message, primary)))


class PipeChannel:
    """The launcher's end of a run on warm spares: one queue-like ``get`` over their pipes
    (what :class:`~pipesl.runtime.supervise.Supervisor` reads)."""

    def __init__(self, conns: Sequence[Any]) -> None:
        self.conns = list(conns)

    def get(self, timeout: float) -> Any:
        """The next message from any spare; ``queue.Empty`` after ``timeout`` seconds."""
        from multiprocessing.connection import wait

        deadline = time.monotonic() + timeout
        while self.conns:
            ready = wait(self.conns, max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for conn in ready:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self.conns.remove(conn)  # that process is gone
                    continue
                if message != "ready":  # a spare that warmed up after it was taken
                    return message
            if time.monotonic() >= deadline:
                break
        if not self.conns:
            time.sleep(max(0.0, deadline - time.monotonic()))
        raise queue.Empty

    def close(self) -> None:
        """Nothing to release: the pool owns the pipes."""


def _spawned(job: Any, rendezvous: Rendezvous, channel: Any, log_level: int) -> None:
    """Run one rank in this spawned process, reporting over ``channel`` (its pipe).

    After a clean run the process leaves with ``os._exit(0)``: finalising torch takes
    seconds per process, which only delays the launcher.
    """
    node = job.topology.nodes[rendezvous.rank]
    logging.basicConfig(level=log_level, format=f"%(levelname)s [{node}] %(name)s: %(message)s")
    if isinstance(job, Job):
        run_worker(job, rendezvous, _PipeSink(channel))
    else:  # a many-owner job (pipesl.runtime.owners)
        from pipesl.runtime.owners.worker import run_owners_worker

        run_owners_worker(job, rendezvous, _PipeSink(channel))
    logging.shutdown()
    os._exit(0)


def pooled_entry(conn: Any, board: Board, control: Control) -> None:
    """Entry point of every worker process (:mod:`pipesl.runtime.pool`; a fresh launch is a
    cold pool): import torch and the worker, then wait for a job on ``conn`` and run it with
    this process's own board, control and pipe."""
    _die_with_parent()
    import pipesl.runtime.worker  # noqa: F401  (the expensive part: torch)

    try:
        conn.send("ready")
        message = conn.recv()
    except (EOFError, OSError):
        os._exit(0)
    if message is None:
        os._exit(0)
    job, rendezvous, level = message
    _spawned(job, replace(rendezvous, board=board, control=control), conn, level)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when the launcher dies, so that no worker
    outlives a launcher that was itself killed."""
    parent = mp.parent_process()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if parent is not None and os.getppid() != parent.pid:  # it died before prctl
        os._exit(1)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def train(problem: Problem, plan: Plan | None = None, config: RunConfig | None = None, *,
          dataset: Any = None,
          on_iteration: Callable[[IterationReport], None] | None = None,
          events: NetworkScript | None = None, truth: Problem | None = None,
          decide: Callable[[IterationReport], bool] | None = None,
          pool: WorkerPool | None = None) -> TrainResult:
    """Train ``problem``'s model with ``plan`` on local processes, one per network node.

    Parameters
    ----------
    problem : Problem
    plan : Plan, optional
        Default: what ``pipesl plan`` prints, the plan of least simulated makespan of the
        schedule that runs (``config.training.schedule``, else the problem's), found by
        :func:`pipesl.solvers.solve` within its default time limit.
    config : RunConfig, optional
        Steps, schedule, emulation, data, optimiser... (:func:`build_config`).
    dataset : torch.utils.data.Dataset, optional
        A map-style data set of ``(input, label)`` pairs to train on instead of
        ``config.job.data``; it must be picklable (it is sent to the source and, when the labels
        stay there, to the loss node).
    on_iteration : callable, optional
        Called in this process with each :class:`IterationReport` as it completes.
    events : NetworkScript, optional
        Emulation: scripted changes of the network (:mod:`pipesl.problem.events`), relative to
        ``truth`` (default ``problem``), which the planner's ``problem`` does not know.
    decide : callable, optional
        Called after ``on_iteration`` with each report; True stops the run before the next
        iteration, with a checkpoint of the state (:mod:`pipesl.runtime.control`). The
        workers wait for the verdict.
    pool : WorkerPool, optional
        Run on warm processes of this pool (:mod:`pipesl.runtime.pool`); default a cold
        pool of exactly this run's processes (spawned now, the same protocol).

    Returns
    -------
    TrainResult

    Raises
    ------
    PlanError, ProblemError
        Before any process starts, when the plan, model, data or options are wrong.
    RuntimeSetupError
        When a worker fails; the message names its node.

    Examples
    --------
    >>> from pipesl import load_problem                               # doctest: +SKIP
    >>> from pipesl.runtime import RunConfig, train                   # doctest: +SKIP
    >>> result = train(load_problem("iot-digits"), config=build_config(steps=5, data="digits"))
    >>> [round(it.measured_s / it.simulated_s, 2) for it in result.iterations]  # doctest: +SKIP
    """
    started = time.perf_counter()
    if plan is None:
        from pipesl.solvers import solve

        planned = problem  # what ``pipesl plan`` prints, for the schedule that runs
        if config is not None and config.training.schedule is not None:
            planned = replace(problem, training=replace(
                problem.training, schedule=cast(Any, config.training.schedule)))
        plan = solve(planned, objective="makespan").plan
    job = make_job(problem, plan, config, dataset=dataset, events=events, truth=truth,
                   stoppable=decide is not None)
    cfg, topo = job.config, job.topology
    world = len(topo.nodes)
    loopback = cfg.transport.host in _LOOPBACK
    folder = tempfile.mkdtemp(prefix="pipesl-rdv-")
    if loopback:
        init = f"file://{os.path.join(folder, 'store')}"
    else:
        init = f"tcp://{cfg.transport.host}:{_free_port(cfg.transport.host)}"
    if job.audit_folder is not None:
        shutil.rmtree(job.audit_folder, ignore_errors=True)
    level = logging.getLogger("pipesl").getEffectiveLevel()
    own_pool = pool is None
    if pool is None:  # a fresh launch is a cold pool of exactly this run's processes
        from pipesl.runtime.pool import WorkerPool

        pool = WorkerPool(world, idle=False, replenish=False)
    spares = pool.take(world)
    channel, board = PipeChannel([s.conn for s in spares]), pool.board_view(spares)
    control = spares[0].control
    control.reset()
    processes = [s.process for s in spares]
    reports: list[IterationReport] = []
    state: dict[str, Any] | None = None
    first_at: float | None = None
    parts: dict[int, list[IterationRecords]] = {}
    complete: list[list[IterationRecords]] = []
    live_reports = (on_iteration is not None or decide is not None
                    or cfg.checkpoint.folder is not None)
    supervisor: Supervisor | None = None

    def received(kind: str, payload: Any) -> None:
        nonlocal first_at, state
        if kind == "records":
            got = parts.setdefault(payload.iteration, [])
            got.append(payload)
            if len(got) < world:
                return
            if supervisor is not None:
                supervisor.completed = max(supervisor.completed, payload.iteration + 1)
            if not live_reports:  # assembled after the run: no CPU taken from the workers
                complete.append(parts.pop(payload.iteration))
                return
            report = finish_iteration(job, parts.pop(payload.iteration), True)
            if first_at is None:
                first_at = report.started_s
            reports.append(report)
            if on_iteration is not None:
                on_iteration(report)
            if decide is not None:
                assert control is not None
                control.decide(report.iteration, bool(decide(report)))
        elif kind == "done":
            state = None if payload is None else _from_bytes(payload)

    try:
        for r, spare in enumerate(spares):
            spare.conn.send((job, Rendezvous(init, r, world, loopback), level))
        logger.info("started %s", ", ".join(f"{n} (pid {p.pid})"
                                           for n, p in zip(topo.nodes, processes, strict=True)))
        supervisor = Supervisor(processes, topo.nodes,
                                [", ".join(topo.roles(n)) for n in topo.nodes], board, channel,
                                hang_timeout_s=cfg.liveness.hang_timeout_s,
                                startup_timeout_s=2 * cfg.transport.timeout_s + 30.0,
                                start_iteration=job.start_iteration, on_message=received)
        supervisor.run()
        deadline = time.monotonic() + min(cfg.transport.timeout_s, 30.0)
        for p in processes:
            p.join(max(0.0, deadline - time.monotonic()))
            logger.debug("%s exited with %s", p.name, p.exitcode)
        # Every rank's pipe is its own: the last records may come after rank 0's end.
        while parts:
            try:
                kind, payload = channel.get(timeout=1.0)
            except queue.Empty:
                break
            received(kind, payload)
        for iteration_parts in complete:
            report = finish_iteration(job, iteration_parts, True)
            if first_at is None:
                first_at = report.started_s
            reports.append(report)
    finally:
        stop_processes(processes)
        if own_pool:
            pool.close()
        shutil.rmtree(folder, ignore_errors=True)
    startup = (first_at - started) if first_at is not None else 0.0
    return _result(job, reports, state, startup)


# ---------------------------------------------------------------------- torchrun


class _CollectSink(Sink):
    def __init__(self, on_iteration: Callable[[IterationReport], None] | None) -> None:
        self.reports: list[IterationReport] = []
        self.state: dict[str, Any] | None = None
        self.on_iteration = on_iteration
        self.first_at: float | None = None

    def iteration(self, report: IterationReport) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter() - report.wall_s
        self.reports.append(report)
        if self.on_iteration is not None:
            self.on_iteration(report)

    def done(self, state: dict[str, Any] | None) -> None:
        self.state = state


def run_torchrun_worker(problem: Problem, plan: Plan, config: RunConfig | None = None, *,
                        host_nodes: Sequence[str] | None = None, dataset: Any = None,
                        on_iteration: Callable[[IterationReport], None] | None = None
                        ) -> TrainResult | None:
    """Run this process as one rank of a ``torchrun`` job.

    Parameters
    ----------
    problem, plan, config
        The same on every rank.
    host_nodes : sequence of str, optional
        The nodes this host runs, one per local process: local rank i runs ``host_nodes[i]``
        (its rank is the node's index in the plan's rank order). Default: global rank r runs
        node r of the rank order.

    Returns
    -------
    TrainResult or None
        The result on the source's rank; None on every other rank.

    Raises
    ------
    RuntimeSetupError
        When the environment lacks torchrun's variables or WORLD_SIZE does not match the
        plan's number of nodes.
    """
    started = time.perf_counter()
    job = make_job(problem, plan, config, dataset=dataset)
    topo = job.topology
    env = os.environ
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE") if v not in env]
    if missing:
        raise RuntimeSetupError(f"pipesl worker runs under torchrun; the environment lacks "
                                f"{', '.join(missing)} (use `pipesl train` for local runs)")
    world = int(env["WORLD_SIZE"])
    if world != len(topo.nodes):
        raise RuntimeSetupError(f"WORLD_SIZE is {world} but the plan has {len(topo.nodes)} "
                                f"nodes ({', '.join(topo.nodes)}): one process per node")
    if host_nodes:
        local = int(env.get("LOCAL_RANK", "0"))
        if local >= len(host_nodes):
            raise RuntimeSetupError(f"LOCAL_RANK {local} has no entry in --host-nodes "
                                    f"{','.join(host_nodes)}")
        node = host_nodes[local]
        if node not in topo.nodes:
            raise RuntimeSetupError(f"--host-nodes names {node!r}, which is not a node of the "
                                    f"plan ({', '.join(topo.nodes)})")
        rank = topo.rank(node)
    else:
        rank = int(env["RANK"])
    sink = _CollectSink(on_iteration)
    host = env["MASTER_ADDR"]
    one_host = int(env.get("LOCAL_WORLD_SIZE", "0")) == world
    if rank == 0 and job.audit_folder is not None:
        shutil.rmtree(job.audit_folder, ignore_errors=True)
    run_worker(job, Rendezvous("env://", rank, world, loopback=host in _LOOPBACK), sink,
               one_host=one_host, self_watch=True)
    if rank != 0:
        return None
    startup = (sink.first_at - started) if sink.first_at is not None else 0.0
    return _result(job, sink.reports, sink.state, startup)
