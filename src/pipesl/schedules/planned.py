"""The one schedule-table builder for a plan: what the simulator, the planner and the runtime run.

``plan_table(problem, plan)`` gives the :class:`~pipesl.schedules.ScheduleTable` of the
problem's ``training.schedule`` for the plan's K compute stages and M micro-batches. GPipe and
1F1B depend on K and M only; ``1f1b-net`` takes its per-stage warm-up depths from the plan's
costs (:func:`pipesl.cost.net_warmups`), which is why every caller goes through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipesl.exceptions import ProblemError
from pipesl.schedules.actions import ScheduleTable
from pipesl.schedules.builtin import OneFOneBNet, PipelineSchedule, get_schedule

if TYPE_CHECKING:  # the CLI imports this package at start-up: no numerics before a plan
    from pipesl.plan import Plan
    from pipesl.problem.types import Problem

__all__ = ["makespan_lower_bound", "peak_in_flight", "plan_table"]


def plan_table(problem: Problem, plan: Plan,
               schedule: str | PipelineSchedule | ScheduleTable | None = None) -> ScheduleTable:
    """The schedule table that runs ``plan``: K stages x M = ceil(B / b) micro-batches.

    Parameters
    ----------
    problem, plan
    schedule : str, PipelineSchedule or ScheduleTable, optional
        A name (``gpipe``, ``1f1b``, ``1f1b-net``), a schedule object or an explicit table
        (checked for its shape); default: ``problem.training.schedule``.

    Raises
    ------
    ProblemError
        An unknown schedule name, or a table of the wrong shape.
    """
    from pipesl import cost

    k_total = plan.num_stages
    m_total = cost.num_micro_batches(problem.training.batch_size, plan.micro_batch_size)
    if isinstance(schedule, ScheduleTable):
        if (schedule.num_stages, schedule.num_micro_batches) != (k_total, m_total):
            raise ProblemError("schedule", f"has {schedule.num_stages} stages x "
                               f"{schedule.num_micro_batches} micro-batches; the plan needs "
                               f"{k_total} x {m_total}")
        return schedule.validate()
    rule = get_schedule(problem.training.schedule if schedule is None else schedule)
    if isinstance(rule, OneFOneBNet) and rule.warmups is None:
        net = problem if problem.training.schedule == "1f1b-net" else \
            problem.with_training(schedule="1f1b-net")
        rule = OneFOneBNet(cost.net_warmups(net, plan))
    return rule.table(k_total, m_total)


def peak_in_flight(table: ScheduleTable) -> tuple[int, ...]:
    """Per stage, the most micro-batches whose forward ran and whose backward has not (W)."""
    out = []
    for order in table.orders:
        count = peak = 0
        for kind, _ in order:
            count += 1 if kind == "F" else -1
            peak = max(peak, count)
        out.append(peak)
    return tuple(out)


def makespan_lower_bound(problem: Problem, plan: Plan,
                         schedule: str | PipelineSchedule | ScheduleTable | None = None
                         ) -> float:
    """A lower bound on ``simulate(problem, plan, schedule).makespan_s``.

    The bounds are those of :mod:`pipesl.cost.bounds`, read for this plan's schedule table.

    ``schedule``: a name, schedule object or table (default: the problem's schedule); the
    windows, chains and flush are read from its table for this plan.
    """
    from pipesl import cost
    from pipesl.cost.bounds import chain_lengths, flushes, pipeline_bound, plan_bound_steps

    table = plan_table(problem, plan, schedule)
    steps, last = plan_bound_steps(problem, plan)
    m = cost.num_micro_batches(problem.training.batch_size, plan.micro_batch_size)
    return pipeline_bound(steps, plan.micro_batch_size, m, peak_in_flight(table),
                          chain_lengths(table.orders), flushes(table.orders), last)
