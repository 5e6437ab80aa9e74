"""``pipesl compare PROBLEM`` (planners side by side) and ``pipesl plan --sweep-b`` (the
iteration time against the micro-batch size, for one's own problem)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipesl.cli.app import (
    JSON,
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    require_single_owner,
    write_file,
)
from pipesl.cli.plan import METHODS
from pipesl.cli.render import escape
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.problem.scenarios import DEFAULT_SCENARIO
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.problem import Problem

__all__ = ["SweepRow", "compare", "sweep_micro_batch_sizes", "sweep_sizes", "sweep_table"]

COMPARED = ("exact", "alternating", "no_pipeline", "fixed_b", "two_tier", "bottleneck_only",
            "even_split", "greedy", "random")
"""What ``pipesl compare`` runs by default: every planner that scales (not bruteforce/milp)."""


def _s(seconds: float) -> str:
    return format_quantity(seconds, "seconds")


@dataclass(frozen=True)
class SweepRow:
    """The best plan at one micro-batch size (None fields: no plan fits in memory)."""

    micro_batch_size: int
    num_micro_batches: int
    objective_s: float | None
    analytic_s: float | None
    stages: int | None
    bottleneck: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"micro_batch_size": self.micro_batch_size,
                "num_micro_batches": self.num_micro_batches, "objective_s": self.objective_s,
                "analytic_s": self.analytic_s, "stages": self.stages,
                "bottleneck": self.bottleneck}


def sweep_sizes(batch_size: int) -> list[int]:
    """The smallest b for each number of micro-batches M = ceil(B / b): every other b has the
    same M and larger micro-batches, so it is never faster (about 2 sqrt(B) values)."""
    return sorted({math.ceil(batch_size / m) for m in range(1, batch_size + 1)})


def sweep_micro_batch_sizes(problem: Problem, method: str = "exact",
                            objective: str = "analytic",
                            time_limit: float | None = None) -> list[SweepRow]:
    """The best plan of ``method`` at each size of :func:`sweep_sizes`."""
    from pipesl.solvers import solve

    rows = []
    options = {} if time_limit is None else {"time_limit": time_limit}
    for b in sweep_sizes(problem.training.batch_size):
        m = math.ceil(problem.training.batch_size / b)
        try:
            result = solve(problem, method, objective=objective, micro_batch_size=b, **options)
        except InfeasibleError:
            rows.append(SweepRow(b, m, None, None, None, None))
            continue
        ev = result.evaluation
        assert ev is not None
        rows.append(SweepRow(b, m, result.objective_s, ev.objective_s, result.plan.num_stages,
                             ev.bottleneck_resource))
    return rows


def sweep_table(rows: list[SweepRow], what: str) -> Table:
    """b, M, the objective (marking the best), analytic T, stages, bottleneck."""
    from rich.table import Table

    best = min((r.objective_s for r in rows if r.objective_s is not None), default=None)
    table = Table(title=f"{what} against the micro-batch size b (best plan at each b)",
                  title_justify="left")
    for col in ("b", "M", what, "analytic T", "stages", "bottleneck", ""):
        table.add_column(col, justify="left" if col in ("bottleneck", "") else "right")
    for r in rows:
        if r.objective_s is None:
            table.add_row(str(r.micro_batch_size), str(r.num_micro_batches), "no plan fits",
                          "-", "-", "-", "")
            continue
        assert r.analytic_s is not None and r.bottleneck is not None
        table.add_row(str(r.micro_batch_size), str(r.num_micro_batches), _s(r.objective_s),
                      _s(r.analytic_s), str(r.stages), escape(r.bottleneck),
                      "[bold]best[/]" if r.objective_s == best else "")
    return table


def run_sweep(problem: Problem, name: str, method: str, objective: str,
              time_limit: float | None, plot: Path | None, json_out: bool) -> None:
    """``pipesl plan --sweep-b``: table (or JSON) and, with ``plot``, a T-vs-b figure."""
    what = (f"{problem.training.schedule} makespan" if objective == "makespan"
            else "analytic T")
    with err_console.status(f"sweeping b with {method}...", spinner="dots"):
        rows = sweep_micro_batch_sizes(problem, method, objective, time_limit)
    if plot is not None:
        from pipesl.plotting import save_figure
        from pipesl.plotting.sweep import micro_batch_sweep_figure

        figure = micro_batch_sweep_figure(
            [r.micro_batch_size for r in rows], [r.objective_s for r in rows],
            [r.analytic_s for r in rows], what=what, batch_size=problem.training.batch_size,
            title=f"{name}: {what} against b ({method})")
        write_file(lambda: save_figure(figure, plot), plot, "--sweep-plot")
    if json_out:
        print_json({"objective": objective, "method": method, "rows": [r.to_dict() for r in rows]})
    else:
        console.print(sweep_table(rows, what))
        feasible = [r for r in rows if r.objective_s is not None]
        if feasible:
            best = min(feasible, key=lambda r: r.objective_s or math.inf)
            flat = rows[-1]
            line = (f"best b = {best.micro_batch_size} (M = {best.num_micro_batches}): "
                    f"{_s(best.objective_s or 0.0)}")
            if flat.objective_s is not None and best.objective_s:
                line += (f"; b = B = {flat.micro_batch_size} takes {_s(flat.objective_s)} "
                         f"({flat.objective_s / best.objective_s:.2f}x)")
            console.print(line)
    if plot is not None:
        (err_console if json_out else console).print(f"wrote {escape(str(plot))}")


@app.command()
def compare(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help=PROBLEM_HELP),
    methods: str = typer.Option(",".join(COMPARED), "--methods", help="Comma-separated "
                                "planners (see `pipesl plan --help`); bruteforce and milp only "
                                "on small problems."),
    objective: str = typer.Option("makespan", "--objective", help="makespan (the simulated "
                                  "iteration of training.schedule) | analytic (SPEC T)."),
    time_limit: float = typer.Option(None, "--time-limit", min=0.0,
                                     help="Seconds per planner (where it takes a limit)."),
    json_out: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the rows as JSON."),
) -> None:
    """Compare planners on one problem: iteration time, b, stages, bottleneck, planning time."""
    from rich.table import Table

    from pipesl.solvers import solve

    check_writable(out, "--out", JSON)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ProblemError("--methods", f"must name planners among {', '.join(METHODS)}",
                           methods)
    if objective not in ("makespan", "analytic"):
        raise ProblemError("--objective", "must be makespan or analytic", objective)
    prob = require_single_owner(load_checked(problem), "pipesl compare")
    what = (f"{prob.training.schedule} makespan" if objective == "makespan" else "analytic T")
    rows: list[dict[str, Any]] = []
    for name in names:
        options = {"time_limit": time_limit} if time_limit is not None and name in (
            "exact", "milp", "makespan") else {}
        with err_console.status(f"planning with {name}...", spinner="dots"):
            try:
                result = solve(prob, name, objective=objective, **options)
            except InfeasibleError as exc:
                rows.append({"method": name, "feasible": False, "reason": str(exc)})
                continue
        ev = result.evaluation
        assert ev is not None
        rows.append({"method": name, "feasible": True, "objective_s": result.objective_s,
                     "analytic_s": ev.objective_s, "micro_batch_size": result.micro_batch_size,
                     "num_micro_batches": result.num_micro_batches,
                     "stages": result.plan.num_stages, "bottleneck": ev.bottleneck_resource,
                     "optimal": result.optimal, "seconds": result.seconds})
    best = min((r["objective_s"] for r in rows if r["feasible"]), default=None)
    for r in rows:
        if r["feasible"] and best:
            r["vs_best"] = r["objective_s"] / best
    document = {"problem": prob.name or problem, "objective": objective, "rows": rows}
    if out is not None:
        import json

        write_file(lambda: out.write_text(json.dumps(document, indent=2) + "\n"), out, "--out")
    if json_out:
        print_json(document)
        return
    table = Table(title=f"{escape(prob.name or problem)}: planners compared on the {what} "
                  f"(B = {prob.training.batch_size})", title_justify="left")
    short = what.split()[-1] if objective == "makespan" else "T"
    for col in ("method", short, "ratio", "b", "K", "bottleneck", "proof", "took"):
        table.add_column(col, justify="left" if col in ("method", "bottleneck") else "right",
                         no_wrap=True)
    for r in rows:
        if not r["feasible"]:
            table.add_row(r["method"], "no plan fits", "-", "-", "-", "-", "-", "-")
            continue
        table.add_row(r["method"], _s(r["objective_s"]), f"{r['vs_best']:.2f}x",
                      str(r["micro_batch_size"]), str(r["stages"]), escape(r["bottleneck"]),
                      "yes" if r["optimal"] else "-", f"{r['seconds'] * 1e3:.0f} ms")
    table.caption = ("ratio: to the best of these; K: compute stages; proof: certified optimal "
                     "for this objective")
    console.print(table)
    if out is not None:
        console.print(f"wrote {escape(str(out))}")

