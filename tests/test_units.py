"""Unit strings -> SI floats (``pipesl.units``): every family, every prefix, every error."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipesl.exceptions import ProblemError
from pipesl.units import KINDS, format_quantity, parse_quantity


@pytest.mark.parametrize(("text", "kind", "expected"), [
    # bandwidth: bits per second; a lower-case b is a bit, an upper-case B a byte (x 8).
    ("100 Mbps", "bandwidth", 1e8),
    ("1 Gbit/s", "bandwidth", 1e9),
    ("1 Gbits/s", "bandwidth", 1e9),
    ("2.5 kb/s", "bandwidth", 2.5e3),
    ("3 Kbps", "bandwidth", 3e3),
    ("7 bps", "bandwidth", 7.0),
    ("1 Tbps", "bandwidth", 1e12),
    ("100 MBps", "bandwidth", 8e8),
    ("1 MB/s", "bandwidth", 8e6),
    ("2 Gbyte/s", "bandwidth", 1.6e10),
    ("1 bytes/s", "bandwidth", 8.0),
    ("1 Mibps", "bandwidth", 2**20),
    ("1 MiBps", "bandwidth", 8 * 2**20),
    # bytes: SI prefixes are powers of 1000, binary ones powers of 1024.
    ("8 GB", "bytes", 8e9),
    ("4 GiB", "bytes", 4 * 2**30),
    ("512 KiB", "bytes", 524288.0),
    ("1 kB", "bytes", 1e3),
    ("1 KB", "bytes", 1e3),
    ("3 MiB", "bytes", 3 * 2**20),
    ("2 TiB", "bytes", 2 * 2**40),
    ("1 PiB", "bytes", 2**50),
    ("1 EiB", "bytes", 2**60),
    ("1 PB", "bytes", 1e15),
    ("1 EB", "bytes", 1e18),
    ("8 Gbit", "bytes", 1e9),
    ("8 Gb", "bytes", 1e9),
    ("16 bits", "bytes", 2.0),
    ("12 bytes", "bytes", 12.0),
    ("1 byte", "bytes", 1.0),
    ("1 B", "bytes", 1.0),
    ("1 MB", "bytes", 1e6),
    # FLOP/s and FLOP; a MAC is 2 FLOP.
    ("10 TFLOPS", "flop_rate", 1e13),
    ("2.5 GFLOP/s", "flop_rate", 2.5e9),
    ("1 PFLOPS", "flop_rate", 1e15),
    ("3 Tflops", "flop_rate", 3e12),
    ("4 MFLOPs/s", "flop_rate", 4e6),
    ("1.5 GFLOP", "flops", 1.5e9),
    ("2 GFLOPs", "flops", 2e9),
    ("7 kflop", "flops", 7e3),
    ("1 MAC", "flops", 2.0),
    ("3 GMACs", "flops", 6e9),
    # seconds, with sub-unit prefixes.
    ("2 ms", "seconds", 2e-3),
    ("1.5 s", "seconds", 1.5),
    ("3 sec", "seconds", 3.0),
    ("1 second", "seconds", 1.0),
    ("2 seconds", "seconds", 2.0),
    ("10 us", "seconds", 1e-5),
    ("10 µs", "seconds", 1e-5),
    ("10 μs", "seconds", 1e-5),
    ("2 ns", "seconds", 2e-9),
    ("5 min", "seconds", 300.0),
    ("1.5 h", "seconds", 5400.0),
    # Spacing, signs and exponents.
    ("100Mbps", "bandwidth", 1e8),
    ("  8 GB  ", "bytes", 8e9),
    ("1e3 kB", "bytes", 1e6),
    (".5 GB", "bytes", 5e8),
    ("-2 ms", "seconds", -2e-3),
    # A numeric string (YAML 1.1 reads 1e9 as a string) or a number is already SI.
    ("1e9", "bandwidth", 1e9),
    ("2.5E-3", "seconds", 2.5e-3),
    ("42", "bytes", 42.0),
    (1e8, "bandwidth", 1e8),
    (4096, "bytes", 4096.0),
    (0, "seconds", 0.0),
    (math.inf, "bytes", math.inf),
])
def test_parse_quantity(text: object, kind: str, expected: float) -> None:
    value = parse_quantity(text, kind, "f")
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)


def test_bits_and_bytes_are_exact() -> None:
    assert parse_quantity("8 Gbit", "bytes") == parse_quantity("1 GB", "bytes")
    assert parse_quantity("100 MBps", "bandwidth") == 8 * parse_quantity("100 Mbps", "bandwidth")
    assert parse_quantity("1 KiB", "bytes") == 1024.0
    assert parse_quantity("1 kB", "bytes") == 1000.0
    assert parse_quantity("4 GiB", "bytes") == 4294967296.0


@pytest.mark.parametrize(("value", "kind", "rule"), [
    ("8 GB", "bandwidth", "unknown unit 'GB' for a bandwidth quantity"),   # bytes, not a rate
    ("100 mbps", "bandwidth", "unknown unit 'mbps'"),                      # milli-bits?
    ("10 TFLOPS", "flops", "unknown unit 'TFLOPS' for a flops quantity"),  # a rate, not a count
    ("1 GFLOP", "flop_rate", "unknown unit 'GFLOP'"),
    ("2 ms", "bytes", "unknown unit 'ms' for a bytes quantity"),
    ("5 mB", "bytes", "unknown unit 'mB'"),                                # no milli-bytes
    ("5 kmin", "seconds", "unknown unit 'kmin'"),                          # min takes no prefix
    ("2 mins", "seconds", "unknown unit 'mins'"),
    ("3 furlongs", "bytes", "unknown unit 'furlongs'"),
    ("fast", "bandwidth", "is not a quantity"),
    ("", "bytes", "is not a quantity"),
    ("GB", "bytes", "is not a quantity"),
    ("1,000 B", "bytes", "unknown unit"),
    ("nan", "bytes", "is not a quantity"),
    (math.nan, "bytes", "is NaN"),
    (float("nan"), "seconds", "is NaN"),
    (True, "bytes", "must be a number or a string with a unit"),
    (False, "seconds", "must be a number or a string with a unit"),
    (None, "bandwidth", "must be a number or a string with a unit"),
    ([8, "GB"], "bytes", "must be a number or a string with a unit"),
    ({"value": 8}, "bytes", "must be a number or a string with a unit"),
    (10**400, "bytes", "too large"),
])
def test_parse_quantity_errors(value: object, kind: str, rule: str) -> None:
    with pytest.raises(ProblemError) as info:
        parse_quantity(value, kind, "network.links[3].bandwidth")
    err = info.value
    assert err.field == "network.links[3].bandwidth"
    assert str(err).startswith("network.links[3].bandwidth: ")
    assert rule in str(err)


def test_unknown_unit_error_lists_the_units_of_the_kind() -> None:
    with pytest.raises(ProblemError, match=r"bps, bit/s, b/s, bits/s, Bps"):
        parse_quantity("8 GB", "bandwidth", "x")


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown quantity kind"):
        parse_quantity(1.0, "furlongs")
    assert set(KINDS) == {"bandwidth", "bytes", "flop_rate", "flops", "seconds"}


@pytest.mark.parametrize(("value", "kind", "text"), [
    (1e8, "bandwidth", "100 Mbit/s"),
    (8 * 2**30, "bytes", "8 GiB"),  # memory in binary units: 6 GiB reads as 6 GiB
    (8e9, "bytes", "7.45 GiB"),
    (1536, "bytes", "1.5 KiB"),
    (1000, "bytes", "1000 B"),
    (1e13, "flop_rate", "10 TFLOP/s"),
    (1.5e9, "flops", "1.5 GFLOP"),
    (2e-3, "seconds", "2 ms"),
    (2.5, "seconds", "2.5 s"),
    (0, "bytes", "0 B"),
    (math.inf, "bytes", "inf B"),
    (3e-10, "seconds", "0.3 ns"),
    (512, "bytes", "512 B"),
    (0.5, "bytes", "0.5 B"),
    (10, "bandwidth", "10 bit/s"),
    (6, "flops", "6 FLOP"),
])
def test_format_quantity(value: float, kind: str, text: str) -> None:
    assert format_quantity(value, kind) == text


_UNITS = {"bandwidth": "bit/s", "bytes": "B", "flop_rate": "FLOP/s", "flops": "FLOP",
          "seconds": "s"}


@given(st.floats(min_value=1e-9, max_value=1e15), st.sampled_from(sorted(_UNITS)))
def test_format_then_parse_is_close(value: float, kind: str) -> None:
    text = format_quantity(value, kind, digits=12)
    assert parse_quantity(text, kind) == pytest.approx(value, rel=1e-9)
