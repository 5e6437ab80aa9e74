"""Model references: a zoo name, or a user's ``package.module:factory`` / ``file.py:factory``.

A user's factory is called without arguments and returns either

* an ``nn.Sequential`` (its children are the units), or
* any ``nn.Module`` that states its chain in one of two ways, tried in this order:

  1. a method ``pipesl_units()`` returning the units in order, as modules or
     ``(name, module)`` pairs;
  2. an attribute ``blocks`` or ``layers`` that is an ``nn.ModuleList``/``nn.Sequential``
     whose members, run in order, *are* the whole model.

Because such a module's own ``forward`` may do more than run its blocks, :func:`resolve_model`
runs both on the example input (in eval mode) and refuses the model when they differ. The
factory (or the returned model) may carry an ``input_shape`` attribute, a per-sample shape
used when none is given. Inputs of user models are float tensors.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipesl.exceptions import ProblemError
from pipesl.models.registry import LossKind, example_batch, model_spec

__all__ = ["ResolvedModel", "load_factory", "resolve_model", "to_sequential"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference turned into a chain and one example sample."""

    name: str
    """Zoo name, or the factory's name for a user model."""
    model: nn.Sequential
    """The chain (units are its children)."""
    sample: torch.Tensor
    """One input sample, without a batch dimension."""
    loss: LossKind
    """How the output is trained (user models: ``classification``)."""


def _import_module(module_name: str, ref: str) -> Any:
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ProblemError("model", f"names the file {module_name!r}, which does not exist",
                               ref)
        spec = importlib.util.spec_from_file_location(f"pipesl_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ProblemError("model", f"cannot load {module_name!r} as a Python module", ref)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    added = os.getcwd() not in sys.path
    if added:  # like `python -m`: the current directory's packages are importable
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ProblemError("model", f"cannot import module {module_name!r} ({exc})", ref) from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def load_factory(ref: str) -> Callable[[], Any]:
    """Import the factory named by ``package.module:factory`` or ``path/file.py:factory``.

    Raises
    ------
    ProblemError
        Malformed reference, missing module or attribute, or a factory that needs arguments.
    """
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise ProblemError("model", "must be a zoo name or 'package.module:factory'", ref)
    module = _import_module(module_name, ref)
    try:
        factory = reduce(getattr, attr.split("."), module)
    except AttributeError:
        raise ProblemError("model", f"module {module_name!r} has no attribute {attr!r}",
                           ref) from None
    if not callable(factory):
        raise ProblemError("model", f"{attr!r} in {module_name!r} is not callable", ref)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        params = []  # type: ignore[assignment]
    required = [p.name for p in params if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ProblemError("model", f"factory {attr!r} must be callable without arguments "
                           f"(it requires {', '.join(required)})", ref)
    return factory  # type: ignore[no-any-return]


def _named(units: Iterable[Any], prefix: str) -> nn.Sequential:
    pairs: list[tuple[str, nn.Module]] = []
    for i, unit in enumerate(units):
        name, module = unit if isinstance(unit, tuple) else (f"{prefix}{i}", unit)
        if not isinstance(module, nn.Module):
            raise ProblemError("model", f"unit {i} ({name!r}) is a {type(module).__name__}, "
                               "not an nn.Module")
        pairs.append((str(name).replace(".", "_"), module))
    if not pairs:
        raise ProblemError("model", "has no units (its chain is empty)")
    return nn.Sequential(OrderedDict(pairs))


def to_sequential(module: nn.Module) -> nn.Sequential:
    """The chain of a user's module (see the module docstring); the modules are shared.

    Raises
    ------
    ProblemError
        ``module`` is not an ``nn.Module`` or states no chain.
    """
    if not isinstance(module, nn.Module):
        raise ProblemError("model", f"the factory returned a {type(module).__name__}, not an "
                           "nn.Module")
    if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
        return module
    units_fn = getattr(module, "pipesl_units", None)
    if callable(units_fn):
        return _named(units_fn(), "unit")
    for attr in ("blocks", "layers"):
        blocks = getattr(module, attr, None)
        if isinstance(blocks, nn.ModuleList | nn.Sequential):
            return _named(((f"{attr}.{n}", m) for n, m in blocks.named_children()), attr)
    raise ProblemError("model", f"{type(module).__name__} is not an nn.Sequential and has no "
                       "pipesl_units() method or 'blocks'/'layers' list; see docs/models.md")


def _check_same(module: nn.Module, chain: nn.Sequential, sample: torch.Tensor) -> None:
    """Refuse a chain that does not compute what ``module.forward`` computes."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            x = sample.unsqueeze(0)
            expected, got = module(x), chain(x)
    finally:
        module.train(was_training)
    same = (isinstance(expected, torch.Tensor) and expected.shape == got.shape
            and torch.allclose(expected, got, rtol=1e-4, atol=1e-5))
    if not same:
        raise ProblemError("model", f"running the units of {type(module).__name__} in order does "
                           "not reproduce its forward(); return an nn.Sequential or define "
                           "pipesl_units() listing every step")


def _shape_of(obj: Any) -> tuple[int, ...] | None:
    shape = getattr(obj, "input_shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def resolve_model(ref: str, *, input_shape: tuple[int, ...] | None = None,
                  **kwargs: Any) -> ResolvedModel:
    """Build the chain and an example sample for a zoo name or a user's factory.

    Parameters
    ----------
    ref : str
        A zoo name (``pipesl models``), ``package.module:factory`` or ``file.py:factory``.
    input_shape : tuple of int, optional
        Per-sample input shape; default the zoo entry's, or the ``input_shape`` attribute of a
        user's model or factory.
    **kwargs
        Passed to a zoo factory (not allowed for user factories).

    Returns
    -------
    ResolvedModel
    """
    if ":" not in ref:
        spec = model_spec(ref)
        inputs, _ = example_batch(spec.name, 1, input_shape=input_shape,
                                  num_classes=kwargs.get(spec.classes_arg))
        return ResolvedModel(spec.name, spec.factory(**kwargs), inputs[0], spec.loss)
    if kwargs:
        raise ProblemError("model", "a user factory takes no keyword arguments", ref)
    factory = load_factory(ref)
    module = factory()
    chain = to_sequential(module)
    shape = input_shape or _shape_of(module) or _shape_of(factory)
    if shape is None:
        factory_name = ref.rpartition(":")[2]
        raise ProblemError("input_shape", f"is required for the user model {ref!r}: give the "
                           f"factory or the model an input_shape attribute (e.g. "
                           f"{factory_name}.input_shape = (3, 32, 32), one sample without the "
                           "batch dimension); pipesl profile and pipesl calibrate also take "
                           "--input-shape 3x32x32")
    sample = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if chain is not module:
        _check_same(module, chain, sample)
    name = ref.rpartition(":")[2].rpartition(".")[2]
    return ResolvedModel(name, chain, sample, "classification")
