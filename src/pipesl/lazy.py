"""Public names of a package imported on first use (PEP 562), so that importing the package
stays cheap (``pipesl --help``) and torch-free (``pipesl.runtime``)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

__all__ = ["load_lazy"]


def load_lazy(package: str, where: Mapping[str, str], namespace: dict[str, Any],
              name: str) -> Any:
    """The value of ``package.name``, imported from the module ``where[name]``.

    A module name without a dot is a module of ``package``. The value is cached in the
    package's ``namespace`` (its ``globals()``), so the module's ``__getattr__`` runs once per
    name.

    Raises
    ------
    AttributeError
        When ``name`` is not one of the package's lazy names.
    """
    module = where.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(import_module(module if "." in module else f"{package}.{module}"), name)
    namespace[name] = value
    return value
