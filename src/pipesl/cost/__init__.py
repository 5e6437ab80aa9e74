"""THE cost model of pipesl (SPEC section 3): every time and memory figure comes from here.

* :mod:`pipesl.cost.model` — stage times affine in b, resource loads, the objective T, memory,
  plan evaluation and the SPEC plan document;
* :mod:`pipesl.cost.tables` — the same formulas vectorised (prefix sums) for the solvers;
* :mod:`pipesl.cost.migration` — bulk transfers of model state when a job switches plans.
"""

from pipesl.cost.migration import (
    BulkTransfer,
    bulk_route,
    bulk_transfer_seconds,
    concurrent_transfer_seconds,
)
from pipesl.cost.model import (
    Affine,
    Evaluation,
    PlanStage,
    StagePhases,
    activation_window,
    compute_time,
    evaluate,
    feasible_micro_batch_sizes,
    hop_seconds,
    hop_time,
    link_resources,
    memory_use,
    min_stage_memory,
    net_warmups,
    num_micro_batches,
    objective,
    plan_document,
    plan_stages,
    resource_loads,
    resource_name,
    seconds_per_bit,
    stage_memory,
    stage_phases,
    transfer_time,
    transfer_weight,
)
from pipesl.cost.tables import CostTables

__all__ = [
    "Affine",
    "BulkTransfer",
    "CostTables",
    "Evaluation",
    "PlanStage",
    "StagePhases",
    "activation_window",
    "bulk_route",
    "bulk_transfer_seconds",
    "compute_time",
    "concurrent_transfer_seconds",
    "evaluate",
    "feasible_micro_batch_sizes",
    "hop_seconds",
    "hop_time",
    "link_resources",
    "memory_use",
    "min_stage_memory",
    "net_warmups",
    "num_micro_batches",
    "objective",
    "plan_document",
    "plan_stages",
    "resource_loads",
    "resource_name",
    "seconds_per_bit",
    "stage_memory",
    "stage_phases",
    "transfer_time",
    "transfer_weight",
]
