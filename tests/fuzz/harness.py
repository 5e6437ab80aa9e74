"""The fuzz harness: run one hostile input through a loader or the CLI, judge how it ended.

Every case must end in exactly one of two ways:

* **a clean error**: a :class:`~pipesl.exceptions.PipeslError` whose message is one line, names
  the expected field (``<file>: <dotted.field>: ...``) and states the rule; through the CLI,
  exit code 1, nothing on stdout and one line ``error: ...`` on stderr;
* **a valid, equivalent load**, when the mutation keeps the input valid: the loaded object must
  equal the one the test predicts (a silently *accepted* malformed input fails the test).

No case may take longer than its time budget (a SIGALRM interrupts a hang in Python code, and
the elapsed time is checked afterwards for a hang in C code). Outcomes are tallied per class
of input in :data:`TALLY`; ``tests/fuzz/conftest.py`` prints the table after the run and
``benchmarks/fuzz_report.py`` runs the folder and prints it too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from pipesl.exceptions import PipeslError, ProblemError
from pipesl.problem.types import Problem

__all__ = [
    "CASE_SECONDS",
    "CLI",
    "CLI_SECONDS",
    "FUZZ",
    "SLOW",
    "TALLY",
    "Accept",
    "Hang",
    "Reject",
    "budget",
    "expect_error",
    "judge",
    "record",
    "run_cli",
]

CASE_SECONDS = float(os.environ.get("PIPESL_FUZZ_CASE_SECONDS", "10"))
"""Time budget of one library case (generous: the CI machine may be loaded)."""
CLI_SECONDS = float(os.environ.get("PIPESL_FUZZ_CLI_SECONDS", "30"))
"""Time budget of one CLI case (``pipesl plan`` solves the problem when it is valid)."""

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.function_scoped_fixture]
FUZZ = settings(derandomize=True, deadline=None, database=None, max_examples=25,
                suppress_health_check=_HEALTH, print_blob=True)
"""Default fuzz settings: deterministic (same cases on every run), no deadline (the per-case
budget below is the hang check), 25 examples per test unless a test says otherwise."""
SLOW = settings(FUZZ, max_examples=300)
"""For the ``@pytest.mark.slow`` runs: twelve times the cases."""
CLI = settings(FUZZ, max_examples=5)
"""Through the command line (each case costs a whole command): fewer cases per test; the
library tests above carry the volume, these prove the CLI ends every class the same way."""

TALLY: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""class of input -> outcome -> number of cases."""


def record(cls: str, outcome: str) -> None:
    """Count one case of ``cls`` that ended in ``outcome``."""
    TALLY[cls][outcome] += 1


def dump_tally(path: str) -> None:
    """Write :data:`TALLY` as JSON (used by ``benchmarks/fuzz_report.py``)."""
    with open(path, "w", encoding="utf-8") as stream:
        json.dump({k: dict(v) for k, v in sorted(TALLY.items())}, stream, indent=1)


class Hang(BaseException):
    """Raised by the alarm when a case exceeds its budget (BaseException: code under test that
    catches ``Exception`` cannot swallow it)."""


@contextlib.contextmanager
def budget(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail the case if it runs longer than ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"the case ran longer than its {seconds:g} s budget")

    # Someone else's alarm (pytest-timeout's signal method) is left alone: then only the
    # elapsed time is checked.
    own = signal.getitimer(signal.ITIMER_REAL)[0] == 0
    if own:
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.perf_counter()
    try:
        yield
    finally:
        if own:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    elapsed = time.perf_counter() - started
    if elapsed > seconds:  # a hang inside C code that the alarm could not interrupt
        raise Hang(f"the case took {elapsed:.1f} s, over its {seconds:g} s budget")


@dataclass(frozen=True)
class Reject:
    """The input is malformed: it must end in ``error`` naming ``field`` with ``rule``.

    ``field`` is the dotted field inside the file (``network.nodes[2].memory``), ``""`` for
    the file as a whole, or None for "some field" (an alias bomb is named where its expansion
    crosses the limit); the message must start with ``<file>: <field>: `` (``<file>: ``).
    ``rule`` may be a tuple of alternatives.
    """

    field: str | None
    rule: str | tuple[str, ...]
    error: type[PipeslError] = ProblemError


@dataclass(frozen=True)
class Accept:
    """The input is valid: it must load as ``expected``.

    When ``expected`` itself breaks a cross-field rule (validated by
    :func:`~pipesl.problem.validate_problem` on the object, not the file), the load must fail
    with the same error.
    """

    expected: Any


Expectation = Reject | Accept


def check_message(message: str, where: str, field: str | None,
                  rule: str | tuple[str, ...]) -> None:
    """One line, prefixed by the file and the field, containing the rule."""
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    assert "Traceback" not in message, message
    prefix = f"{where}: {field}: " if field else f"{where}: "
    if where == "":
        prefix = f"{field}: " if field else ""
    assert message.startswith(prefix), f"expected the field {prefix!r} in {message!r}"
    if field is None:  # some field: "<file>: <path>: <rule>" or "<file>: <rule>"
        assert len(message) > len(prefix)
    rules = (rule,) if isinstance(rule, str) else rule
    assert any(r in message for r in rules), f"expected the rule {rule!r} in {message!r}"


def expect_error(cls: str, call: Callable[[], Any], where: str, field: str | None,
                 rule: str | tuple[str, ...],
                 error: type[PipeslError] = ProblemError,
                 seconds: float = CASE_SECONDS) -> PipeslError:
    """Run ``call``; it must raise ``error`` naming ``where: field`` with ``rule``."""
    try:
        with budget(seconds):
            result = call()
    except PipeslError as exc:
        record(cls, type(exc).__name__)
        assert isinstance(exc, error), f"{type(exc).__name__} instead of {error.__name__}: {exc}"
        check_message(str(exc), where, field, rule)
        return exc
    except Hang:
        record(cls, "HANG")
        raise
    except Exception:
        record(cls, "BUG (traceback)")
        raise
    record(cls, "ACCEPTED (silently)")
    pytest.fail(f"malformed input accepted silently (expected {field!r}: {rule!r}): "
                f"{str(result)[:300]}")


def judge(cls: str, call: Callable[[], Any], where: str, expectation: Expectation,
          seconds: float = CASE_SECONDS) -> None:
    """Run ``call`` (a loader) and hold its outcome to ``expectation``."""
    if isinstance(expectation, Reject):
        expect_error(cls, call, where, expectation.field, expectation.rule, expectation.error,
                     seconds)
        return
    expected = expectation.expected
    predicted: PipeslError | None = None
    if isinstance(expected, Problem):
        from pipesl.problem import validate_problem

        try:
            validate_problem(expected)
        except PipeslError as exc:
            predicted = exc
    if predicted is not None:
        # The same error as on the objects; a ProblemError also names the file.
        field = getattr(predicted, "field", None)
        exc = expect_error(cls, call, where if field else "", field or "", "",
                           type(predicted), seconds)
        assert str(exc) in (str(predicted), f"{where}: {predicted}"), (str(exc), str(predicted))
        return
    try:
        with budget(seconds):
            loaded = call()
    except Hang:
        record(cls, "HANG")
        raise
    except PipeslError as exc:
        record(cls, f"REFUSED valid input ({type(exc).__name__})")
        raise AssertionError(f"a valid input was refused: {exc}") from exc
    except Exception:
        record(cls, "BUG (traceback)")
        raise
    record(cls, "accepted, equal")
    assert loaded == expected, f"loaded {loaded!r}\nexpected {expected!r}"


def run_cli(argv: list[str], seconds: float = CLI_SECONDS) -> tuple[int, str, str]:
    """``pipesl <argv>`` in this process: (exit code, stdout, stderr)."""
    from pipesl.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int
    with budget(seconds), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def expect_cli_error(cls: str, argv: list[str], words: tuple[str, ...],
                     seconds: float = CLI_SECONDS) -> str:
    """``pipesl <argv>`` must exit 1 with one line ``error: ...`` containing ``words``."""
    try:
        code, out, err = run_cli(argv, seconds)
    except Hang:
        record(cls, "HANG")
        raise
    except Exception:
        record(cls, "BUG (traceback)")
        raise
    lines = err.strip().splitlines()
    outcome = f"exit {code}" if code != 0 else "exit 0 (ACCEPTED)"
    record(cls, outcome)
    assert code == 1, f"exit {code}; stderr {err!r}"
    assert out == "", f"an error printed on stdout: {out!r}"
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
