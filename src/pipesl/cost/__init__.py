"""THE cost model of pipesl (SPEC section 3): every time and memory figure comes from here.

* :mod:`pipesl.cost.model` — stage times affine in b, resource loads, the objective T, memory,
  plan evaluation and the SPEC plan document;
* :mod:`pipesl.cost.steps` — the one pipeline-step type (forward and backward pass, the typed
  resource each occupies) that the simulator, the bounds and the planner share;
* :mod:`pipesl.cost.tables` — the same formulas vectorised (prefix sums) for the solvers;
* :mod:`pipesl.cost.migration` — bulk transfers of model state when a job switches plans.
"""

from pipesl.cost.migration import (
    BulkTransfer,
    bulk_route,
    bulk_transfer_seconds,
    concurrent_transfer_seconds,
    state_bytes,
)
from pipesl.cost.model import (
    Affine,
    Evaluation,
    PlanStage,
    Resource,
    activation_window,
    compute_time,
    evaluate,
    feasible_micro_batch_sizes,
    flops_from_alpha,
    hop_seconds,
    hop_time,
    link_resources,
    memory_use,
    min_stage_memory,
    net_warmups,
    num_micro_batches,
    objective,
    overhead_from_beta,
    plan_document,
    plan_stages,
    rate_from_seconds,
    resource_loads,
    resource_name,
    seconds_per_bit,
    stage_memory,
    training_flops,
    transfer_bits,
    transfer_time,
    transfer_weight,
)
from pipesl.cost.steps import PipelineStep, compute_step, hop_resources, hop_step, plan_steps
from pipesl.cost.tables import CostTables

StagePhases = PipelineStep
"""Former name of :class:`PipelineStep` (a stage's two passes), kept for callers."""
stage_phases = plan_steps
"""Former name of :func:`plan_steps`, kept for callers."""

__all__ = [
    "Affine",
    "BulkTransfer",
    "CostTables",
    "Evaluation",
    "PipelineStep",
    "PlanStage",
    "Resource",
    "StagePhases",
    "activation_window",
    "bulk_route",
    "bulk_transfer_seconds",
    "compute_step",
    "compute_time",
    "concurrent_transfer_seconds",
    "evaluate",
    "feasible_micro_batch_sizes",
    "flops_from_alpha",
    "hop_resources",
    "hop_seconds",
    "hop_step",
    "hop_time",
    "link_resources",
    "memory_use",
    "min_stage_memory",
    "net_warmups",
    "num_micro_batches",
    "objective",
    "overhead_from_beta",
    "plan_document",
    "plan_stages",
    "plan_steps",
    "rate_from_seconds",
    "resource_loads",
    "resource_name",
    "seconds_per_bit",
    "stage_memory",
    "stage_phases",
    "state_bytes",
    "training_flops",
    "transfer_bits",
    "transfer_time",
    "transfer_weight",
]
