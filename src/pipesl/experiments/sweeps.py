"""Parameter sweeps: every planner on seeded instances as one instance field varies.

For each value of the varying field and each seed the instance is built once and every method
of the config solves it; T is divided by the exact planner's T on the same instance. With
``milp_check`` the MILP also solves each instance at the exact planner's b (an independent
optimality check: it must give the same T).

The special field ``scenario`` sweeps over built-in scenarios: seed 0 is the scenario as
shipped, seed s > 0 the same with every bandwidth and FLOP/s perturbed by ``perturb``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

import numpy as np

from pipesl.exceptions import ProblemError
from pipesl.experiments.config import SweepConfig
from pipesl.experiments.instances import fluctuate, make_instance, with_field
from pipesl.experiments.runner import (
    EXACT,
    ExperimentResult,
    Progress,
    add_ratios,
    check_rows,
    markdown_table,
    solve_row,
    summarise,
)
from pipesl.problem import load_problem, validate_problem
from pipesl.problem.types import Problem

__all__ = ["point_problem", "run_sweep", "sweep_markdown"]


def point_problem(config: SweepConfig, value: Any, seed: int) -> Problem:
    """The instance of one sweep point and seed."""
    if config.vary == "scenario":
        problem = load_problem(str(value))
        if seed > 0:
            rng = np.random.default_rng(seed)
            net = fluctuate(problem.network, config.instance.perturb, rng,
                            problem.training.source)
            problem = validate_problem(replace(problem, network=net))
        return problem
    return make_instance(with_field(config.instance, config.vary, value), seed)


def run_sweep(config: SweepConfig, progress: Progress | None = None) -> ExperimentResult:
    """Run a sweep (module docstring); rows carry ``x``, ``seed``, ``method`` and the result.

    Raises
    ------
    ProblemError
        When ``exact`` is not among the methods, or a point's instance is invalid.
    """
    if EXACT not in config.methods:
        raise ProblemError("methods", "must include 'exact' (ratios are taken against it)",
                           list(config.methods))
    started = time.perf_counter()
    options = {} if config.time_limit is None else {"time_limit": config.time_limit}
    rows: list[dict[str, Any]] = []
    for value in config.values:
        for seed in range(config.seeds):
            problem = point_problem(config, value, seed)
            exact_b = None
            for method in config.methods:
                extra = {"seed": seed} if method == "random" else {}
                row, result = solve_row(problem, method, **options, **extra)
                if method == EXACT and result is not None:
                    exact_b = result.micro_batch_size
                rows.append({"experiment": config.name, "x_name": config.vary, "x": value,
                             "seed": seed, "instance": problem.name, "method": method,
                             **row})
                if progress is not None:
                    progress(f"{config.vary}={value} seed {seed} {method}")
            if config.milp_check and exact_b is not None:
                row, _ = solve_row(problem, "milp", micro_batch_size=exact_b,
                                   time_limit=config.milp_time_limit)
                rows.append({"experiment": config.name, "x_name": config.vary, "x": value,
                             "seed": seed, "instance": problem.name, "method": "milp", **row})
                if progress is not None:
                    progress(f"{config.vary}={value} seed {seed} milp")
    add_ratios(rows, ("x", "seed"))
    summary = summarise(rows)
    checks = check_rows(rows)
    return ExperimentResult(config.name, "sweep", config, tuple(rows), tuple(summary), checks,
                            time.perf_counter() - started, _notes(rows))


def _notes(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """Plain facts: how often exact uses more than two stages, how often b = B wins."""
    exact = [r for r in rows if r["method"] == EXACT and math.isfinite(r["objective_s"])]
    if not exact:
        return ()
    deep = sum(r["num_stages"] > 2 for r in exact)
    flat = sum(r["num_micro_batches"] == 1 for r in exact)
    local = sum(r["num_stages"] == 1 for r in exact)
    return (f"exact: {deep} of {len(exact)} instances use more than two stages, {local} keep "
            f"the whole model on the source, {flat} choose b = B (no pipelining)",)


def sweep_markdown(result: ExperimentResult) -> str:
    """Markdown tables of a sweep: mean T per point and method, and T / T(exact)."""
    config = result.config
    methods = [m for m in (*config.methods, "milp") if any(r["method"] == m
                                                           for r in result.summary)]
    xs: list[Any] = []
    for r in result.summary:
        if r["x"] not in xs:
            xs.append(r["x"])
    cell = {(r["x"], r["method"]): r for r in result.summary}
    label = config.x_label or config.vary

    def table(metric: str, fmt: Any) -> str:
        rows = []
        for x in xs:
            row: dict[str, Any] = {label: x}
            for m in methods:
                s = cell.get((x, m))
                row[m] = fmt(s) if s is not None else ""
            rows.append(row)
        return markdown_table(rows, [label, *methods])

    def t_ms(s: dict[str, Any]) -> str:
        if not s["n_ok"]:
            return "infeasible"
        text = f"{1e3 * s['objective_s_mean']:.1f} ± {1e3 * s['objective_s_std']:.1f}"
        return text + (f" ({s['n_ok']}/{s['n']})" if s["n_ok"] < s["n"] else "")

    def ratio(s: dict[str, Any]) -> str:
        if not s["n_ok"] or math.isnan(s["ratio_mean"]):
            return "–"
        return f"{s['ratio_mean']:.3f} [{s['ratio_min']:.2f}–{s['ratio_max']:.2f}]"

    seeds = config.seeds
    head = (f"### {config.name}\n\n{seeds} seeded instance(s) per point; T in ms as mean ± "
            "standard deviation over the instances where the method found a plan "
            "(found/total when some failed).\n\n")
    return (head + table("objective_s", t_ms)
            + "\nT / T(exact) on the same instance: mean [min–max].\n\n"
            + table("ratio", ratio))
