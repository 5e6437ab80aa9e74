"""The whole exception tree of pipesl.

Every error a user can cause derives from :class:`PipeslError`; the CLI prints its message as
one line and exits with code 1. Anything else is a bug and keeps its traceback.

``PipeslError``
    ``ProblemError``       bad input: names the field, the value and the rule
    ``PlanError``          a plan that is structurally invalid for its problem
    ``InfeasibleError``    a problem with no valid plan: names the binding constraint
    ``RuntimeSetupError``  the runtime cannot start or a worker failed
"""

from __future__ import annotations

import reprlib

__all__ = [
    "InfeasibleError",
    "PipeslError",
    "PlanError",
    "ProblemError",
    "RuntimeSetupError",
]


class _Repr(reprlib.Repr):
    """A few items per level, so a huge or self-referencing value (a YAML alias bomb) costs
    no more to render than a small one; integers too long for ``str`` are described."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 4
        self.maxdeque = self.maxarray = 4
        self.maxstring = self.maxother = self.maxlong = 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 1000:
            return f"<an integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_REPR = _Repr()
# Control characters would break the one-line rule of every message.
_ONE_LINE = {c: f"\\x{c:02x}" for c in [*range(32), 127]}


def _short(value: object, limit: int = 60) -> str:
    """Render a value for an error message, truncated to ``limit`` characters."""
    if isinstance(value, str | bytes):
        text = repr(value[: limit + 1])
    elif isinstance(value, int | float) or value is None:
        text = _REPR.repr(value) if type(value) is int else repr(value)
    else:
        text = _REPR.repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class PipeslError(Exception):
    """Base class of every error a user of pipesl can cause."""


class ProblemError(PipeslError, ValueError):
    """Invalid input: a problem, network, model, plan or option file.

    Parameters
    ----------
    field : str
        Dotted path of the offending field, e.g. ``network.links[2].bandwidth``.
    message : str
        The rule that was broken (and, where it helps, how to fix it).
    value : object, optional
        The offending value; rendered (truncated) into the message when given.
    """

    _MISSING = object()

    def __init__(self, field: str, message: str, value: object = _MISSING) -> None:
        self.field = field
        self.rule = message
        self.value = value
        if value is ProblemError._MISSING:
            text = f"{field}: {message}" if field else message
        else:
            text = f"{field}: {_short(value)} {message}" if field else f"{_short(value)} {message}"
        super().__init__(text.translate(_ONE_LINE))


class PlanError(PipeslError, ValueError):
    """A plan that is structurally invalid for its problem (wrong cover, bad route, ...)."""


class InfeasibleError(PipeslError):
    """The problem has no valid plan; the message names the constraint that cannot be met."""


class RuntimeSetupError(PipeslError, RuntimeError):
    """The distributed runtime could not start, or a worker failed."""
