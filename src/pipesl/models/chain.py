"""Granularity: which modules of an ``nn.Sequential`` are the units of the chain.

* ``block``: the model's direct children, as registered (the zoo's units).
* ``layer``: every child that is a plain ``nn.Sequential`` is opened, recursively, into its
  children; any other module (a residual or transformer block, a user's custom module) stays
  whole, because only a plain ``nn.Sequential`` is known to be a chain.

Unit names are the modules' qualified names (``conv1_1``, ``layer2_1``, ``head.fc``), as in
``model.named_modules()``; :func:`as_chain` builds the ``nn.Sequential`` a runtime cuts, whose
child names are the same with ``.`` replaced by ``_`` (PyTorch forbids dots in child names).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import nn

from pipesl.exceptions import ProblemError

__all__ = ["GRANULARITIES", "Granularity", "as_chain", "chain_units"]

Granularity = Literal["layer", "block"]
GRANULARITIES: tuple[str, ...] = ("layer", "block")


def chain_units(model: nn.Sequential, granularity: str = "block") -> list[tuple[str, nn.Module]]:
    """The units of ``model`` at ``granularity``, in execution order, with qualified names.

    Parameters
    ----------
    model : torch.nn.Sequential
        The chain.
    granularity : {"block", "layer"}
        See the module docstring.

    Returns
    -------
    list of (str, torch.nn.Module)

    Raises
    ------
    ProblemError
        Unknown granularity, or a model that is not an ``nn.Sequential`` or has no units.
    """
    if granularity not in GRANULARITIES:
        raise ProblemError("granularity", f"must be one of {', '.join(GRANULARITIES)}",
                           granularity)
    if not isinstance(model, nn.Sequential):
        raise ProblemError("model", f"must be an nn.Sequential, not {type(model).__name__}")
    units: list[tuple[str, nn.Module]] = []

    def walk(name: str, module: nn.Module) -> None:
        if granularity == "layer" and type(module) is nn.Sequential and len(module) > 0:
            for child_name, child in module.named_children():
                walk(f"{name}.{child_name}", child)
        else:
            units.append((name, module))

    for name, child in model.named_children():
        walk(name, child)
    if not units:
        raise ProblemError("model", "is an empty nn.Sequential; a chain needs at least one unit")
    return units


def as_chain(model: nn.Sequential, granularity: str = "block") -> nn.Sequential:
    """``model`` as an ``nn.Sequential`` whose children are its units at ``granularity``.

    The modules are shared with ``model`` (no copy); at ``block`` granularity ``model`` itself
    is returned. Unit i (1-based, as in a plan) is ``chain[i - 1]``.
    """
    units = chain_units(model, granularity)
    if granularity == "block":
        return model
    names = [name.replace(".", "_") for name, _ in units]
    if len(set(names)) != len(names):
        names = [f"{i}_{n}" for i, n in enumerate(names)]
    return nn.Sequential(OrderedDict(zip(names, (m for _, m in units), strict=True)))
