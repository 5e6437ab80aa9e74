"""The typer application object and options shared by several commands."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer
import typer.core
from rich.console import Console

from pipesl import __version__
from pipesl.exceptions import ProblemError


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """No ``<bool>`` beside a switch in help: ``--json`` takes no value (``--json true`` is a
    usage error)."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

app = typer.Typer(
    name="pipesl",
    help="Pipelined split learning over multi-hop edge networks: plan, simulate, train.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

console = Console()
"""Human output (stdout)."""
err_console = Console(stderr=True)
"""Warnings and progress (stderr), so that ``--json`` output stays clean."""

PROBLEM_HELP = ("Problem file (.json/.yaml) or built-in scenario name "
                "(see `pipesl scenarios`); default: the edge-campus scenario.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pipesl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress to stderr."),
) -> None:
    """pipesl: plan, simulate and train pipelined split learning."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def seconds_text(seconds: float) -> str:
    """``412.5 ms`` below two seconds, ``2.31 s`` from there on (4 significant digits)."""
    return f"{seconds * 1e3:.4g} ms" if seconds < 2.0 else f"{seconds:.4g} s"


def check_writable(path: Path | None, option: str) -> None:
    """Refuse an output path whose folder does not exist, before any work is done.

    Raises
    ------
    ProblemError
        Naming ``option``.
    """
    if path is not None and not path.parent.is_dir():
        raise ProblemError(option, f"cannot be written: folder {str(path.parent)!r} does not "
                           "exist", str(path))


def print_json(obj: Any) -> None:
    """Print exactly ``obj`` as JSON on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")
