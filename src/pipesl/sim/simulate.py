"""Simulate one training iteration of a plan: :func:`simulate` -> :class:`SimResult`.

Task durations come from :func:`pipesl.cost.plan_steps` (the one cost model); the schedule
from :mod:`pipesl.schedules`; the mechanics from :mod:`pipesl.sim.pipeline`. The analytic T of
SPEC section 3 is reported beside the simulated makespan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from pipesl import cost
from pipesl.exceptions import PlanError, ProblemError
from pipesl.plan import OwnersPlan, Plan
from pipesl.problem.types import Problem
from pipesl.schedules import SCHEDULES, PipelineSchedule, ScheduleTable, plan_table
from pipesl.sim.pipeline import run_pipeline
from pipesl.sim.trace import Trace

if TYPE_CHECKING:
    from pipesl.sim.owners import OwnersSimResult

__all__ = ["LastMicroBatch", "NodeMemory", "SimResult", "simulate"]

LastMicroBatch = Literal["full", "remainder"]


@dataclass(frozen=True)
class NodeMemory:
    """Activations a compute node holds at its peak, against the SPEC memory rule."""

    stage: int
    """0-based compute stage index."""
    peak_micro_batches: int
    """Most micro-batches whose forward has started and whose backward has not finished."""
    peak_samples: int
    """The same peak counted in samples (the last micro-batch may be smaller)."""
    spec_samples: float | None
    """W * b of SPEC section 3 for the simulated schedule (None for a custom schedule)."""


@dataclass(frozen=True, eq=False)
class SimResult:
    """One simulated iteration: makespan, the analytic T beside it, utilisation and a trace."""

    schedule: str
    """Name of the simulated schedule (``gpipe``, ``1f1b`` or ``custom``)."""
    makespan_s: float
    """Simulated time from the first forward's start to the last backward's end."""
    analytic_s: float
    """T(plan, b) of SPEC section 3 (``pipesl.cost.objective``)."""
    first_micro_batch_s: float
    """Analytic first term: the sum of stage times (one micro-batch's trip)."""
    bottleneck_s: float
    """Analytic max load over resources, per micro-batch."""
    bottleneck_resource: str
    batch_size: int
    """B."""
    micro_batch_size: int
    """b."""
    num_micro_batches: int
    """M = ceil(B / b)."""
    last_micro_batch_size: int
    """b for ``last_micro_batch="full"`` (as the analytic model assumes), else B - (M-1) b."""
    num_stages: int
    """K, compute stages."""
    busy_s: dict[str, float]
    """Seconds each resource served tasks, in order of first use."""
    utilisation: dict[str, float]
    """``busy_s / makespan_s`` per resource."""
    bubble_fraction: float
    """Share of compute time lost to idling: ``1 - sum(compute busy) / (K * makespan)``."""
    memory: dict[str, NodeMemory]
    """Per compute node, its peak activations in flight."""
    trace: Trace = field(repr=False)
    """Every task with its times; ``trace.to_chrome()`` for chrome://tracing / Perfetto."""
    forward_only: bool = False
    """True when only the forward passes were simulated."""

    @property
    def gap_s(self) -> float:
        """``makespan_s - analytic_s``: positive where the analytic T is optimistic."""
        return self.makespan_s - self.analytic_s

    @property
    def relative_gap(self) -> float:
        """``gap_s / analytic_s``."""
        return self.gap_s / self.analytic_s if self.analytic_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (without the trace): what ``pipesl simulate --json`` prints."""
        return {
            "schedule": self.schedule,
            "makespan_s": self.makespan_s,
            "analytic_s": self.analytic_s,
            "gap_s": self.gap_s,
            "relative_gap": self.relative_gap,
            "first_micro_batch_s": self.first_micro_batch_s,
            "bottleneck_s": self.bottleneck_s,
            "bottleneck_resource": self.bottleneck_resource,
            "batch_size": self.batch_size,
            "micro_batch_size": self.micro_batch_size,
            "num_micro_batches": self.num_micro_batches,
            "last_micro_batch_size": self.last_micro_batch_size,
            "num_stages": self.num_stages,
            "forward_only": self.forward_only,
            "bubble_fraction": self.bubble_fraction,
            "busy_s": dict(self.busy_s),
            "utilisation": dict(self.utilisation),
            "memory": {n: {"stage": m.stage, "peak_micro_batches": m.peak_micro_batches,
                           "peak_samples": m.peak_samples, "spec_samples": m.spec_samples}
                       for n, m in self.memory.items()},
            "num_tasks": len(self.trace),
        }


def _memory(problem: Problem, plan: Plan, trace: Trace, sizes: list[int],
            schedule: str) -> dict[str, NodeMemory]:
    """Peak activations in flight on each compute node, from the trace (+ at F, - at B)."""
    out: dict[str, NodeMemory] = {}
    k_total = plan.num_stages
    size = np.asarray(sizes, dtype=np.int64)
    for k, s in enumerate(plan.stages):
        r = trace.resources.index(cost.Resource("node", s.node).name)
        mask = trace.resource == r
        # Trace order is by start time; a node runs one task at a time, so this is its order.
        sign = np.where(trace.kind[mask] == 0, 1, -1)
        count = np.cumsum(sign)
        samples = np.cumsum(sign * size[trace.micro_batch[mask]])
        if schedule == "1f1b-net":
            spec: float | None = float(cost.net_warmups(
                problem.with_training(schedule="1f1b-net"), plan)[k] * plan.micro_batch_size)
        elif schedule in SCHEDULES:
            spec = cost.activation_window(problem, plan.micro_batch_size, k, k_total, schedule)
        else:
            spec = None
        out[s.node] = NodeMemory(k, int(count.max(initial=0)), int(samples.max(initial=0)),
                                 spec)
    return out


@overload
def simulate(problem: Problem, plan: Plan,
             schedule: str | PipelineSchedule | ScheduleTable | None = None, *,
             last_micro_batch: LastMicroBatch = "full",
             forward_only: bool = False) -> SimResult: ...
@overload
def simulate(problem: Problem, plan: OwnersPlan,
             schedule: str | PipelineSchedule | ScheduleTable | None = None, *,
             last_micro_batch: LastMicroBatch = "full",
             forward_only: bool = False) -> OwnersSimResult: ...
def simulate(problem: Problem, plan: Plan | OwnersPlan,
             schedule: str | PipelineSchedule | ScheduleTable | None = None, *,
             last_micro_batch: LastMicroBatch = "full",
             forward_only: bool = False) -> SimResult | OwnersSimResult:
    """Simulate one training iteration of ``plan`` (SPEC section 5).

    An :class:`~pipesl.plan.OwnersPlan` (a problem with several data owners) goes to
    :func:`pipesl.sim.owners.simulate_owners` (no ``forward_only``, no explicit table).

    Parameters
    ----------
    problem : Problem
    plan : Plan
        A structurally valid plan of ``problem`` (checked).
    schedule : str, PipelineSchedule or ScheduleTable, optional
        ``"gpipe"``, ``"1f1b"``, ``"1f1b-net"``, a schedule object, or an explicit table of K x M
        micro-batches; default: ``problem.training.schedule``.
    last_micro_batch : {"full", "remainder"}
        ``"full"``: every micro-batch has b samples, as the analytic T assumes; ``"remainder"``:
        the last one has the true remainder ``B - (M - 1) b``.
    forward_only : bool
        Simulate only the forward passes (no backward, no loss).

    Returns
    -------
    SimResult

    Raises
    ------
    PlanError
        When the plan is not valid for the problem.
    ProblemError
        On an unknown schedule name, a table of the wrong size, or a bad option.

    Notes
    -----
    With M = 1 the makespan is the analytic first term, the sum of stage times (equal up to
    floating-point rounding: the simulator adds pass by pass). The simulator has no other
    approximation; where its makespan exceeds the analytic T the model is optimistic.

    Examples
    --------
    >>> result = simulate(problem, plan, "1f1b")          # doctest: +SKIP
    >>> result.makespan_s, result.analytic_s              # doctest: +SKIP
    """
    if isinstance(plan, OwnersPlan):
        from pipesl.sim.owners import simulate_owners

        if forward_only:
            raise ProblemError("forward_only", "is not supported with several data owners")
        if isinstance(schedule, ScheduleTable):
            raise ProblemError("schedule", "must be a schedule name or object with several "
                               "data owners (each owner's table comes from its own plan)")
        return simulate_owners(problem, plan, schedule, last_micro_batch=last_micro_batch)
    if problem.is_multi_owner:
        raise PlanError(f"plan: is one owner's plan; the problem has {problem.num_owners} data "
                        "owners (simulate an OwnersPlan, one plan per owner)")
    if last_micro_batch not in ("full", "remainder"):
        raise ProblemError("last_micro_batch", "must be 'full' or 'remainder'", last_micro_batch)
    evaluation = cost.evaluate(problem, plan)  # validates the plan
    b, batch = plan.micro_batch_size, problem.training.batch_size
    m_total = cost.num_micro_batches(batch, b)
    last = b if last_micro_batch == "full" else batch - (m_total - 1) * b
    sizes = [b] * (m_total - 1) + [last]
    schedule = problem.training.schedule if schedule is None else schedule
    table = plan_table(problem, plan, schedule)
    trace = run_pipeline(cost.plan_steps(problem, plan), table, sizes, forward_only)

    makespan = trace.makespan_s
    busy = trace.busy_s()
    compute = [cost.Resource("node", s.node).name for s in plan.stages]
    bubble = 1.0 - sum(busy[r] for r in compute) / (len(compute) * makespan) if makespan else 0.0
    return SimResult(
        schedule=table.name,
        makespan_s=makespan,
        analytic_s=evaluation.objective_s,
        first_micro_batch_s=evaluation.first_micro_batch_s,
        bottleneck_s=evaluation.bottleneck_s,
        bottleneck_resource=evaluation.bottleneck_resource,
        batch_size=batch,
        micro_batch_size=b,
        num_micro_batches=m_total,
        last_micro_batch_size=last,
        num_stages=plan.num_stages,
        busy_s=busy,
        utilisation={r: (v / makespan if makespan else 0.0) for r, v in busy.items()},
        bubble_fraction=bubble,
        memory=_memory(problem, plan, trace, sizes, table.name),
        trace=trace,
        forward_only=forward_only,
    )
