"""``pipesl plan``: the optimal split, placement, routes and micro-batch size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipesl.cli.app import (
    FIGURE,
    JSON,
    PROBLEM_HELP,
    app,
    check_writable,
    console,
    err_console,
    load_checked,
    print_json,
    write_file,
)
from pipesl.cli.render import escape, objective_line
from pipesl.exceptions import InfeasibleError, ProblemError
from pipesl.problem.scenarios import DEFAULT_SCENARIO
from pipesl.units import format_quantity

if TYPE_CHECKING:
    from rich.table import Table

    from pipesl.problem import Problem
    from pipesl.solvers import SolveResult

METHODS: dict[str, str] = {
    "exact": "joint optimum over plans and b, with proof (default)",
    "makespan": "the certified schedule-makespan search itself (what exact runs for "
                "--objective makespan)",
    "alternating": "the paper's alternating optimisation of placement and b",
    "basp": "the paper's reference algorithm: BASP on the decision graph per b (small problems)",
    "milp": "mixed-integer program per b (HiGHS); small problems",
    "bruteforce": "exhaustive enumeration (tiny problems)",
    "no_pipeline": "baseline: optimal split and placement with b = B",
    "fixed_b": "baseline: optimal placement for one b (default B/4)",
    "two_tier": "baseline: the source plus one best server",
    "bottleneck_only": "baseline: least bottleneck, pipeline fill ignored",
    "even_split": "baseline: equal FLOPs over the nodes of one route",
    "greedy": "baseline: fastest reachable nodes first",
    "random": "baseline: a seeded random valid plan",
}
"""The planners, for ``--method`` help without importing them (a test keeps this equal to
the solver registry, ``pipesl.solvers.solver_names()``)."""

MAKESPAN_TIME_LIMIT = 60.0
"""Seconds ``pipesl plan`` gives the certified makespan search unless told otherwise (the
library's ``pipesl.solvers.MAKESPAN_TIME_LIMIT``, kept here so that help needs no solver
import; a test keeps them equal)."""

OWNER_METHODS_HELP: dict[str, str] = {
    "joint": "several data owners: the certified joint optimum (what exact means there)",
    "heuristic": "several data owners: greedy + best response (many owners)",
    "independent": "several data owners, baseline: each owner planned alone",
    "sequential": "several data owners, baseline: round-robin sequential SL",
}
"""The many-owner planners for ``--method`` help (a test keeps this equal to
``pipesl.solvers.owners.OWNER_METHODS``)."""

METHOD_HELP = ("Planner: " + "; ".join(f"[bold]{k}[/] {v}" for k, v in
                                       (METHODS | OWNER_METHODS_HELP).items()) + ".")


def plan_table(problem: Problem, result: SolveResult) -> Table:
    """Stages: node, layers, compute time, memory used / capacity."""
    from rich.table import Table

    from pipesl.cost import plan_stages

    ev = result.evaluation
    assert ev is not None
    b = result.micro_batch_size
    stages = result.plan.num_stages
    table = Table(title=f"Plan ({result.method}): {stages} stage{'' if stages == 1 else 's'}",
                  title_justify="left")
    for col in ("#", "node", "layers", "compute / micro-batch", "memory used / capacity"):
        table.add_column(col, justify="left" if col in ("node", "layers") else "right")
    compute = [s for s in plan_stages(problem, result.plan) if s.kind == "compute"]
    for k, (stage, cst) in enumerate(zip(result.plan.stages, compute, strict=True), 1):
        used, cap = ev.memory[stage.node]
        names = problem.model.layers
        layers = escape(f"{stage.first_layer}-{stage.last_layer} "
                        f"({names[stage.first_layer - 1].name}"
                        f"..{names[stage.last_layer - 1].name})")
        cap_s = "unbounded" if cap == float("inf") else format_quantity(cap, "bytes")
        table.add_row(str(k), escape(stage.node), layers, format_quantity(cst.time(b), "seconds"),
                      f"{format_quantity(used, 'bytes')} / {cap_s}")
    return table


def iteration_report(problem: Problem, result: SolveResult) -> list[str]:
    """What one iteration of the plan takes: the schedule's makespan and the analytic T."""
    assert result.evaluation is not None
    ev = result.evaluation
    schedule = problem.training.schedule
    lines = []
    if result.objective == "makespan":
        lines.append(f"iteration ({schedule}, simulated makespan): "
                     f"[bold]{format_quantity(result.objective_s, 'seconds')}[/]   "
                     f"b = {ev.micro_batch_size}, M = {ev.num_micro_batches}, "
                     f"B = {ev.batch_size}")
        lines.append("analytic (SPEC section 3, the paper's objective; not what runs): "
                     + objective_line(ev))
    else:
        lines.append("analytic (SPEC section 3, the objective minimised): " + objective_line(ev))
    return lines


def proof_text(result: SolveResult) -> str:
    """What the solver proved, naming the quantity."""
    lb = format_quantity(result.lower_bound_s, "seconds")
    what = ("simulated makespan" if result.objective == "makespan" else "analytic T")
    if result.optimal:
        return f"optimal for the {what} (certified: no plan and no b below {lb})"
    if result.lower_bound_s <= 0:  # a heuristic or baseline proves nothing; "0 s" says nothing
        return f"{result.status}, not proven optimal for the {what}; no lower bound"
    return f"{result.status}, not proven optimal for the {what}; lower bound {lb}"


@app.command()
def plan(
    problem: str = typer.Argument(DEFAULT_SCENARIO, help=PROBLEM_HELP),
    method: str = typer.Option("exact", "--method", "-m",
                               help=METHOD_HELP),
    micro_batch_size: int = typer.Option(None, "--micro-batch-size", "-b", min=1,
                                         help="Fix b instead of optimising it."),
    time_limit: float = typer.Option(None, "--time-limit", min=0.0,
                                     help="Seconds; then the best plan so far, unproven "
                                          "(default: none for --objective analytic, 60 for "
                                          "makespan, whose certificate can take long)."),
    json_out: bool = typer.Option(False, "--json", help="Print the SPEC plan object."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the SPEC plan JSON here."),
    compare: bool = typer.Option(True, "--compare/--no-compare",
                                 help="Also solve without pipelining (b = B) to compare."),
    sweep_b: bool = typer.Option(
        False, "--sweep-b", help="Instead of one plan: the best plan at every micro-batch size "
        "that gives a different M, as a table of the objective against b."),
    sweep_plot: Path | None = typer.Option(
        None, "--sweep-plot", help="With --sweep-b (implied): also draw the objective "
        "against b (PNG/SVG/PDF)."),
    objective: str = typer.Option(
        "makespan", "--objective",
        help="What to minimise: [bold]makespan[/] the simulated iteration time of "
             "training.schedule (default); [bold]analytic[/] the paper's T (SPEC section 3)."),
    map_path: Path | None = typer.Option(
        None, "--map", help="Also draw the placement map (PNG/SVG/PDF); with several data "
        "owners every owner's route in its own colour."),
) -> None:
    """Plan a problem: where to cut the model, where each stage runs, the routes and b."""
    from pipesl.plan import dump_plan
    from pipesl.solvers import solve

    check_writable(out, "--out", JSON)
    check_writable(sweep_plot, "--sweep-plot", FIGURE)
    check_writable(map_path, "--map", FIGURE)
    if (sweep_b or sweep_plot is not None) and (micro_batch_size is not None
                                                 or out is not None):
        raise ProblemError("--sweep-b", "sweeps b itself: give neither --micro-batch-size nor "
                           "--out with it")
    prob = load_checked(problem)
    if prob.is_multi_owner:
        from pipesl.cli.plan_owners import plan_owners

        if micro_batch_size is not None or sweep_b or sweep_plot is not None:
            raise ProblemError("--micro-batch-size" if micro_batch_size is not None
                               else "--sweep-b", "applies to a single data owner; with "
                               "several set training.sources[i].micro_batch_size")
        if objective != "makespan":
            raise ProblemError("--objective", "must be makespan for several data owners",
                               objective)
        plan_owners(prob, prob.name or problem, method,
                    MAKESPAN_TIME_LIMIT if time_limit is None else time_limit, json_out, out,
                    compare, map_path)
        return
    if method not in METHODS:
        from pipesl.solvers.owners import OWNER_METHODS

        if method in OWNER_METHODS:
            raise ProblemError("--method", f"{method!r} plans several data owners; this "
                               "problem has one (training.source): choose one of "
                               f"{', '.join(METHODS)}")
    if micro_batch_size is not None and micro_batch_size > prob.training.batch_size:
        raise ProblemError("--micro-batch-size", f"must be <= batch_size "
                           f"({prob.training.batch_size})", micro_batch_size)
    if objective not in ("makespan", "analytic"):
        raise ProblemError("--objective", "must be makespan or analytic", objective)
    options: dict[str, Any] = {}
    if time_limit is None and objective == "makespan":
        time_limit = MAKESPAN_TIME_LIMIT
    if micro_batch_size is not None:
        options["micro_batch_size"] = micro_batch_size
    if time_limit is not None:
        options["time_limit"] = time_limit
    if sweep_b or sweep_plot is not None:
        from pipesl.cli.compare import run_sweep

        run_sweep(prob, prob.name or problem, method, objective, time_limit, sweep_plot,
                  json_out)
        return
    with err_console.status(f"planning with {method}...", spinner="dots"):
        result = solve(prob, method, objective=objective, **options)
    document = result.document()
    if out is not None:
        write_file(lambda: dump_plan(document, out), out, "--out")
    if map_path is not None:
        from pipesl.plotting import placement_map, save_figure

        drawing = placement_map(prob, result.plan)
        write_file(lambda: save_figure(drawing, map_path), map_path, "--map")
    if json_out:
        print_json(document)
        return
    console.rule(f"[bold]{escape(prob.name or problem)}")
    console.print(plan_table(prob, result))
    for k, route in enumerate(result.plan.routes, 1):
        console.print(f"route {k}: {escape(' -> '.join(route))}")
    if result.plan.label_route is not None and len(result.plan.label_route) > 1:
        console.print(f"label route: {escape(' -> '.join(result.plan.label_route))}")
    assert result.evaluation is not None
    schedule = prob.training.schedule
    report = iteration_report(prob, result)
    for line in report:
        console.print(line)
    console.print(f"solver {result.method}: {proof_text(result)}, {result.seconds:.3g} s")
    if compare and prob.training.batch_size > 1 and result.num_micro_batches > 1:
        try:
            flat = solve(prob, "exact", objective=objective,
                         micro_batch_size=prob.training.batch_size,
                         **({"time_limit": time_limit} if time_limit else {}))
        except InfeasibleError:
            console.print("without pipelining (b = B): no plan fits in memory")
        else:
            what = (f"{schedule} makespan" if result.objective == "makespan" else "analytic T")
            ratio = flat.objective_s / result.objective_s if result.objective_s > 0 else 1.0
            speedup = (f"[bold]{ratio:.2f}x[/] faster" if ratio >= 1 else
                       f"[bold]{1 / ratio:.2f}x[/] slower (this {result.method} plan is worse "
                       "than the optimum without pipelining)")
            stages = flat.plan.num_stages
            console.print(
                f"without pipelining (b = B = {prob.training.batch_size}): "
                f"{what} {format_quantity(flat.objective_s, 'seconds')} on "
                f"{stages} stage{'' if stages == 1 else 's'}; pipelining is {speedup} on the "
                "same objective")
    if map_path is not None:
        console.print(f"placement map written to {escape(str(map_path))}")
    if out is not None:
        console.print(f"plan written to {escape(str(out))}")
