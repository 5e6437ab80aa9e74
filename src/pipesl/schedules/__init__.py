"""Pipeline schedules as data: per-stage orders of forward/backward actions.

``get_schedule("1f1b").table(K, M)`` gives a :class:`ScheduleTable` whose ``orders[k]`` is
compute stage k's action list (``F0 F1 B0 ...``). The simulator and the runtime both execute
these lists; this package knows nothing of either (nor of networks or costs).
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
    PipelineSchedule,
    get_schedule,
    schedule_names,
)

__all__ = [
    "SCHEDULES",
    "Action",
    "ActionKind",
    "GPipe",
    "OneFOneB",
    "PipelineSchedule",
    "ScheduleTable",
    "format_actions",
    "get_schedule",
    "parse_actions",
    "schedule_names",
    "validate_orders",
]
