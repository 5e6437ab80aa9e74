"""Robustness: per-round random fluctuation of bandwidth and compute.

A plan is made once on the nominal network; then, round after round, every link bandwidth and
every server's FLOP/s is multiplied by an independent uniform factor in [1 - x, 1 + x] (the
source keeps its own). Each round compares, on that round's network:

* ``exact`` — re-optimised every round (the reference: ratio 1);
* ``exact_stale`` — the nominal optimal plan, unchanged;
* ``exact_stale_b`` — the nominal placement and routes with b re-tuned by the closed form;
* ``no_pipeline`` / ``no_pipeline_stale`` — the b = B baseline, re-optimised / nominal;
* the config's other baselines, re-optimised every round.

Memory does not fluctuate, so a stale plan stays valid; only its T changes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pipesl.cost import evaluate
from pipesl.experiments.config import RobustnessConfig
from pipesl.experiments.instances import fluctuate, make_instance
from pipesl.experiments.runner import (
    ExperimentResult,
    Progress,
    add_ratios,
    check_rows,
    markdown_table,
    solve_row,
    summarise,
)
from pipesl.problem import validate_problem
from pipesl.problem.types import Problem
from pipesl.solvers import best_micro_batch_size, solve

__all__ = ["robustness_markdown", "run_robustness"]

STALE = ("exact_stale", "exact_stale_b", "no_pipeline_stale")


def _round_problem(problem: Problem, x: float, rng: np.random.Generator) -> Problem:
    net = fluctuate(problem.network, x, rng, problem.training.source)
    return validate_problem(Problem(net, problem.model, problem.training, problem.name))


def run_robustness(config: RobustnessConfig, progress: Progress | None = None
                   ) -> ExperimentResult:
    """Run the robustness experiment (module docstring)."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    fresh = list(dict.fromkeys(("exact", "no_pipeline", *config.methods)))
    for seed in range(config.seeds):
        nominal = make_instance(config.instance, seed)
        plan = solve(nominal, objective="analytic").plan
        flat = solve(nominal, "no_pipeline", objective="analytic").plan
        for xi, x in enumerate(config.fluctuations):
            rng = np.random.default_rng([seed, xi, 7919])
            for rnd in range(config.rounds):
                problem = _round_problem(nominal, x, rng)
                base = {"experiment": config.name, "x_name": "fluctuation", "x": x,
                        "seed": seed, "round": rnd, "instance": nominal.name}
                for method in fresh:
                    row, _ = solve_row(problem, method)
                    rows.append({**base, "method": method, **row})
                for method, stale in (("exact_stale", plan), ("no_pipeline_stale", flat)):
                    rows.append({**base, "method": method, **_evaluated(problem, stale)})
                b, _ = best_micro_batch_size(problem, plan)
                rows.append({**base, "method": "exact_stale_b",
                             **_evaluated(problem, plan.with_micro_batch_size(b))})
                if progress is not None:
                    progress(f"seed {seed} x={x} round {rnd}")
    add_ratios(rows, ("x", "seed", "round"))
    summary = summarise(rows)
    checks = check_rows(rows)
    checks["instances"] = config.seeds * len(config.fluctuations) * config.rounds
    return ExperimentResult(config.name, "robustness", config, tuple(rows), tuple(summary),
                            checks, time.perf_counter() - started)


def _evaluated(problem: Problem, plan: Any) -> dict[str, Any]:
    ev = evaluate(problem, plan)
    return {"objective_s": ev.objective_s, "micro_batch_size": ev.micro_batch_size,
            "num_micro_batches": ev.num_micro_batches, "num_stages": plan.num_stages,
            "first_micro_batch_s": ev.first_micro_batch_s, "bottleneck_s": ev.bottleneck_s,
            "seconds": 0.0, "status": "stale", "optimal": False, "error": ""}


def robustness_markdown(result: ExperimentResult) -> str:
    """T / T(re-optimised exact) per fluctuation level and method."""
    methods = list(dict.fromkeys(r["method"] for r in result.summary))
    xs = list(dict.fromkeys(r["x"] for r in result.summary))
    cell = {(r["x"], r["method"]): r for r in result.summary}
    rows = []
    for x in xs:
        row: dict[str, Any] = {"fluctuation ±": f"{100 * x:.0f} %"}
        for m in methods:
            s = cell[(x, m)]
            row[m] = f"{s['ratio_mean']:.3f} [{s['ratio_min']:.2f}–{s['ratio_max']:.2f}]"
        rows.append(row)
    cfg = result.config
    return (f"### {result.name}\n\n{cfg.seeds} instance(s) x {cfg.rounds} rounds per level; "
            "T / T(exact re-optimised that round): mean [min–max].\n\n"
            + markdown_table(rows, ["fluctuation ±", *methods]))
