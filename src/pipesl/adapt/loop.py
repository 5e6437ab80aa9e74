"""Adaptive training: notice that the network changed, re-plan, and move the job.

:func:`train_adaptive` runs a job as a sequence of *segments*, each a plain run
(:func:`pipesl.runtime.launch.train`) of one plan:

1. After every iteration the launcher compares the measured pass and transfer times with the
   plan's (:class:`pipesl.adapt.drift.DriftMonitor`: medians over a short window, the first
   iteration of a segment skipped as warm-up). On drift it writes the measured figures into
   its problem (a link's effective bandwidth, a node's effective FLOP/s:
   :func:`pipesl.adapt.drift.calibrate`) and re-plans with :func:`pipesl.adapt.replan`, the
   remaining iterations as the horizon.
2. If switching pays off — the re-plan says so, and (``count_relaunch``) the gain over the
   horizon also exceeds the measured cost of a relaunch — the workers stop at the iteration
   boundary with a checkpoint of every unit (:mod:`pipesl.runtime.control`; nothing is
   lost), and the next segment resumes from it under the new plan: the checkpoint is per
   model unit, so every stage of the new plan loads its parameters and optimiser state
   (:mod:`pipesl.runtime.checkpoint`). Otherwise the measured figures become the planner's
   belief and training goes on.
3. When a worker fails (a node left), the job is stopped (:mod:`pipesl.runtime.supervise`),
   the node removed from the problem, a plan without it chosen, and the next segment resumes
   from the last complete checkpoint: with a checkpoint after every iteration (the default
   here) only the iteration in flight is lost.

Relaunching costs process start-up: a warm :class:`~pipesl.runtime.pool.WorkerPool` (the
default) keeps spare processes with torch imported, so a switch pays the process group's
rendezvous, the model build and the checkpoint load, not the imports. Every segment records
what it cost, apart from its iterations (:class:`Segment`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipesl.adapt.drift import DriftMonitor, Sample, calibrate
from pipesl.adapt.replan import replan
from pipesl.exceptions import ProblemError
from pipesl.plan import Plan, plan_to_dict
from pipesl.problem.events import NetworkScript, without_nodes
from pipesl.problem.types import Problem
from pipesl.runtime import checkpoint as ckpt
from pipesl.runtime.config import RunConfig, build_config
from pipesl.runtime.launch import train
from pipesl.runtime.liveness import WorkerFailure
from pipesl.runtime.pool import WorkerPool
from pipesl.runtime.report import IterationReport
from pipesl.runtime.topology import Topology, build_topology

__all__ = ["AdaptConfig", "AdaptiveResult", "Replan", "Segment", "samples_of",
           "train_adaptive"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdaptConfig:
    """How an adaptive run watches, decides and relaunches."""

    threshold: float = 0.25
    """Relative deviation of a pass's or transfer's median time from the plan that counts
    as drift."""
    window: int = 3
    """Iterations pooled for the medians."""
    skip_first: bool = True
    """Ignore each segment's first iteration (warm-up)."""
    count_relaunch: bool = True
    """Switch only when the gain over the remaining iterations also exceeds the measured
    cost of a relaunch (the last one; before any, the first segment's start-up)."""
    warm_spares: bool = True
    """Keep warm spare processes (:class:`~pipesl.runtime.pool.WorkerPool`)."""
    method: str = "exact"
    """Planner for every re-plan."""
    checkpoint_every: int | None = 1
    """Checkpoint interval of the run (overrides the run config's; None keeps it). A failure
    loses the iterations since the last checkpoint besides the one in flight; a planned
    switch loses nothing whatever the interval (it checkpoints where it stops)."""

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 10:
            raise ProblemError("drift_threshold", "must be in (0, 10)", self.threshold)
        if self.window < 1:
            raise ProblemError("drift_window", "must be an integer >= 1", self.window)


@dataclass(frozen=True)
class Replan:
    """One re-planning: what triggered it and what was decided."""

    iteration: int
    """After this iteration (a failure: the iteration the job resumes at)."""
    trigger: str
    """``drift`` or ``failure``."""
    detail: str
    """The drifted items, or the failure's one line."""
    switch: bool
    reason: str
    old_objective_s: float | None
    """The running plan's T on the updated problem (None: no longer valid)."""
    new_objective_s: float
    horizon: int
    migration_bytes: float
    migration_s: float
    """Estimated time to move the state over the network (:mod:`pipesl.cost.migration`)."""
    relaunch_s: float
    """The relaunch cost counted in the decision, in emulated seconds under emulation (the
    measured gap divided by the time scale; 0 when not counted)."""
    seconds: float
    """Time spent calibrating and re-planning."""
    plan: Plan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: (plan_to_dict(v) if isinstance(v, Plan) else v)
                for k, v in vars(self).items()}


@dataclass(frozen=True)
class Segment:
    """One run of one plan within an adaptive run. Times are seconds since the run began."""

    index: int
    plan: Plan
    start_iteration: int
    end_iteration: int
    """First iteration *not* kept from this segment (a failed one: where the next resumes)."""
    reason: str
    """Why this plan runs: ``initial plan``, or the re-plan that chose it."""
    ended_by: str
    """``done``, ``switch`` or ``failure``."""
    launched_s: float
    first_iteration_s: float | None
    """When its first iteration started (None: it never got there)."""
    last_report_s: float | None
    """When its last iteration's report arrived."""
    ended_s: float
    """When its processes were gone (or the failure was raised)."""
    lost_iterations: int = 0
    """Iterations it completed and the next segment runs again (after a failure), besides
    the one in flight."""
    failure: str | None = None

    @property
    def startup_s(self) -> float | None:
        """Launch to the first iteration's start: spawn or warm hand-over, rendezvous,
        model build, checkpoint load."""
        return None if self.first_iteration_s is None else self.first_iteration_s - self.launched_s

    @property
    def stop_s(self) -> float | None:
        """Last report to processes gone: the stop's checkpoint and teardown, or a failure's
        detection and teardown."""
        return None if self.last_report_s is None else self.ended_s - self.last_report_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        doc = {k: (plan_to_dict(v) if isinstance(v, Plan) else v) for k, v in vars(self).items()}
        doc.update(startup_s=self.startup_s, stop_s=self.stop_s)
        return doc


@dataclass(frozen=True, eq=False)
class AdaptiveResult:
    """The whole adaptive run."""

    segments: tuple[Segment, ...]
    replans: tuple[Replan, ...]
    reports: tuple[tuple[int, IterationReport, float], ...] = field(repr=False)
    """Every iteration report received: (segment index, report, arrival time since the run
    began), including those of iterations run again after a failure."""
    config: RunConfig
    adapt: AdaptConfig
    events: NetworkScript
    problem: Problem
    """What the planner believed at the end (measured figures, departed nodes removed)."""
    state: dict[str, Any] | None = field(default=None, repr=False)
    """The last segment's trained parameters (with ``return_state``)."""
    warm_up_s: float = 0.0
    """Cold start of the warm spares before the first segment (processes importing torch)."""
    seconds: float = 0.0

    @property
    def iterations(self) -> tuple[IterationReport, ...]:
        """One report per iteration: the kept one (the last segment that ran it)."""
        kept: dict[int, IterationReport] = {}
        for _, report, _ in self.reports:
            kept[report.iteration] = report
        return tuple(kept[i] for i in sorted(kept))

    @property
    def losses(self) -> list[float]:
        """Loss per iteration (kept reports)."""
        return [it.loss for it in self.iterations]

    def relaunch_s(self, index: int) -> float | None:
        """Training stopped -> training again, for segment ``index`` > 0: the previous
        segment's last report to this one's first iteration."""
        prev, seg = self.segments[index - 1], self.segments[index]
        if prev.last_report_s is None or seg.first_iteration_s is None:
            return None
        return seg.first_iteration_s - prev.last_report_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: segments, re-plans, per-iteration rows."""
        rows = []
        for seg, report, arrived in self.reports:
            rows.append({"segment": seg, **report.to_dict(), "arrived_s": arrived,
                         "kept": report.iteration < self.segments[seg].end_iteration})
        return {"segments": [s.to_dict() | {"relaunch_s": self.relaunch_s(s.index)
                                            if s.index else None} for s in self.segments],
                "replans": [r.to_dict() for r in self.replans],
                "iterations": rows, "events": self.events.to_list(),
                "adapt": vars(self.adapt), "config": self.config.to_dict(),
                "warm_up_s": self.warm_up_s, "seconds": self.seconds}


def samples_of(report: IterationReport, topology: Topology) -> list[Sample]:
    """An iteration's measured passes and transfers as drift samples."""
    out = [Sample(topology.stages[c.stage].step, c.kind, topology.sizes[c.micro_batch],
                  c.end_s - c.start_s)
           for c in report.compute if c.stage < topology.num_stages]
    out += [Sample(t.step, t.kind, topology.sizes[t.micro_batch], t.end_s - t.start_s)
            for t in report.transfers]
    return out


class _Controller:
    """The launcher's decision after each iteration of one segment."""

    def __init__(self, belief: Problem, plan: Plan, cfg: RunConfig, adapt: AdaptConfig,
                 first_iteration: int, relaunch_s: Callable[[], float]) -> None:
        self.belief, self.plan, self.cfg, self.adapt = belief, plan, cfg, adapt
        self.first = first_iteration
        self.relaunch_s = relaunch_s
        self.topology = build_topology(belief, plan, cfg.training.schedule)
        self.monitor = self._monitor(belief)
        self.replans: list[Replan] = []
        self.outcome: tuple[Problem, Replan] | None = None

    def _monitor(self, problem: Problem) -> DriftMonitor:
        scale = self.cfg.scale
        return DriftMonitor(problem, self.plan, threshold=self.adapt.threshold,
                            window=self.adapt.window, time_scale=scale)

    def decide(self, report: IterationReport) -> bool:
        if self.adapt.skip_first and report.iteration == self.first:
            return False
        self.monitor.observe(report.iteration, samples_of(report, self.topology))
        drift = self.monitor.drift()
        if drift is None:
            return False
        started = time.perf_counter()
        updated = calibrate(self.belief, self.monitor.estimates(drift.resources))
        horizon = self.cfg.training.steps - report.iteration - 1
        decision = replan(updated, self.plan, horizon, method=self.adapt.method)
        # The relaunch is measured on this machine's clock; under emulation one emulated
        # second takes time_scale seconds here, so it costs relaunch / time_scale emulated
        # seconds (the unit of T and of the migration estimate).
        scale = self.cfg.scale
        relaunch = self.relaunch_s() / scale if self.adapt.count_relaunch else 0.0
        decision = decision.with_relaunch(relaunch if self.adapt.count_relaunch else None)
        switch, reason = decision.switch, decision.reason
        record = Replan(report.iteration, "drift", drift.describe(), switch, reason,
                        None if decision.old is None else decision.old.objective_s,
                        decision.new.objective_s, horizon, decision.migration.total_bytes,
                        decision.migration.seconds, relaunch, time.perf_counter() - started,
                        decision.new.plan)
        self.replans.append(record)
        logger.info("drift after iteration %d (%s): %s", report.iteration, drift.describe(),
                    ("switch: " if switch else "stay: ") + reason)
        if switch:
            self.outcome = (updated, record)
            return True
        self.belief = updated  # believe the measurements from now on
        self.monitor = self._monitor(updated)
        return False


def _resume_point(folder: str) -> int:
    latest = ckpt.find_latest(folder)
    return 0 if latest is None else latest.completed


def train_adaptive(problem: Problem, plan: Plan | None = None, config: RunConfig | None = None,
                   *, adapt: AdaptConfig | None = None, events: NetworkScript | None = None,
                   dataset: Any = None,
                   on_iteration: Callable[[int, IterationReport], None] | None = None,
                   pool: WorkerPool | None = None) -> AdaptiveResult:
    """Train with re-planning on drift and on node failures (module docstring).

    Parameters
    ----------
    problem : Problem
        The nominal problem: what the planner believes at the start, and (with ``events``)
        the emulated network the events change.
    plan : Plan, optional
        The first plan (default: the planner's).
    config : RunConfig, optional
        As for :func:`~pipesl.runtime.launch.train`. Without ``checkpoint_dir`` a temporary
        folder is used (and removed).
    adapt : AdaptConfig, optional
    events : NetworkScript, optional
        Scripted network changes (emulation), keyed by global iteration.
    on_iteration : callable, optional
        ``on_iteration(segment_index, report)`` for every report, as it arrives.
    pool : WorkerPool, optional
        Warm spares to use (and keep); default: a pool of the network's size, warmed up
        before the first segment and closed at the end (with ``adapt.warm_spares``).

    Raises
    ------
    WorkerFailure
        When a failure cannot be survived: the source failed, or no single node is to blame.
    InfeasibleError
        When no plan remains without the failed nodes.
    """
    adapt = adapt or AdaptConfig()
    cfg = build_config(config)
    if adapt.checkpoint_every is not None:
        cfg = cfg.with_options(checkpoint_every=adapt.checkpoint_every)
    events = events or NetworkScript()
    own_dir = cfg.checkpoint.folder is None
    if own_dir:
        cfg = cfg.with_options(checkpoint_dir=tempfile.mkdtemp(prefix="pipesl-adapt-"))
    assert cfg.checkpoint.folder is not None
    if events:
        events.validate(problem)
    began = time.perf_counter()
    belief = problem
    if plan is None:
        from pipesl.solvers import solve

        plan = solve(belief, adapt.method, objective="analytic").plan
    own_pool = pool is None and adapt.warm_spares
    if own_pool:
        pool = WorkerPool(len(problem.network.nodes))
    warm_up = pool.warm_up() if own_pool and pool is not None else 0.0
    segments: list[Segment] = []
    replans: list[Replan] = []
    reports: list[tuple[int, IterationReport, float]] = []
    state: dict[str, Any] | None = None
    resume, reason = cfg.checkpoint.resume, "initial plan"
    start = _resume_point(cfg.checkpoint.folder) if resume else 0
    gaps: list[float] = []
    current: dict[str, float] = {}

    def relaunch_cost() -> float:
        """The last relaunch's gap in training, else this (first) segment's start-up."""
        return gaps[-1] if gaps else current.get("startup", 0.0)

    try:
        while True:
            index = len(segments)
            current = {"launched": time.perf_counter() - began}
            ctl = _Controller(belief, plan, cfg, adapt, start, relaunch_cost)

            def seen(report: IterationReport, index: int = index,
                     current: dict[str, float] = current) -> None:
                arrived = time.perf_counter() - began
                if "first" not in current:
                    current["first"] = arrived - report.wall_s
                    current["startup"] = current["first"] - current["launched"]
                current["last"] = arrived
                reports.append((index, report, arrived))
                if on_iteration is not None:
                    on_iteration(index, report)

            seg_cfg = cfg.with_options(resume=resume)
            try:
                result = train(belief, plan, seg_cfg, dataset=dataset, on_iteration=seen,
                               events=events, truth=problem, decide=ctl.decide, pool=pool)
            except WorkerFailure as exc:
                ended = time.perf_counter() - began
                replans.extend(ctl.replans)
                if exc.node is None or exc.node == problem.training.source:
                    raise
                resume_at = _resume_point(cfg.checkpoint.folder)
                done = max((r.iteration + 1 for i, r, _ in reports if i == index),
                           default=start)
                segments.append(_segment(index, plan, start, resume_at, reason, "failure",
                                         current, ended, max(0, done - resume_at), str(exc)))
                started = time.perf_counter()
                belief = without_nodes(belief, [exc.node])
                decision = replan(belief, plan, cfg.training.steps - resume_at, method=adapt.method)
                record = Replan(resume_at, "failure", str(exc), True, decision.reason, None,
                                decision.new.objective_s, cfg.training.steps - resume_at,
                                decision.migration.total_bytes, decision.migration.seconds,
                                0.0, time.perf_counter() - started, decision.new.plan)
                replans.append(record)
                logger.info("%s; resuming at iteration %d on a plan without %s", exc,
                            resume_at, exc.node)
                plan, start, resume = decision.new.plan, resume_at, resume_at > 0
                reason = f"{exc.node} failed: re-planned without it"
                _note_gap(gaps, segments)
                continue
            ended = time.perf_counter() - began
            replans.extend(ctl.replans)
            end = result.stopped_at if result.stopped_at is not None else cfg.training.steps
            segments.append(_segment(index, plan, start, end, reason,
                                     "done" if result.stopped_at is None else "switch",
                                     current, ended))
            _note_gap(gaps, segments)
            if result.stopped_at is None or ctl.outcome is None:
                state = result.state
                break
            belief, record = ctl.outcome
            plan, start, resume = record.plan, end, True
            reason = f"drift after iteration {record.iteration}: {record.detail}"
    finally:
        if own_pool and pool is not None:
            pool.close()
        if own_dir:
            shutil.rmtree(cfg.checkpoint.folder, ignore_errors=True)
    return AdaptiveResult(tuple(segments), tuple(replans), tuple(reports), cfg, adapt, events,
                          belief, state, warm_up, time.perf_counter() - began)


def _segment(index: int, plan: Plan, start: int, end: int, reason: str, ended_by: str,
             times: dict[str, float], ended: float, lost: int = 0,
             failure: str | None = None) -> Segment:
    return Segment(index, plan, start, end, reason, ended_by, times["launched"],
                   times.get("first"), times.get("last"), ended, lost, failure)


def _note_gap(gaps: list[float], segments: list[Segment]) -> None:
    """Record the last completed relaunch (previous segment's last report to this one's
    first iteration) once both ends are known."""
    if len(segments) >= 2:
        prev, seg = segments[-2], segments[-1]
        if prev.last_report_s is not None and seg.first_iteration_s is not None:
            gaps.append(seg.first_iteration_s - prev.last_report_s)
