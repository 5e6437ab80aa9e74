"""One plan's simulated makespan, the quantity the makespan planner minimises.

Shared by :mod:`pipesl.solvers.makespan` (the certified search) and
:mod:`pipesl.solvers.split_floor` (whose floor search meets plans worth keeping).
"""

from __future__ import annotations

from pipesl.cost.bounds import gpipe_closed_form
from pipesl.plan import Plan
from pipesl.problem.types import Problem

__all__ = ["plan_makespan"]


def plan_makespan(problem: Problem, plan: Plan) -> float:
    """The simulated makespan of ``plan`` under ``training.schedule`` (what ``simulate`` says).

    GPipe's closed form where it is exact (:func:`pipesl.cost.bounds.gpipe_closed_form`),
    otherwise one run of the discrete-event simulator on the schedule's table.
    """
    if problem.training.schedule == "gpipe":
        closed = gpipe_closed_form(problem, plan)
        if closed is not None:
            return closed
    from pipesl.schedules import plan_table
    from pipesl.sim import plan_steps, run_pipeline

    table = plan_table(problem, plan)
    sizes = [plan.micro_batch_size] * table.num_micro_batches
    return run_pipeline(plan_steps(problem, plan), table, sizes).makespan_s
