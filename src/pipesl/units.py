"""Quantities with units: the only place pipesl parses unit strings.

Problem files in JSON use plain SI numbers. YAML files (and any field that accepts a quantity)
may also write a string with a unit; :func:`parse_quantity` turns it into the SI float that the
rest of pipesl uses:

=============  ==============  =====================================================
kind           SI unit         accepted units (prefixes below)
=============  ==============  =====================================================
``bandwidth``  bit/s           ``bps`` ``bit/s`` ``b/s`` ``bits/s`` (bits);
                               ``Bps`` ``B/s`` ``byte/s`` ``bytes/s`` (bytes, x 8)
``bytes``      byte            ``B`` ``byte`` ``bytes``; ``b`` ``bit`` ``bits`` (/ 8)
``flop_rate``  FLOP/s          ``FLOPS`` ``FLOP/s`` ``flops`` ``flop/s`` ``FLOPs/s``
``flops``      FLOP            ``FLOP`` ``FLOPs`` ``flop`` ``flops``; ``MAC`` ``MACs`` (x 2)
``seconds``    s               ``s`` ``sec`` ``second(s)``; ``min`` (60 s); ``h`` (3600 s)
=============  ==============  =====================================================

Prefixes are exact and case-sensitive where it matters:

* SI (powers of 1000): ``k`` (also ``K``) ``M`` ``G`` ``T`` ``P`` ``E``;
* binary (powers of 1024): ``Ki`` ``Mi`` ``Gi`` ``Ti`` ``Pi`` ``Ei``;
* for ``seconds`` only: ``m`` (1e-3), ``u`` / ``µ`` / ``μ`` (1e-6), ``n`` (1e-9).

A lower-case ``b`` is a bit and an upper-case ``B`` a byte: ``"100 Mbps"`` is 1e8 bit/s,
``"100 MBps"`` is 8e8 bit/s, ``"8 GB"`` is 8e9 bytes, ``"4 GiB"`` is 4 * 2**30 bytes and
``"8 Gbit"`` is 1e9 bytes. A bare number, or a numeric string such as ``"1e9"`` (which YAML 1.1
reads as a string), is taken as already in SI units.

Examples
--------
>>> parse_quantity("100 Mbps", "bandwidth")
100000000.0
>>> parse_quantity("1 Gbit/s", "bandwidth")
1000000000.0
>>> parse_quantity("4 GiB", "bytes")
4294967296.0
>>> parse_quantity("512 KiB", "bytes")
524288.0
>>> parse_quantity("10 TFLOPS", "flop_rate")
10000000000000.0
>>> parse_quantity("2 ms", "seconds")
0.002
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pipesl.exceptions import ProblemError

__all__ = ["KINDS", "Kind", "format_quantity", "parse_quantity"]

Kind = Literal["bandwidth", "bytes", "flop_rate", "flops", "seconds"]

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}
_SUB = {"m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9}

# base unit -> (factor to the SI unit of the kind, whether prefixes are allowed)
_BASES: dict[str, dict[str, tuple[float, bool]]] = {
    "bandwidth": {
        "bps": (1.0, True), "bit/s": (1.0, True), "b/s": (1.0, True), "bits/s": (1.0, True),
        "Bps": (8.0, True), "B/s": (8.0, True), "byte/s": (8.0, True), "bytes/s": (8.0, True),
    },
    "bytes": {
        "B": (1.0, True), "byte": (1.0, True), "bytes": (1.0, True),
        "b": (0.125, True), "bit": (0.125, True), "bits": (0.125, True),
    },
    "flop_rate": {
        "FLOPS": (1.0, True), "FLOP/s": (1.0, True), "flops": (1.0, True),
        "flop/s": (1.0, True), "FLOPs/s": (1.0, True),
    },
    "flops": {
        "FLOP": (1.0, True), "FLOPs": (1.0, True), "flop": (1.0, True), "flops": (1.0, True),
        "MAC": (2.0, True), "MACs": (2.0, True),
    },
    "seconds": {
        "s": (1.0, True), "sec": (1.0, True), "second": (1.0, False), "seconds": (1.0, False),
        "min": (60.0, False), "h": (3600.0, False),
    },
}
KINDS: tuple[str, ...] = tuple(_BASES)

_SI_NAME = {
    "bandwidth": "bit/s", "bytes": "bytes", "flop_rate": "FLOP/s", "flops": "FLOP", "seconds": "s",
}
_EXAMPLE = {
    "bandwidth": '"100 Mbps"', "bytes": '"8 GB"', "flop_rate": '"10 TFLOPS"',
    "flops": '"1.5 GFLOP"', "seconds": '"2 ms"',
}
# Applied to a stripped string: no nested or adjacent ambiguous repeats, so matching is linear.
_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*)?", re.DOTALL)
MAX_QUANTITY_CHARS = 100
"""Longest quantity string accepted (``"100 Mbps"`` needs 8)."""


def _unit_factor(unit: str, kind: str) -> float | None:
    """Return the SI factor of ``unit`` for ``kind``, or None when it is not a unit of it."""
    prefixes = dict(_SI)
    prefixes.update(_BINARY)
    if kind == "seconds":
        prefixes.update(_SUB)
    # Longest base first so that "bits/s" is not read as prefix "bit" + "s".
    for base, (factor, prefixable) in sorted(_BASES[kind].items(), key=lambda kv: -len(kv[0])):
        if not unit.endswith(base):
            continue
        prefix = unit[: len(unit) - len(base)]
        if prefix == "":
            return factor
        if prefixable and prefix in prefixes:
            return factor * prefixes[prefix]
    return None


def parse_quantity(value: object, kind: Kind | str, field: str = "") -> float:
    """Convert a number or a string with a unit into an SI float.

    Parameters
    ----------
    value : int, float or str
        A plain number (already SI), or a string such as ``"100 Mbps"`` or ``"1e9"``.
    kind : {"bandwidth", "bytes", "flop_rate", "flops", "seconds"}
        What the quantity measures; decides which units are accepted (module docstring).
    field : str, optional
        Dotted field name used in error messages.

    Returns
    -------
    float
        The value in the SI unit of ``kind`` (bit/s, bytes, FLOP/s, FLOP or seconds). It may
        be negative, zero or (for a float ``inf`` given as such) infinite; range checks belong
        to the caller.

    Raises
    ------
    ProblemError
        If the value is not a number, the string does not parse or is longer than
        :data:`MAX_QUANTITY_CHARS`, the unit is not one of ``kind``, the number is NaN, or a
        finite literal overflows the float range (``"1e400"``, ``"1e307 TB"``).
    """
    if kind not in _BASES:
        raise ValueError(f"unknown quantity kind {kind!r}; expected one of {', '.join(KINDS)}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ProblemError(
            field, f"must be a number or a string with a unit such as {_EXAMPLE[kind]}", value
        )
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond the float range, e.g. from JSON
            raise ProblemError(field, "is too large to be a quantity", value) from None
    else:
        text = value.strip()
        if len(text) > MAX_QUANTITY_CHARS:
            raise ProblemError(field, f"is longer than {MAX_QUANTITY_CHARS} characters; it is "
                               f"not a quantity such as {_EXAMPLE[kind]}", value)
        match = _NUMBER.fullmatch(text)
        if match is None:
            raise ProblemError(
                field, f"is not a quantity; write a number with a unit, e.g. {_EXAMPLE[kind]}",
                value,
            )
        number = float(match.group(1))
        if math.isinf(number):  # a finite literal such as "1e400" beyond the float range
            raise ProblemError(field, "is too large to be a quantity", value)
        unit = match.group(2)
        if unit:
            factor = _unit_factor(unit, kind)
            if factor is None:
                allowed = ", ".join(_BASES[kind])
                raise ProblemError(
                    field,
                    f"has unknown unit {unit!r} for a {kind} quantity (SI unit {_SI_NAME[kind]});"
                    f" use one of {allowed} with an SI (k, M, G, T) or binary (Ki, Mi, Gi) prefix",
                    value,
                )
            number *= factor
            if math.isinf(number):  # "1e307 TB"
                raise ProblemError(field, "is too large to be a quantity", value)
    if math.isnan(number):
        raise ProblemError(field, "is NaN; must be a number", value)
    return number


_DISPLAY = {
    "bandwidth": ("bit/s", [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]),
    # Memory in binary units (8 GiB reads as 8 GiB, not 8.59 GB), like the devices' own.
    "bytes": ("B", [(2.0**40, "Ti"), (2.0**30, "Gi"), (2.0**20, "Mi"), (2.0**10, "Ki"),
                    (1.0, "")]),
    "flop_rate": ("FLOP/s", [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                             (1.0, "")]),
    "flops": ("FLOP", [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                       (1.0, "")]),
    "seconds": ("s", [(1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]),
}


def format_quantity(value: float, kind: Kind | str, digits: int = 3) -> str:
    """Render an SI value with an SI prefix for people, e.g. ``1e8 -> "100 Mbit/s"``.

    Examples
    --------
    >>> format_quantity(1e8, "bandwidth")
    '100 Mbit/s'
    >>> format_quantity(0.0025, "seconds")
    '2.5 ms'
    """
    unit, steps = _DISPLAY[kind]
    if not math.isfinite(value):
        return f"{value} {unit}"
    if value == 0:
        return f"0 {unit}"
    for scale, prefix in steps:
        if abs(value) >= scale:
            # Below the first prefix a count may have 4 digits (1000 B, not 1e+03 B).
            shown = max(digits, 4) if scale == 1.0 else digits
            return f"{value / scale:.{shown}g} {prefix}{unit}"
    scale, prefix = steps[-1]
    return f"{value / scale:.{digits}g} {prefix}{unit}"
