"""What a run measured: per-iteration times beside the predictions, per-stage compute, per-hop
transfers, and the measured timeline as the simulator's :class:`~pipesl.sim.Trace`.

Times are seconds from the source's start of the iteration (when it left the start barrier).
On one host every process shares the clock, so every record is on the source's timeline; on
several hosts each process's records count from its own exit of the barrier, which lines them
up to within the barrier's skew. ``measured_s`` is taken on one clock only — the source's,
from its start to the end of its last backward pass, which is the last task of every
schedule — so it is exact on any number of hosts.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipesl.plan import Plan, plan_to_dict
from pipesl.runtime.config import RunConfig
from pipesl.runtime.records import Deliver, Hand, IterationTimes, LinkBusy, Loss, Pass, Record
from pipesl.runtime.topology import DIRECTIONS, Direction, Topology
from pipesl.sim import Trace

__all__ = ["HopStats", "IterationReport", "StageStats", "TrainResult", "assemble_iteration"]


@dataclass(frozen=True)
class ComputeRecord:
    """One pass of a compute stage (or the loss node's loss, stage K)."""

    stage: int
    kind: str
    """``F`` or ``B`` (``L`` for the loss node's loss and its gradient)."""
    micro_batch: int
    start_s: float
    end_s: float
    """End of the pass on the device's timeline (padded under emulation)."""
    real_s: float
    """Seconds the real computation took."""
    lag_s: float = 0.0
    """How long after ``start_s`` the real computation began (host scheduling)."""


@dataclass(frozen=True)
class TransferRecord:
    """One transfer over one hop."""

    step: int
    kind: str
    micro_batch: int
    handed_s: float
    """When the sending node handed it to the link."""
    start_s: float
    """When the link started serving it (emulated), else ``handed_s``."""
    end_s: float
    """When the link finished it (emulated), else ``delivered_s``."""
    delivered_s: float
    """When the receiving node had it (after pacing when the receiver paces the link), on the
    emulated timeline with the virtual clock."""
    lag_s: float = 0.0
    """How much later the receiving process really had it (0 without the virtual clock)."""


@dataclass(frozen=True, eq=False)
class IterationReport:
    """One training iteration: loss, measured time beside the predictions, and its records."""

    iteration: int
    loss: float
    """Mean loss over the mini-batch (the sum of the micro-batches' scaled losses)."""
    measured_s: float
    """Source clock: start of its first forward to the end of its last backward."""
    simulated_s: float
    """The simulator's makespan for the same plan, schedule and micro-batch sizes (scaled)."""
    analytic_s: float
    """T(plan, b) of SPEC section 3 (scaled)."""
    wall_s: float
    """Source clock: start to the end of its optimiser step (includes the step)."""
    compute: tuple[ComputeRecord, ...] = field(repr=False)
    transfers: tuple[TransferRecord, ...] = field(repr=False)
    trace: Trace = field(repr=False)
    """The measured timeline in the simulator's format (draw it with ``gantt_chart``)."""
    started_s: float = 0.0
    """The source's ``time.perf_counter()`` when the iteration started: the difference
    between two iterations' is the period at which the pipeline runs (everything between
    iterations included)."""

    @property
    def error(self) -> float:
        """``measured_s / simulated_s - 1``."""
        return self.measured_s / self.simulated_s - 1.0 if self.simulated_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON row of ``pipesl train --json``."""
        return {"iteration": self.iteration, "loss": self.loss, "measured_s": self.measured_s,
                "simulated_s": self.simulated_s, "analytic_s": self.analytic_s,
                "error": self.error, "wall_s": self.wall_s}


@dataclass(frozen=True)
class StageStats:
    """A compute stage's passes over the run: planned against measured."""

    stage: int
    node: str
    layers: str
    kind: str
    planned_s: float
    """Planned duration of a pass of b samples (scaled)."""
    real_mean_s: float
    """Mean real compute of a pass."""
    real_max_s: float
    busy_mean_s: float
    """Mean occupied time of a pass (padded under emulation)."""
    passes: int
    overruns: int
    """Passes whose real compute exceeded the planned duration (emulation could not pad)."""


@dataclass(frozen=True)
class HopStats:
    """A hop's transfers in one direction over the run."""

    step: int
    hop: str
    resource: str
    kind: str
    planned_s: float
    """Planned x of b samples (scaled)."""
    busy_mean_s: float
    """Mean time the link served a transfer (emulated), else the mean hop time."""
    hop_mean_s: float
    """Mean time from the sender handing it over to the receiver having it (queueing included)."""
    transfers: int
    lag_mean_s: float = 0.0
    """Mean lag of the real delivery behind the emulated one (loopback + thread scheduling)."""


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A whole run: its setup, every iteration, and the per-stage and per-hop statistics."""

    problem: str
    plan: Plan
    schedule: str
    config: RunConfig
    nodes: tuple[tuple[str, int, tuple[str, ...]], ...]
    """(node, rank, roles) of every process."""
    iterations: tuple[IterationReport, ...]
    stages: tuple[StageStats, ...]
    hops: tuple[HopStats, ...]
    simulated_s: float
    analytic_s: float
    startup_s: float = 0.0
    """Seconds from launch to the first iteration (process start, imports, model build)."""
    state: dict[str, Any] | None = field(default=None, repr=False)
    """With ``return_state``: the trained parameters (``state_dict`` of the whole chain)."""
    start_iteration: int = 0
    """The first iteration this run executed (a resumed run starts after its checkpoint)."""
    lost_iterations: int | None = None
    """Resumed runs: iterations the stopped run had completed after the checkpoint, run
    again here (besides the one in flight); None when unknown or not resumed."""
    checkpoints: tuple[int, ...] = ()
    """Checkpoints this run saved, by iterations completed."""
    audit: Any = field(default=None, repr=False)
    """With ``audit``: the :class:`~pipesl.runtime.audit.AuditReport`."""
    stopped_at: int | None = None
    """The launcher stopped the run before this iteration (a checkpoint holds the state
    after it); None: the run went to its last iteration."""

    @property
    def losses(self) -> list[float]:
        """Loss per iteration."""
        return [it.loss for it in self.iterations]

    def median_measured_s(self, skip_first: bool = True) -> float:
        """Median measured iteration time (without the first, warm-up, iteration if more)."""
        its = self.iterations[1:] if skip_first and len(self.iterations) > 1 else self.iterations
        return float(statistics.median(it.measured_s for it in its))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``pipesl train --json`` prints."""
        cfg = self.config
        return {
            "problem": self.problem,
            "schedule": self.schedule,
            "emulate": cfg.emulation.enabled,
            "time_scale": cfg.scale,
            "virtual_clock": (cfg.emulation.enabled and cfg.emulation.virtual_clock
                              and cfg.emulation.pace_links),
            "pace_links": cfg.emulation.enabled and cfg.emulation.pace_links,
            "model": cfg.job.model,
            "data": cfg.job.data,
            "plan": plan_to_dict(self.plan),
            "nodes": [{"node": n, "rank": r, "roles": list(roles)} for n, r, roles in self.nodes],
            "simulated_s": self.simulated_s,
            "analytic_s": self.analytic_s,
            "median_measured_s": self.median_measured_s(),
            "startup_s": self.startup_s,
            "start_iteration": self.start_iteration,
            "lost_iterations": self.lost_iterations,
            "checkpoints": list(self.checkpoints),
            "stopped_at": self.stopped_at,
            "checkpoint_dir": cfg.checkpoint.folder,
            "audit": None if self.audit is None else self.audit.to_dict(),
            "iterations": [it.to_dict() for it in self.iterations],
            "stages": [vars(s) for s in self.stages],
            "hops": [vars(h) for h in self.hops],
        }


# ---------------------------------------------------------------------- assembly


def assemble_iteration(topology: Topology, resources: tuple[str, ...], iteration: int,
                       events: Sequence[Record], simulated_s: float,
                       analytic_s: float) -> IterationReport:
    """Merge every process's relative records of one iteration into an :class:`IterationReport`.

    Parameters
    ----------
    topology : Topology
    resources : tuple of str
        Row order of the trace (the simulated trace's, so both Gantt charts match).
    iteration : int
    events : sequence of Record
        Every process's records (:mod:`pipesl.runtime.records`), times relative to the
        iteration's start.
    simulated_s, analytic_s : float
        The predictions (already scaled).
    """
    compute: list[ComputeRecord] = []
    hand: dict[tuple[int, str, int], float] = {}
    busy: dict[tuple[int, str, int], tuple[float, float]] = {}
    deliver: dict[tuple[int, str, int], tuple[float, float]] = {}
    losses: list[float] = []
    measured = wall = 0.0
    for e in events:
        if isinstance(e, Pass):
            compute.append(ComputeRecord(e.stage, e.kind, e.micro_batch, e.start, e.end,
                                         e.real_s, e.began - e.start))
        elif isinstance(e, Hand):
            hand[(e.step, e.kind, e.micro_batch)] = e.t
        elif isinstance(e, LinkBusy):
            busy[(e.step, e.kind, e.micro_batch)] = (e.start, e.end)
        elif isinstance(e, Deliver):
            deliver[(e.step, e.kind, e.micro_batch)] = (e.t, e.real)
        elif isinstance(e, Loss):
            losses.append(e.value)
        elif isinstance(e, IterationTimes):
            measured, wall = e.done, e.stepped
    transfers = []
    for key, t_hand in sorted(hand.items(), key=lambda kv: kv[1]):
        t_del, t_real = deliver.get(key, (t_hand, t_hand))
        start, end = busy.get(key, (t_hand, t_del))
        transfers.append(TransferRecord(key[0], key[1], key[2], t_hand, start, end, t_del,
                                        t_real - t_del))
    trace = _trace(topology, resources, compute, transfers)
    return IterationReport(iteration, float(sum(losses)), measured, simulated_s, analytic_s,
                           wall, tuple(compute), tuple(transfers), trace)


def _trace(topology: Topology, resources: tuple[str, ...], compute: Sequence[ComputeRecord],
           transfers: Sequence[TransferRecord]) -> Trace:
    index = {r: i for i, r in enumerate(resources)}
    hops = {h.step: h for route in topology.hops for h in route}
    rows: list[tuple[int, int, int, int, float, float]] = []
    for c in compute:
        if c.stage >= topology.num_stages:
            continue  # the loss node's loss takes no time in the model
        st = topology.stages[c.stage]
        rows.append((index[st.resource], st.step, int(c.kind == "B"), c.micro_batch, c.start_s,
                     c.end_s))
    for t in transfers:
        hop = hops[t.step]
        kind: Direction = "F" if t.kind == "F" else "B"
        rows.append((index[hop.resource(kind)], t.step, int(kind == "B"), t.micro_batch,
                     t.start_s, t.end_s))
    rows.sort(key=lambda r: (r[4], r[5], r[0]))
    arr = np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)
    times = np.array([r[4:] for r in rows], dtype=float).reshape(-1, 2)
    return Trace(resources=resources, steps=tuple(s.name for s in topology.steps),
                 step_stages=tuple(s.stage for s in topology.steps), resource=arr[:, 0],
                 step=arr[:, 1], kind=arr[:, 2].astype(np.int8), micro_batch=arr[:, 3],
                 start=times[:, 0], end=times[:, 1])


def summarise(topology: Topology, iterations: Sequence[IterationReport], time_scale: float,
              emulate: bool) -> tuple[tuple[StageStats, ...], tuple[HopStats, ...]]:
    """Per-stage and per-hop statistics over ``iterations`` (all but the first when there
    are several: the first pays for warm-up)."""
    its = list(iterations[1:] if len(iterations) > 1 else iterations)
    scale = time_scale if emulate else 1.0
    b = max(topology.sizes)
    stages: list[StageStats] = []
    for st in topology.stages:
        for kind, affine in (("F", st.forward), ("B", st.backward)):
            recs = [c for it in its for c in it.compute if c.stage == st.index and c.kind == kind]
            planned = affine(b) * scale
            real = [c.real_s for c in recs]
            over = sum(1 for c in recs
                       if c.real_s > affine(topology.sizes[c.micro_batch]) * scale)
            stages.append(StageStats(
                st.index, st.node, f"{st.first_layer}-{st.last_layer}", kind, planned,
                _mean(real), max(real, default=0.0),
                _mean([c.end_s - c.start_s for c in recs]), len(recs), over if emulate else 0))
    hops: list[HopStats] = []
    for route in topology.hops:
        for h in route:
            for kind in DIRECTIONS:
                trs = [t for it in its for t in it.transfers
                       if t.step == h.step and t.kind == kind]
                hops.append(HopStats(
                    h.step, f"{h.src}>{h.dst}" if kind == "F" else f"{h.dst}>{h.src}",
                    h.resource(kind), kind, h.duration(kind, b) * scale,
                    _mean([t.end_s - t.start_s for t in trs]),
                    _mean([t.delivered_s - t.handed_s for t in trs]), len(trs),
                    _mean([t.lag_s for t in trs])))
    return tuple(stages), tuple(hops)


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0
