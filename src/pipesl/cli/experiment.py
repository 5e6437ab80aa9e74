"""``pipesl experiment``: reproduce the evaluation — sweeps, U-curve, robustness, timing."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipesl.cli.app import app, console, err_console
from pipesl.exceptions import PipeslError, ProblemError

if TYPE_CHECKING:
    from pipesl.experiments.runner import ExperimentResult

EXPERIMENT_NAMES = ("scenarios", "servers", "bandwidth", "compute", "memory", "batch",
                    "topology", "models", "microbatch", "robustness", "timing", "owners",
                    "adaptation")
"""``pipesl.experiments.suite.EXPERIMENTS`` by name, for the help text without importing the
suite (a test keeps the two equal)."""
NAMES_HELP = ", ".join(EXPERIMENT_NAMES)


def _run_one(name: str, quick: bool, seeds: int | None, config_file: Path | None,
             out: Path, plots: bool) -> ExperimentResult:
    from pipesl.experiments.config import load_config
    from pipesl.experiments.suite import (
        config_class,
        default_config,
        run_experiment,
        units_of_work,
        write_outputs,
    )

    cfg = (load_config(config_file, config_class(name)) if config_file is not None
           else default_config(name, quick))
    if seeds is not None:
        if not hasattr(cfg, "seeds"):
            raise ProblemError("--seeds", f"does not apply to the {name} experiment (it has "
                               "no seeded instances; use --config to change it)", seeds)
        cfg = replace(cfg, seeds=seeds)
    with Progress(TextColumn("[bold]{task.fields[name]}[/]"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=err_console,
                  transient=False) as progress:
        task = progress.add_task("", total=units_of_work(cfg), name=cfg.name)

        def step(label: str) -> None:
            progress.update(task, advance=1, description=label)

        result = run_experiment(cfg, step)
        progress.update(task, completed=units_of_work(cfg), description="done")
    folder = out / cfg.name
    paths = write_outputs(result, folder)
    if plots:
        from pipesl.plotting import save_figure
        from pipesl.plotting.experiments import experiment_figure

        paths.append(save_figure(experiment_figure(result), folder / f"{cfg.name}.png",
                                 dpi=110))
    checks = ", ".join(f"{k}={v}" for k, v in result.checks.items())
    console.print(f"[bold]{cfg.name}[/]: {result.seconds:.1f} s; {checks}")
    for p in paths:
        console.print(f"  wrote {p}")
    return result


@app.command()
def experiment(
    name: str = typer.Argument(..., help=f"Experiment: {NAMES_HELP}, or all (every one "
                               "but adaptation, which trains and needs torch)."),
    quick: bool = typer.Option(False, "--quick", help="A small version (CI)."),
    seeds: int = typer.Option(None, "--seeds", min=1,
                              help="Seeded instances per point (overrides the config)."),
    out: Path = typer.Option(Path("results"), "--out", "-o",
                             help="Output folder; each experiment writes NAME/ inside."),
    config: Path = typer.Option(None, "--config", "-c",
                                help="YAML config file (fields of the experiment's config "
                                     "dataclass); see --show-config."),
    show_config: bool = typer.Option(False, "--show-config",
                                     help="Print the experiment's config as YAML and exit."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write PNG figures."),
) -> None:
    """Run an experiment of the paper's evaluation: tidy CSV, markdown tables, PNG plots."""
    from pipesl.experiments.config import config_to_dict, load_config
    from pipesl.experiments.suite import (
        EXPERIMENTS,
        PLANNING,
        config_class,
        default_config,
        headline_table,
    )

    names = list(PLANNING) if name == "all" else [name]
    if name != "all" and name not in EXPERIMENTS:
        raise ProblemError("NAME", f"is not an experiment; choose one of {NAMES_HELP} or all",
                           name)
    if config is not None and name == "all":
        raise ProblemError("--config", "applies to one experiment, not to all")
    if show_config:
        import yaml

        for n in names:
            cfg: Any = (load_config(config, config_class(n)) if config is not None
                   else default_config(n, quick))
            sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return
    started = time.perf_counter()
    results = [_run_one(n, quick, seeds, config, out, plots) for n in names]
    bad = [r.name for r in results if r.checks.get("exact_beaten", 0)
           or r.checks.get("milp_disagree", 0)]
    if len(results) > 1:
        table = headline_table(results)
        out.mkdir(parents=True, exist_ok=True)
        (out / "headline.md").write_text(
            "T(baseline) / T(exact) over every instance of each sweep.\n\n" + table)
        console.print(table)
        console.print(f"all experiments: {time.perf_counter() - started:.1f} s; wrote "
                      f"{out / 'headline.md'}")
    if bad:
        raise PipeslError(f"a check failed in {', '.join(bad)}: a baseline beat the exact "
                          "planner or the MILP disagreed with it (see the CSV)")
