"""The ``pipesl`` command line: thin commands over the library (typer + rich).

Each command group lives in its own module and registers itself on :data:`app`. A domain
error (:class:`~pipesl.exceptions.PipeslError`) prints one line and exits 1; a bug keeps its
traceback.
"""

from __future__ import annotations

import sys

from pipesl.cli.app import app, problem_files
from pipesl.exceptions import InfeasibleError, PipeslError

# Command modules register themselves on import.
from pipesl.cli import evaluate as _evaluate  # noqa: F401  isort: skip
from pipesl.cli import show as _show  # noqa: F401  isort: skip
from pipesl.cli import demo as _demo  # noqa: F401  isort: skip
from pipesl.cli import plan as _plan  # noqa: F401  isort: skip
from pipesl.cli import compare as _compare  # noqa: F401  isort: skip
from pipesl.cli import replan as _replan  # noqa: F401  isort: skip
from pipesl.cli import profile as _profile  # noqa: F401  isort: skip
from pipesl.cli import simulate as _simulate  # noqa: F401  isort: skip
from pipesl.cli import train as _train  # noqa: F401  isort: skip
from pipesl.cli import experiment as _experiment  # noqa: F401  isort: skip
from pipesl.cli import probe as _probe  # noqa: F401  isort: skip
from pipesl.cli import testbed as _testbed  # noqa: F401  isort: skip

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pipesl`` console script.

    Usage errors are handled by typer (exit 2); a :class:`PipeslError` becomes one line on
    stderr and exit code 1; anything else is a bug and keeps its traceback.
    """
    problem_files.clear()
    try:
        app(args=argv, prog_name="pipesl")
    except PipeslError as exc:
        message = " ".join(str(exc).split())
        if isinstance(exc, InfeasibleError) and problem_files:
            # A planner's verdict names the constraint; say which problem it is about.
            name = problem_files[-1]
            message = message if message.startswith(name) else f"{name}: {message}"
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
