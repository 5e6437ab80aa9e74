"""Problem inputs: the network, the chain model, training options, and their files.

See SPEC section 2 and ``docs/formats.md``.
"""

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
