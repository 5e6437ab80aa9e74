"""The model zoo (PyTorch; install ``pipesl[torch]``): every model is a chain of named units.

``get_model(name)`` returns an ``nn.Sequential`` whose children are the units a plan cuts
(layers, or whole residual/transformer blocks); ``list_models()`` lists the registry;
``example_batch(name, b)`` makes a synthetic batch; ``resolve_model(ref)`` also accepts a user's
``package.module:factory``. See ``docs/models.md``.
"""

from pipesl.models.chain import GRANULARITIES, Granularity, as_chain, chain_units
from pipesl.models.loader import ResolvedModel, load_factory, resolve_model, to_sequential
from pipesl.models.registry import (
    LossKind,
    ModelSpec,
    example_batch,
    get_model,
    list_models,
    loss_fn,
    model_spec,
)

__all__ = [
    "GRANULARITIES",
    "Granularity",
    "LossKind",
    "ModelSpec",
    "ResolvedModel",
    "as_chain",
    "chain_units",
    "example_batch",
    "get_model",
    "list_models",
    "load_factory",
    "loss_fn",
    "model_spec",
    "resolve_model",
    "to_sequential",
]
