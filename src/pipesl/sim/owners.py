"""Simulate one iteration of several data owners: :func:`simulate_owners` -> OwnersSimResult.

``parallel`` (``training.owners``): every owner's micro-batches flow at once through the
shared network (:func:`pipesl.sim.shared.run_pipelines`, service order in docs/owners.md);
the makespan is when the last owner's last backward ends. ``sequential``: owners take turns,
owner 0's whole iteration, then owner 1's, ...; a round's time is the sum of the owners'
single-owner makespans, and the trace shows the turns one after the other.

Each owner's pipeline is exactly its single-source pipeline on ``problem.owner_problem(o)``:
steps from the cost model, the schedule table of that owner's plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipesl import cost
from pipesl.cost.owners import evaluate_owners, owners_bound
from pipesl.exceptions import ProblemError
from pipesl.plan import OwnersPlan, plan_label
from pipesl.problem.types import Problem
from pipesl.schedules import Action, PipelineSchedule, makespan_lower_bound, plan_table
from pipesl.sim.shared import OwnerPipeline, run_pipelines
from pipesl.sim.simulate import LastMicroBatch
from pipesl.sim.trace import Trace

__all__ = ["OwnerRow", "OwnersNodeMemory", "OwnersSimResult", "simulate_owners"]


@dataclass(frozen=True)
class OwnerRow:
    """One owner's figures in a multi-owner simulation."""

    owner: int
    label: str
    node: str
    """The owner's node (its stage 1)."""
    plan: str
    """Its plan, as :func:`~pipesl.plan.plan_label` writes it."""
    batch_size: int
    micro_batch_size: int
    num_micro_batches: int
    num_stages: int
    end_s: float
    """When its last backward ended (parallel: in the joint iteration; sequential: in the
    round, its turn coming after the earlier owners')."""
    alone_s: float
    """Its simulated makespan with the network to itself (its single-owner makespan)."""
    lower_bound_s: float
    """Its own schedule-true makespan lower bound (``schedules.makespan_lower_bound``)."""


@dataclass(frozen=True)
class OwnersNodeMemory:
    """What a compute node holds over all owners (SPEC memory rule per owner, summed)."""

    used_bytes: float
    """Model state (per the replicas rule) plus every owner's peak activations
    (:func:`pipesl.cost.owners.owners_memory`)."""
    capacity_bytes: float
    stages: tuple[tuple[int, int, int, int], ...]
    """Per owner's stage on the node: (owner, stage, peak micro-batches in flight, peak
    samples in flight)."""


@dataclass(frozen=True, eq=False)
class OwnersSimResult:
    """One simulated multi-owner iteration (parallel) or round (sequential)."""

    mode: str
    """``parallel`` or ``sequential``."""
    replicas: str
    """``per-owner`` or ``shared``."""
    schedule: str
    makespan_s: float
    """Parallel: the joint iteration; sequential: the round (sum of the owners' turns)."""
    owner_makespans_s: tuple[float, ...]
    """When each owner's last backward ended (see :attr:`OwnerRow.end_s`)."""
    lower_bound_s: float
    """:func:`pipesl.cost.owners.owners_lower_bound` with each owner's schedule-true bound."""
    bound_terms: dict[str, float]
    """Every term of the bound by name (``resource:<r>``, ``owner:<label>``)."""
    owners: tuple[OwnerRow, ...]
    busy_s: dict[str, float]
    """Seconds each resource served tasks, over all owners."""
    utilisation: dict[str, float]
    """``busy_s / makespan_s`` per resource."""
    memory: dict[str, OwnersNodeMemory]
    """Per compute node."""
    violations: tuple[str, ...]
    """Nodes whose memory all owners together exceed."""
    trace: Trace = field(repr=False)
    """Every task of every owner (``trace.owner``)."""

    @property
    def num_owners(self) -> int:
        """How many owners were simulated."""
        return len(self.owners)

    @property
    def gap(self) -> float:
        """``makespan_s / lower_bound_s - 1`` (0 when the bound is tight)."""
        return self.makespan_s / self.lower_bound_s - 1.0 if self.lower_bound_s > 0 else 0.0

    @property
    def feasible(self) -> bool:
        """True when every node holds what all owners put on it."""
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the trace): what ``pipesl simulate --json`` prints."""
        return {
            "mode": self.mode,
            "replicas": self.replicas,
            "schedule": self.schedule,
            "num_owners": self.num_owners,
            "makespan_s": self.makespan_s,
            "owner_makespans_s": list(self.owner_makespans_s),
            "lower_bound_s": self.lower_bound_s,
            "gap": self.gap,
            "bound_terms": dict(self.bound_terms),
            "owners": [{"owner": r.owner, "label": r.label, "node": r.node, "plan": r.plan,
                        "batch_size": r.batch_size, "micro_batch_size": r.micro_batch_size,
                        "num_micro_batches": r.num_micro_batches, "num_stages": r.num_stages,
                        "end_s": r.end_s, "alone_s": r.alone_s,
                        "lower_bound_s": r.lower_bound_s} for r in self.owners],
            "busy_s": dict(self.busy_s),
            "utilisation": dict(self.utilisation),
            "memory": {n: {"used_bytes": m.used_bytes,
                           "capacity_bytes": (m.capacity_bytes if np.isfinite(m.capacity_bytes)
                                              else None),
                           "stages": [{"owner": o, "stage": k, "peak_micro_batches": w,
                                       "peak_samples": s} for o, k, w, s in m.stages]}
                       for n, m in self.memory.items()},
            "feasible": self.feasible,
            "violations": list(self.violations),
            "num_tasks": len(self.trace),
        }


def _peaks(order: Sequence[Action], sizes: Sequence[int]) -> tuple[int, int]:
    """Peak micro-batches and samples in flight on a stage running ``order``."""
    count = samples = peak = peak_samples = 0
    for kind, m in order:
        sign = 1 if kind == "F" else -1
        count += sign
        samples += sign * sizes[m]
        peak = max(peak, count)
        peak_samples = max(peak_samples, samples)
    return peak, peak_samples


def _sequential_trace(traces: list[Trace], labels: tuple[str, ...]) -> tuple[Trace, list[float]]:
    """The owners' single-owner traces one after the other; the end of each turn."""
    resources: dict[str, int] = {}
    typed: dict[str, cost.Resource] = {}
    parts = []
    offset = 0.0
    ends = []
    step_base = 0
    for o, tr in enumerate(traces):
        index = np.asarray([resources.setdefault(r, len(resources)) for r in tr.resources],
                           dtype=np.int64)
        typed.update(zip(tr.resources, tr.typed_resources, strict=False))
        parts.append((index[tr.resource] if len(tr) else tr.resource, tr.step + step_base,
                      tr.kind, tr.micro_batch, tr.start + offset, tr.end + offset,
                      np.full(len(tr), o, dtype=np.int64)))
        step_base += len(tr.steps)
        offset += tr.makespan_s
        ends.append(offset)
    cols = [np.concatenate([p[i] for p in parts]) for i in range(7)]
    known = all(r in typed for r in resources)
    return Trace(resources=tuple(resources),
                 typed_resources=tuple(typed[r] for r in resources) if known else (),
                 steps=tuple(s for tr in traces for s in tr.steps),
                 step_stages=tuple(s for tr in traces for s in tr.step_stages),
                 resource=cols[0], step=cols[1], kind=cols[2].astype(np.int8),
                 micro_batch=cols[3], start=cols[4], end=cols[5], owner=cols[6],
                 owner_labels=labels), ends


def simulate_owners(problem: Problem, plan: OwnersPlan,
                    schedule: str | PipelineSchedule | None = None, *,
                    last_micro_batch: LastMicroBatch = "full") -> OwnersSimResult:
    """Simulate one iteration (``parallel``) or round (``sequential``) of a multi-owner plan.

    Parameters
    ----------
    problem : Problem
        Its ``training.owners`` decides the mode, ``training.replicas`` the memory rule.
    plan : OwnersPlan
        One plan per owner (checked with :func:`~pipesl.plan.validate_owners_plan`).
    schedule : str or PipelineSchedule, optional
        The schedule every owner runs (default ``training.schedule``); each owner's table is
        built from its own plan (:func:`~pipesl.schedules.plan_table`).
    last_micro_batch : {"full", "remainder"}
        As :func:`pipesl.sim.simulate`, per owner.

    Returns
    -------
    OwnersSimResult

    Raises
    ------
    PlanError
        When the plan is not valid for the problem.
    ProblemError
        On an unknown schedule or option.
    """
    if last_micro_batch not in ("full", "remainder"):
        raise ProblemError("last_micro_batch", "must be 'full' or 'remainder'", last_micro_batch)
    evaluation = evaluate_owners(problem, plan)  # validates the plan
    owners = problem.owners
    labels = tuple(o.label for o in owners)
    pipelines = []
    own_bounds = []
    for o, p in enumerate(plan.plans):
        sub = problem.owner_problem(o)
        b, batch = p.micro_batch_size, sub.training.batch_size
        m_total = cost.num_micro_batches(batch, b)
        last = b if last_micro_batch == "full" else batch - (m_total - 1) * b
        sizes = tuple([b] * (m_total - 1) + [last])
        table = plan_table(sub, p, schedule)
        pipelines.append(OwnerPipeline(cost.plan_steps(sub, p), table, sizes, labels[o]))
        own_bounds.append(makespan_lower_bound(sub, p, table))
    alone = [run_pipelines([pl]) for pl in pipelines]
    if problem.training.owners_mode == "sequential":
        trace, ends = _sequential_trace(alone, labels if len(owners) > 1 else ())
        makespan = ends[-1]
    else:
        trace = run_pipelines(pipelines)
        makespan = trace.makespan_s
        who = trace.owners()
        ends = [float(trace.end[who == o].max()) for o in range(len(owners))]
    bound = owners_bound(problem, plan, own_bounds)
    busy = trace.busy_s()
    memory = {}
    per_node: dict[str, list[tuple[int, int, int, int]]] = {}
    for o, (p, pl) in enumerate(zip(plan.plans, pipelines, strict=True)):
        for k, s in enumerate(p.stages):
            w, samples = _peaks(pl.table.orders[k], pl.micro_batch_sizes)
            per_node.setdefault(s.node, []).append((o, k, w, samples))
    for n, (used, cap) in evaluation.memory.items():
        memory[n] = OwnersNodeMemory(used, cap, tuple(per_node.get(n, ())))
    rows = tuple(
        OwnerRow(o, labels[o], owners[o].node, plan_label(p), owners[o].batch_size,
                 p.micro_batch_size, pl.table.num_micro_batches, p.num_stages, ends[o],
                 alone[o].makespan_s, own_bounds[o])
        for o, (p, pl) in enumerate(zip(plan.plans, pipelines, strict=True)))
    return OwnersSimResult(
        mode=problem.training.owners_mode,
        replicas=problem.training.replicas,
        schedule=pipelines[0].table.name,
        makespan_s=makespan,
        owner_makespans_s=tuple(ends),
        lower_bound_s=bound.value_s,
        bound_terms=bound.named(labels),
        owners=rows,
        busy_s=busy,
        utilisation={r: (v / makespan if makespan else 0.0) for r, v in busy.items()},
        memory=memory,
        violations=evaluation.violations,
        trace=trace,
    )
