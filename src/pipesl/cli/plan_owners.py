"""``pipesl plan`` for a problem with several data owners (``training.sources``).

A per-owner table (node, stages, b, M, when the owner finished), the joint makespan, its lower
bound and gap, whether it is certified, and the baselines (each owner planned alone,
round-robin sequential SL) with the gain of the chosen plan over each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipesl.cli.app import console, err_console, print_json, write_file
from pipesl.cli.render import escape
from pipesl.exceptions import ProblemError
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.problem import Problem
    from pipesl.solvers.owners import OwnersSolveResult

SINGLE_TO_JOINT = ("exact", "makespan")
"""Single-owner method names that mean ``joint`` on a multi-owner problem (the default)."""


def owner_method(method: str, problem: Problem) -> str:
    """The many-owner method ``--method`` names, or a ProblemError naming the choices."""
    from pipesl.solvers.owners import OWNER_METHODS

    if method in SINGLE_TO_JOINT:
        return "joint"
    if method not in OWNER_METHODS:
        raise ProblemError("--method", f"{method!r} plans a single data owner; the problem has "
                           f"{problem.num_owners} (training.sources): choose one of "
                           f"{', '.join(OWNER_METHODS)}")
    return method


def owners_table(problem: Problem, result: OwnersSolveResult) -> Table:
    """One row per owner: node, stages (node: layers), b, M, when its last backward ended."""
    from rich.table import Table

    table = Table(title=f"Plan ({result.method}) for {problem.num_owners} data owners "
                  f"({problem.training.owners_mode}, replicas {problem.training.replicas})",
                  title_justify="left")
    for col in ("owner", "node", "stages", "b", "M", "own makespan"):
        table.add_column(col, justify="right" if col in ("b", "M", "own makespan") else "left")
    for row in result.owners:
        stages = ", ".join(f"{s.node}:{s.first_layer}-{s.last_layer}" for s in row.stages)
        table.add_row(escape(row.label), escape(row.node), escape(stages),
                      str(row.micro_batch_size), str(row.num_micro_batches),
                      format_quantity(row.makespan_s, "seconds"))
    return table


def _proof(result: OwnersSolveResult) -> str:
    lb = format_quantity(result.lower_bound_s, "seconds")
    if result.optimal:
        return f"certified optimal (no combination of plans and b below {lb})"
    return (f"not certified ({result.status}); lower bound {lb}, gap {result.gap:.1%}")


def plan_owners(problem: Problem, name: str, method: str, time_limit: float | None,
                json_out: bool, out: Path | None, compare: bool, map_path: Path | None) -> None:
    """Run ``pipesl plan`` on a multi-owner problem (arguments as the command's)."""
    from pipesl.plan import dump_plan
    from pipesl.solvers.owners import solve_owners

    chosen = owner_method(method, problem)
    with err_console.status(f"planning {problem.num_owners} owners with {chosen}...",
                            spinner="dots"):
        result = solve_owners(problem, chosen, time_limit=time_limit)
    baselines: dict[str, OwnersSolveResult] = {}
    if compare:
        with err_console.status("baselines: independent, sequential...", spinner="dots"):
            for base in ("independent", "sequential"):
                if base != chosen:
                    baselines[base] = solve_owners(problem, base, time_limit=time_limit)
    document = result.document()
    document["baselines"] = {k: {"makespan_s": r.makespan_s, "seconds": r.seconds,
                                 "gain": r.makespan_s / result.makespan_s}
                             for k, r in baselines.items()}
    if out is not None:
        write_file(lambda: dump_plan(document, out), out, "--out")
    if map_path is not None:
        from pipesl.plotting import placement_map, save_figure

        drawing = placement_map(problem, result.plan)
        write_file(lambda: save_figure(drawing, map_path), map_path, "--map")
    if json_out:
        print_json(document)
        return
    console.rule(f"[bold]{escape(name)}")
    console.print(owners_table(problem, result))
    for row, plan in zip(result.owners, result.plan.plans, strict=True):
        for k, route in enumerate(plan.routes, 1):
            console.print(f"{escape(row.label)} route {k}: {escape(' -> '.join(route))}")
        if plan.label_route is not None and len(plan.label_route) > 1:
            console.print(f"{escape(row.label)} label route: "
                          f"{escape(' -> '.join(plan.label_route))}")
    what = ("round (owners in turn)" if problem.training.owners_mode == "sequential"
            else "joint iteration, simulated makespan")
    console.print(f"{what} ({problem.training.schedule}): "
                  f"[bold]{format_quantity(result.makespan_s, 'seconds')}[/]")
    console.print(f"lower bound {format_quantity(result.lower_bound_s, 'seconds')}, gap "
                  f"{result.gap:.1%}; solver {result.method}: {_proof(result)}, "
                  f"{result.seconds:.3g} s")
    for base, r in baselines.items():
        gain = r.makespan_s / result.makespan_s if result.makespan_s > 0 else 1.0
        label = {"independent": "independent (each owner planned alone, run together)",
                 "sequential": "sequential SL (owners take turns, round time)"}[base]
        ratio = f"[bold]{gain:.2f}x[/] faster" if gain >= 1 else f"[bold]{1 / gain:.2f}x[/] slower"
        console.print(f"{label}: {format_quantity(r.makespan_s, 'seconds')}; "
                      f"{result.method} is {ratio}")
    if out is not None:
        console.print(f"plan written to {escape(str(out))}")
    if map_path is not None:
        console.print(f"placement map written to {escape(str(map_path))}")
