"""Start a run: one process per network node of the plan, locally or under torchrun.

* :func:`train` spawns every rank on this machine (``spawn`` start method, gloo, every socket
  on loopback, a file rendezvous in a private temporary folder), watches them, and returns a
  :class:`~pipesl.runtime.report.TrainResult`. A rank that fails or dies ends the whole run
  with :class:`~pipesl.exceptions.RuntimeSetupError` naming the node; no process is left
  behind.
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
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from pipesl.exceptions import ProblemError, RuntimeSetupError
from pipesl.plan import Plan
from pipesl.problem.types import Problem
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.data import DataSpec
from pipesl.runtime.report import IterationReport, TrainResult, summarise
from pipesl.runtime.stages import inspect_model
from pipesl.runtime.topology import build_topology
from pipesl.runtime.worker import Job, Rendezvous, Sink, run_worker
from pipesl.sim import simulate

__all__ = ["make_job", "run_torchrun_worker", "train"]

logger = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_job(problem: Problem, plan: Plan, config: RunConfig | None = None, *,
             dataset: Any = None) -> Job:
    """Validate everything a run needs and describe it as a :class:`Job`.

    Checks the plan, the schedule, the model (units against the profile's layers) and the
    data before any process starts; computes the predictions (simulated makespan for the
    actual micro-batch sizes, analytic T), scaled by the time scale under emulation.

    Raises
    ------
    PlanError, ProblemError
        Naming what is wrong.
    """
    cfg = build_config(config)
    topology = build_topology(problem, plan, cfg.schedule)
    info = inspect_model(problem, cfg.model)
    if dataset is not None and not (hasattr(dataset, "__getitem__")
                                    and hasattr(dataset, "__len__")):
        raise ProblemError("dataset", "must be a map-style torch Dataset of (input, label)",
                           type(dataset).__name__)
    data = DataSpec(kind="dataset" if dataset is not None else cfg.data,
                    batch_size=problem.training.batch_size, sample_shape=info.sample_shape,
                    num_classes=info.num_classes, tokens=info.loss == "lm",
                    zoo_name=info.zoo_name, seed=cfg.seed, dtype=cfg.dtype, dataset=dataset)
    if data.kind == "digits":
        from pipesl.runtime.data import make_batches

        make_batches(data)  # shape and class checks before spawning
    sim = simulate(problem, plan, topology.table, last_micro_batch="remainder")
    scale = cfg.time_scale if cfg.emulate else 1.0
    cfg = replace(cfg, model=info.ref, schedule=topology.table.name)
    return Job(problem, plan, topology, cfg, info, data, sim.makespan_s * scale,
               sim.analytic_s * scale, sim.trace.resources)


def _result(job: Job, reports: Sequence[IterationReport], state: dict[str, Any] | None,
            startup_s: float) -> TrainResult:
    topo, cfg = job.topology, job.config
    stages, hops = summarise(topo, reports, cfg.time_scale, cfg.emulate)
    nodes = tuple((n, r, tuple(topo.roles(n))) for r, n in enumerate(topo.nodes))
    return TrainResult(problem=job.problem.name or job.problem.model.name, plan=job.plan,
                       schedule=topo.table.name, config=cfg, nodes=nodes,
                       iterations=tuple(sorted(reports, key=lambda r: r.iteration)),
                       stages=stages, hops=hops, simulated_s=job.simulated_s,
                       analytic_s=job.analytic_s, startup_s=startup_s, state=state)


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


class _QueueSink(Sink):
    """Forwards rank 0's results and any rank's failure to the launcher."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel

    def iteration(self, report: IterationReport) -> None:
        self.channel.put(("iteration", report))

    def done(self, state: dict[str, Any] | None) -> None:
        # Tensors through a multiprocessing queue are shared by file descriptor, which dies
        # with this process: send bytes instead.
        self.channel.put(("done", None if state is None else _to_bytes(state)))

    def error(self, rank: int, node: str, message: str) -> None:
        with contextlib.suppress(Exception):  # the launcher may be gone already
            self.channel.put(("error", (rank, node, message)))
            self.channel.close()
            self.channel.join_thread()  # flush before the process exits


def _spawned(job: Job, rendezvous: Rendezvous, channel: Any, log_level: int) -> None:
    """Entry point of a spawned rank.

    After a clean run the process flushes its results and leaves with ``os._exit(0)``:
    finalising torch takes seconds per process, which only delays the launcher.
    """
    node = job.topology.nodes[rendezvous.rank]
    logging.basicConfig(level=log_level, format=f"%(levelname)s [{node}] %(name)s: %(message)s")
    run_worker(job, rendezvous, _QueueSink(channel))
    channel.close()
    channel.join_thread()
    logging.shutdown()
    os._exit(0)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _dead_worker(processes: Sequence[Any], nodes: Sequence[str]) -> str | None:
    """The first worker that died with an error, as a message; None when none did."""
    for r, p in enumerate(processes):
        if p.exitcode not in (None, 0):
            return f"worker {nodes[r]} (rank {r}) exited with code {p.exitcode}"
    return None


def _stop(processes: Sequence[Any], grace_s: float = 5.0) -> None:
    """Terminate every process of ours still alive, then kill the stubborn ones."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join(1.0)


def train(problem: Problem, plan: Plan | None = None, config: RunConfig | None = None, *,
          dataset: Any = None,
          on_iteration: Callable[[IterationReport], None] | None = None) -> TrainResult:
    """Train ``problem``'s model with ``plan`` on local processes, one per network node.

    Parameters
    ----------
    problem : Problem
    plan : Plan, optional
        Default: the planner's (:func:`pipesl.solvers.solve`).
    config : RunConfig, optional
        Steps, schedule, emulation, data, optimiser... (:func:`build_config`).
    dataset : torch.utils.data.Dataset, optional
        A map-style data set of ``(input, label)`` pairs to train on instead of
        ``config.data``; it must be picklable (it is sent to the source and, when the labels
        stay there, to the loss node).
    on_iteration : callable, optional
        Called in this process with each :class:`IterationReport` as it completes.

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
    >>> result = train(load_problem("iot-digits"), config=RunConfig(steps=5, data="digits"))
    >>> [round(it.measured_s / it.simulated_s, 2) for it in result.iterations]  # doctest: +SKIP
    """
    started = time.perf_counter()
    if plan is None:
        from pipesl.solvers import solve

        plan = solve(problem).plan
    job = make_job(problem, plan, config, dataset=dataset)
    cfg, topo = job.config, job.topology
    world = len(topo.nodes)
    loopback = cfg.host in _LOOPBACK
    folder = tempfile.mkdtemp(prefix="pipesl-rdv-")
    if loopback:
        init = f"file://{os.path.join(folder, 'store')}"
    else:
        init = f"tcp://{cfg.host}:{_free_port(cfg.host)}"
    ctx = mp.get_context("spawn")
    channel = ctx.Queue()
    level = logging.getLogger("pipesl").getEffectiveLevel()
    processes = [ctx.Process(target=_spawned, name=f"pipesl-{node}", daemon=True,
                             args=(job, Rendezvous(init, r, world, loopback), channel, level))
                 for r, node in enumerate(topo.nodes)]
    reports: list[IterationReport] = []
    state: dict[str, Any] | None = None
    first_at: float | None = None
    try:
        for p in processes:
            p.start()
        done, error = False, None
        while not done and error is None:
            try:
                kind, payload = channel.get(timeout=0.2)
            except queue.Empty:
                error = _dead_worker(processes, topo.nodes)
                if error is None and all(p.exitcode is not None for p in processes):
                    try:  # rank 0 may have reported and exited since the last look
                        kind, payload = channel.get(timeout=2.0)
                    except queue.Empty:
                        error = "every worker exited before the run completed"
                if error is not None or not all(p.exitcode is not None for p in processes):
                    continue
            if kind == "iteration":
                if first_at is None:
                    first_at = time.perf_counter() - payload.wall_s
                reports.append(payload)
                if on_iteration is not None:
                    on_iteration(payload)
            elif kind == "done":
                state, done = (None if payload is None else _from_bytes(payload)), True
            else:
                rank, node, message = payload
                error = f"worker {node} (rank {rank}) failed: {message}"
        if error is not None:
            raise RuntimeSetupError(error)
        deadline = time.monotonic() + min(cfg.timeout_s, 30.0)
        for p in processes:
            p.join(max(0.0, deadline - time.monotonic()))
            logger.debug("%s exited with %s", p.name, p.exitcode)
    finally:
        _stop(processes)
        channel.close()
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
    run_worker(job, Rendezvous("env://", rank, world, loopback=host in _LOOPBACK), sink,
               one_host=one_host)
    if rank != 0:
        return None
    startup = (sink.first_at - started) if sink.first_at is not None else 0.0
    return _result(job, sink.reports, sink.state, startup)
