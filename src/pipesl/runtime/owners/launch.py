"""Start a many-owner run: one local process per node of the union of the owners' plans.

:func:`train_owners` validates everything (plans, model, data) before any process starts,
simulates the owners' plans together (:func:`pipesl.sim.owners.simulate_owners`; its trace
gives every shared node's static compute order and the predictions), spawns the ranks as a
one-owner run does (``spawn``, gloo on loopback, a file rendezvous, the same supervisor: a
rank that dies, raises or hangs ends the run with one error naming its node), and assembles
the report (:mod:`pipesl.runtime.owners.report`).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import time
from dataclasses import replace
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.problem.types import Problem
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.data import DataSpec, make_batches
from pipesl.runtime.owners.report import (
    OwnersIterationReport,
    OwnersTrainResult,
    assemble_owners_iteration,
)
from pipesl.runtime.owners.topology import build_owners_topology, trace_order
from pipesl.runtime.owners.worker import OwnersJob, owner_seed
from pipesl.runtime.records import IterationRecords
from pipesl.runtime.stages import inspect_model
from pipesl.runtime.supervise import Supervisor, stop_processes

__all__ = ["make_owners_job", "train_owners"]

logger = logging.getLogger(__name__)


def _simulate(problem: Problem, plan: Any, schedule: str) -> Any:
    from pipesl.sim.owners import simulate_owners

    return simulate_owners(problem, plan, schedule, last_micro_batch="remainder")


def make_owners_job(problem: Problem, plan: Any, config: RunConfig | None = None) -> OwnersJob:
    """Validate a many-owner run and describe it as an :class:`OwnersJob`.

    Parameters
    ----------
    problem : Problem
        With one or more data owners.
    plan : OwnersPlan
        One single-source plan per owner (``plan.plans``).
    config : RunConfig, optional

    Raises
    ------
    PlanError, ProblemError
        Naming what is wrong.
    """
    from pipesl.plan import validate_owners_plan

    cfg = build_config(config)
    validate_owners_plan(problem, plan)
    if cfg.checkpoint.folder is not None or cfg.liveness.fault or cfg.checkpoint.resume:
        raise ProblemError("config", "checkpoints, resuming and fault injection are not "
                           "supported with several data owners yet")
    schedule = cfg.training.schedule or problem.training.schedule
    sim = _simulate(problem, plan, schedule)
    plans = tuple(plan.plans)
    order = trace_order(build_owners_topology(problem, plans, schedule).owners,
                        _compute_records(sim))
    otopo = build_owners_topology(problem, plans, schedule, order=order)
    info = inspect_model(problem, cfg.job.model)
    data = tuple(DataSpec(kind=cfg.job.data, batch_size=d.batch_size,
                          sample_shape=info.sample_shape, num_classes=info.num_classes,
                          tokens=info.loss == "lm", zoo_name=info.zoo_name,
                          seed=owner_seed(cfg.job.seed, o), dtype=cfg.job.dtype)
                 for o, d in enumerate(problem.owners))
    if cfg.job.data == "digits":
        make_batches(data[0])  # shape and class checks before spawning
    scale = cfg.scale
    cfg = replace(cfg, job=replace(cfg.job, model=info.ref),
                  training=replace(cfg.training, schedule=otopo.owners[0].table.name))
    label_shape = info.sample_shape if info.loss == "lm" else ()
    # parallel: when each owner's last backward ends; sequential: each owner's turn alone
    owner_s = (sim.owner_makespans_s if otopo.mode == "parallel"
               else tuple(row.alone_s for row in sim.owners))
    return OwnersJob(problem, plans, otopo, cfg, info, data, sim.makespan_s * scale,
                     tuple(s * scale for s in owner_s), label_shape=label_shape,
                     audit_folder=(None if cfg.outputs.audit is None
                                   else f"{cfg.outputs.audit}.parts"))


def _compute_records(sim: Any) -> list[Any]:
    """The simulator's compute records (:class:`pipesl.sim.TaskRecord` with an owner)."""
    return [r for r in sim.trace.records() if r.stage is not None]


def train_owners(problem: Problem, plan: Any = None, config: RunConfig | None = None
                 ) -> OwnersTrainResult:
    """Train ``problem``'s data owners with ``plan`` on local processes, one per node.

    Parameters
    ----------
    problem : Problem
    plan : OwnersPlan, optional
        Default: the planner's (:func:`pipesl.solvers.solve`).
    config : RunConfig, optional

    Returns
    -------
    OwnersTrainResult

    Raises
    ------
    PlanError, ProblemError
        Before any process starts.
    RuntimeSetupError
        When a worker fails; the message names its node.
    """
    from pipesl.runtime.launch import PipeChannel
    from pipesl.runtime.pool import WorkerPool
    from pipesl.runtime.worker import Rendezvous

    started = time.perf_counter()
    if plan is None:
        from pipesl.solvers import solve

        plan = solve(problem).plan
    job = make_owners_job(problem, plan, config)
    cfg, otopo = job.config, job.topology
    world = len(otopo.nodes)
    folder = tempfile.mkdtemp(prefix="pipesl-rdv-")
    init = f"file://{os.path.join(folder, 'store')}"
    if job.audit_folder is not None:
        shutil.rmtree(job.audit_folder, ignore_errors=True)
    level = logging.getLogger("pipesl").getEffectiveLevel()
    pool = WorkerPool(world, idle=False, replenish=False)
    spares = pool.take(world)
    channel, board = PipeChannel([s.conn for s in spares]), pool.board_view(spares)
    spares[0].control.reset()
    processes = [s.process for s in spares]
    parts: dict[int, list[IterationRecords]] = {}
    complete: list[list[IterationRecords]] = []
    state: dict[int, dict[str, Any]] | None = None

    def received(kind: str, payload: Any) -> None:
        nonlocal state
        if kind == "records":
            got = parts.setdefault(payload.iteration, [])
            got.append(payload)
            if len(got) == world:
                complete.append(parts.pop(payload.iteration))
        elif kind == "done" and payload is not None:
            from pipesl.runtime.launch import _from_bytes

            state = _from_bytes(payload)

    try:
        for r, spare in enumerate(spares):
            spare.conn.send((job, Rendezvous(init, r, world, True), level))
        supervisor = Supervisor(processes, otopo.nodes,
                                [", ".join(otopo.roles(n)) for n in otopo.nodes], board,
                                channel, hang_timeout_s=cfg.liveness.hang_timeout_s,
                                startup_timeout_s=2 * cfg.transport.timeout_s + 30.0,
                                start_iteration=0, on_message=received)
        supervisor.run()
        deadline = time.monotonic() + min(cfg.transport.timeout_s, 30.0)
        for p in processes:
            p.join(max(0.0, deadline - time.monotonic()))
        while parts:
            try:
                kind, payload = channel.get(timeout=1.0)
            except queue.Empty:
                break
            received(kind, payload)
    finally:
        stop_processes(processes)
        pool.close()
        shutil.rmtree(folder, ignore_errors=True)
    reports: list[OwnersIterationReport] = []
    first: float | None = None
    for got in complete:
        records = [r for p in got for r in p.records]
        reports.append(assemble_owners_iteration(otopo, got[0].iteration, records,
                                                 job.simulated_s, job.owner_simulated_s))
        start = min(p.start for p in got)
        first = start if first is None else min(first, start)
    audit = None
    if job.audit_folder is not None and cfg.outputs.audit is not None:
        from pipesl.runtime.audit import collect_audit
        from pipesl.runtime.owners.audit import check_owners_audit

        records_, tensors = collect_audit(job.audit_folder, cfg.outputs.audit)
        audit = check_owners_audit(records_, tensors, otopo, job.data, range(cfg.training.steps))
    return OwnersTrainResult(
        problem=problem.name or problem.model.name, mode=otopo.mode,
        replicas=otopo.replicas, schedule=otopo.owners[0].table.name, config=cfg,
        owners=otopo.labels, batch_sizes=tuple(t.batch_size for t in otopo.owners),
        plans=job.plans,
        nodes=tuple((n, r, tuple(otopo.roles(n))) for r, n in enumerate(otopo.nodes)),
        iterations=tuple(sorted(reports, key=lambda r: r.iteration)),
        simulated_s=job.simulated_s, owner_simulated_s=job.owner_simulated_s,
        startup_s=(first - started) if first is not None else 0.0, state=state, audit=audit)
