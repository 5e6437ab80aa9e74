"""Problem inputs: the network, the chain model, training options, and their files.

See SPEC section 2 and ``docs/formats.md``. The names below are imported on first use
(PEP 562): ``pipesl.problem.scenarios`` (the built-in names) loads without networkx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipesl.lazy import load_lazy

if TYPE_CHECKING:
    from pipesl.problem.io import (
        compose_problem,
        dump_network,
        dump_problem,
        load_model,
        load_network,
        load_problem,
        model_to_dict,
        network_to_dict,
        problem_from_dict,
        problem_to_dict,
    )
    from pipesl.problem.scenarios import DEFAULT_SCENARIO, builtin_names, list_builtins
    from pipesl.problem.types import (
        ChainModel,
        DataOwner,
        Layer,
        Link,
        Network,
        Node,
        Problem,
        TrainingSpec,
    )
    from pipesl.problem.validate import validate_problem

__all__ = [
    "DEFAULT_SCENARIO",
    "ChainModel",
    "DataOwner",
    "Layer",
    "Link",
    "Network",
    "Node",
    "Problem",
    "TrainingSpec",
    "builtin_names",
    "compose_problem",
    "dump_network",
    "dump_problem",
    "list_builtins",
    "load_model",
    "load_network",
    "load_problem",
    "model_to_dict",
    "network_to_dict",
    "problem_from_dict",
    "problem_to_dict",
    "validate_problem",
]

_LAZY = {
    **dict.fromkeys(("compose_problem", "dump_network", "dump_problem", "load_model",
                     "load_network", "load_problem", "model_to_dict", "network_to_dict",
                     "problem_from_dict", "problem_to_dict"), "pipesl.problem.io"),
    **dict.fromkeys(("DEFAULT_SCENARIO", "builtin_names", "list_builtins"),
                    "pipesl.problem.scenarios"),
    **dict.fromkeys(("ChainModel", "DataOwner", "Layer", "Link", "Network", "Node", "Problem",
                     "TrainingSpec"), "pipesl.problem.types"),
    "validate_problem": "pipesl.problem.validate",
}


def __getattr__(name: str) -> Any:
    return load_lazy(__name__, _LAZY, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
