"""The typer application object and options shared by several commands."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from pipesl import __version__
from pipesl.exceptions import ProblemError

if TYPE_CHECKING:
    from pipesl.plan import Plan
    from pipesl.problem import Problem


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


FIGURE = (".png", ".svg", ".pdf")
"""Suffixes a chart or map is written as (matplotlib picks the format by suffix)."""
JSON = (".json",)


def check_writable(path: Path | None, option: str,
                   suffixes: tuple[str, ...] | None = None) -> None:
    """Refuse an output path before any work is done, so that a run never ends in a failed
    write: a missing or read-only folder, a folder given as the file, a name without one of
    ``suffixes`` (``--gantt noext``, ``--map m.docx``), a file that cannot be overwritten.

    Raises
    ------
    ProblemError
        Naming ``option``, in one line.
    """
    if path is None:
        return
    field = f"{option} {path}"  # the whole path: a truncated one would hide the file's name
    kinds = (", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1
             else suffixes[0]) if suffixes else ""
    if path.is_dir():
        example = f" such as {path / ('out' + suffixes[0])}" if suffixes else ""
        raise ProblemError(field, f"is a folder; give a file name{example}")
    if not path.parent.is_dir():
        raise ProblemError(field, f"cannot be written: folder {str(path.parent)!r} does not "
                           "exist")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        what = f"has the extension {path.suffix!r}" if path.suffix else "has no extension"
        raise ProblemError(field, f"{what}; give a file name ending in {kinds}")
    writable = os.access(path, os.W_OK) if path.exists() else os.access(path.parent, os.W_OK)
    if not writable:
        where = "the file" if path.exists() else f"folder {str(path.parent)!r}"
        raise ProblemError(field, f"cannot be written: {where} is not writable")


def write_file(write: Callable[[], object], path: Path, option: str) -> None:
    """Run ``write`` (which writes ``path``); an OS error becomes one line naming ``option``."""
    try:
        write()
    except OSError as exc:
        raise ProblemError(f"{option} {path}", f"cannot be written ({exc.strerror or exc})"
                           ) from None


def print_json(obj: Any) -> None:
    """Print exactly ``obj`` as JSON on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")


problem_files: list[str] = []
"""The problems this command loaded (file paths or scenario names), so that an infeasibility
found later by a planner names the problem it is about (:func:`pipesl.cli.main`)."""


def load_checked(argument: str) -> Problem:
    """``load_problem``, the cost model's check that a source alone can hold the model
    (:func:`pipesl.cost.fits.check_source_alone`), and a warning on stderr for what loads but
    cannot be what the user meant: compute nodes the source has no path to."""
    from pipesl.cost.fits import check_source_alone
    from pipesl.problem import load_problem
    from pipesl.problem.validate import unreachable_servers

    problem_files.append(argument)
    problem = load_problem(argument)
    check_source_alone(problem)
    cut = unreachable_servers(problem)
    if cut:
        shown = ", ".join(cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
        err_console.print(
            f"[yellow]warning:[/] {len(cut)} compute node(s) have no path from the "
            f"{_sources_text(problem)} and cannot take a stage: {escape(shown)} "
            "(is a link missing?)")
    return problem


def _sources_text(problem: Problem) -> str:
    """``source dev0``, or ``data owners cam0, cam1`` with several."""
    if problem.is_multi_owner:
        return "data owners " + escape(", ".join(o.node for o in problem.owners))
    return f"source {escape(problem.training.source)}"


def require_single_owner(problem: Problem, command: str) -> Problem:
    """Refuse a problem with several data owners in a command that plans one owner only.

    Raises
    ------
    ProblemError
        Naming ``training.sources`` and the commands that do take several owners.
    """
    if problem.is_multi_owner:
        raise ProblemError("training.sources",
                           f"has {problem.num_owners} data owners; {command} takes a problem "
                           "with one owner (several owners: pipesl show, plan, simulate, "
                           "train)")
    return problem


def warn_memory(problem: Problem, plan: Plan, what: str = "plan") -> None:
    """A warning on stderr for each node whose stages need more memory than it has."""
    from pipesl.cost import evaluate

    for violation in evaluate(problem, plan).violations:
        err_console.print(f"[yellow]warning:[/] the {what} does not fit in memory: "
                          f"{escape(violation)}")
