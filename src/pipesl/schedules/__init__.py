"""Pipeline schedules as data: per-stage orders of forward/backward actions.

``get_schedule("1f1b").table(K, M)`` gives a :class:`ScheduleTable` whose ``orders[k]`` is
compute stage k's action list (``F0 F1 B0 ...``). The simulator and the runtime both execute
these lists. ``plan_table(problem, plan)`` is the one builder for a plan (``1f1b-net`` reads
the plan's costs for its warm-up depths); the rest knows nothing of networks or costs.
"""

from pipesl.schedules.actions import (
    Action,
    ActionKind,
    ScheduleTable,
    format_actions,
    parse_actions,
    validate_orders,
)
from pipesl.schedules.builtin import (
    SCHEDULES,
    GPipe,
    OneFOneB,
    OneFOneBNet,
    PipelineSchedule,
    get_schedule,
    schedule_names,
)
from pipesl.schedules.planned import makespan_lower_bound, peak_in_flight, plan_table

__all__ = [
    "SCHEDULES",
    "Action",
    "ActionKind",
    "GPipe",
    "OneFOneB",
    "OneFOneBNet",
    "PipelineSchedule",
    "ScheduleTable",
    "format_actions",
    "get_schedule",
    "makespan_lower_bound",
    "parse_actions",
    "peak_in_flight",
    "plan_table",
    "schedule_names",
    "validate_orders",
]
