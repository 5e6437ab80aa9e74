"""pipesl: pipelined split learning over multi-hop edge networks.

Plan where to cut a DNN and which edge node runs each piece (with the routes between them and
the micro-batch size), simulate the pipeline, and train it that way.

The architecture, left to right (a package imports only what stands to its left)::

    problem -> plan -> cost -> solvers -> schedules -> sim -> runtime
            -> experiments -> plotting -> cli

The core (problem, cost, solvers, sim) needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipesl.lazy import load_lazy

if TYPE_CHECKING:
    from pipesl.cost import Evaluation, evaluate, objective, plan_document
    from pipesl.exceptions import (
        InfeasibleError,
        PipeslError,
        PlanError,
        ProblemError,
        RuntimeSetupError,
    )
    from pipesl.plan import (
        OwnersPlan,
        Plan,
        Stage,
        load_plan,
        plan_from_dict,
        validate_owners_plan,
        validate_plan,
    )
    from pipesl.problem import (
        ChainModel,
        DataOwner,
        Layer,
        Link,
        Network,
        Node,
        Problem,
        TrainingSpec,
        compose_problem,
        load_model,
        load_network,
        load_problem,
    )

__version__ = "0.1.0"

__all__ = [
    "ChainModel",
    "DataOwner",
    "Evaluation",
    "InfeasibleError",
    "Layer",
    "Link",
    "Network",
    "Node",
    "OwnersPlan",
    "PipeslError",
    "Plan",
    "PlanError",
    "Problem",
    "ProblemError",
    "RuntimeSetupError",
    "Stage",
    "TrainingSpec",
    "__version__",
    "compose_problem",
    "evaluate",
    "load_model",
    "load_network",
    "load_plan",
    "load_problem",
    "objective",
    "plan_document",
    "plan_from_dict",
    "validate_owners_plan",
    "validate_plan",
]


# Imported on first use (PEP 562), so that ``import pipesl.units`` or the CLI's ``--help`` does
# not load numpy, networkx and scipy.
_LAZY = {
    **dict.fromkeys(("Evaluation", "evaluate", "objective", "plan_document"), "pipesl.cost"),
    **dict.fromkeys(("InfeasibleError", "PipeslError", "PlanError", "ProblemError",
                     "RuntimeSetupError"), "pipesl.exceptions"),
    **dict.fromkeys(("OwnersPlan", "Plan", "Stage", "load_plan", "plan_from_dict",
                     "validate_owners_plan", "validate_plan"), "pipesl.plan"),
    **dict.fromkeys(("ChainModel", "DataOwner", "Layer", "Link", "Network", "Node", "Problem",
                     "TrainingSpec", "compose_problem", "load_model", "load_network",
                     "load_problem"), "pipesl.problem"),
}


def __getattr__(name: str) -> Any:
    return load_lazy(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
