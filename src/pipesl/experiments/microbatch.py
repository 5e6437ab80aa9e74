"""T against the micro-batch size b: the U-curve, with the closed-form b marked.

For every instance (the seeded generated ones, plus one built-in scenario when configured):

* ``optimal_at_b`` — T*(b), the optimal plan for each b (``solve_exact(problem, [b])``);
* ``exact_placement`` — the joint optimum's split, placement and routes with b varied
  (:func:`~pipesl.solvers.microbatch.objective_curve`): the curve the paper's closed form
  minimises;
* one ``closed_form`` row per instance: the relaxed minimiser b* of
  :func:`~pipesl.solvers.microbatch.closed_form_micro_batch_size` for the exact plan (real),
  and one ``exact`` row: the b the exact planner chose, with its T.

Small b pays the per-micro-batch fixed costs (overheads, link latencies) M times; large b
leaves the pipeline idle while it fills: T*(b) falls, then rises.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from pipesl.exceptions import InfeasibleError
from pipesl.experiments.config import MicroBatchConfig
from pipesl.experiments.instances import make_instance
from pipesl.experiments.runner import ExperimentResult, Progress, markdown_table, summarise
from pipesl.problem import load_problem
from pipesl.problem.types import Problem
from pipesl.solvers import solve_exact
from pipesl.solvers.microbatch import (
    candidate_micro_batch_sizes,
    closed_form_micro_batch_size,
    objective_curve,
)

__all__ = ["microbatch_markdown", "run_microbatch"]


def _instances(config: MicroBatchConfig) -> list[tuple[str, int, Problem]]:
    out = []
    if config.scenario:
        out.append((config.scenario, 0, load_problem(config.scenario)))
    for seed in range(config.seeds):
        p = make_instance(config.instance, seed)
        out.append(("generated", seed, p))
    return out


def run_microbatch(config: MicroBatchConfig, progress: Progress | None = None
                   ) -> ExperimentResult:
    """Run the micro-batch experiment (module docstring)."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    notes = []
    for group, seed, problem in _instances(config):
        B = problem.training.batch_size
        sizes = list(range(1, B + 1)) if config.all_sizes else candidate_micro_batch_sizes(B)
        best = solve_exact(problem)
        t_star = best.objective_s
        base = {"experiment": config.name, "group": group, "instance": problem.name,
                "seed": seed, "batch_size": B}
        _, fixed = objective_curve(problem, best.plan, np.array(sizes))
        for b, t_fixed in zip(sizes, fixed, strict=True):
            try:
                t_opt = solve_exact(problem, [b]).objective_s
            except InfeasibleError:  # no plan fits in memory at this b
                t_opt = math.nan
            for series, t in (("optimal_at_b", t_opt), ("exact_placement", float(t_fixed))):
                t = t if math.isfinite(t) else math.nan
                rows.append({**base, "series": series, "b": b, "objective_s": t,
                             "ratio": t / t_star})
        b_cf = closed_form_micro_batch_size(problem, best.plan)
        rows.append({**base, "series": "closed_form", "b": b_cf, "objective_s": math.nan,
                     "ratio": math.nan})
        rows.append({**base, "series": "exact", "b": best.micro_batch_size,
                     "objective_s": t_star, "ratio": 1.0})
        t_flat = next(r["objective_s"] for r in rows if r["instance"] == problem.name
                      and r["series"] == "optimal_at_b" and r["b"] == B)
        notes.append(f"{problem.name}: exact b = {best.micro_batch_size} (M = "
                     f"{best.num_micro_batches}), closed-form b* = {b_cf:.1f} on its placement,"
                     f" T* = {1e3 * t_star:.1f} ms, T*(b = B) = {1e3 * t_flat:.1f} ms "
                     f"({t_flat / t_star:.2f}x)")
        if progress is not None:
            progress(problem.name)
    curves = [r for r in rows if r["series"] == "optimal_at_b" and r["group"] == "generated"]
    summary = summarise(curves, by=("b",), values=("ratio",))
    checks = {"instances": len(_instances(config)),
              "exact_beaten": sum(r["ratio"] < 1 - 1e-9 for r in rows
                                  if r["series"] == "optimal_at_b")}
    return ExperimentResult(config.name, "microbatch", config, tuple(rows), tuple(summary),
                            checks, time.perf_counter() - started, tuple(notes))


def microbatch_markdown(result: ExperimentResult) -> str:
    """Per-instance table (exact b, closed-form b*, T*, T at b = B) and the mean U-curve."""
    rows = result.rows
    per = []
    for inst in dict.fromkeys(r["instance"] for r in rows):
        mine = [r for r in rows if r["instance"] == inst]
        ex = next(r for r in mine if r["series"] == "exact")
        cf = next(r for r in mine if r["series"] == "closed_form")
        opt = {r["b"]: r["objective_s"] for r in mine if r["series"] == "optimal_at_b"}
        B = ex["batch_size"]
        per.append({"instance": inst, "B": B, "exact b": ex["b"],
                    "closed-form b*": f"{cf['b']:.1f}", "T* (ms)": 1e3 * ex["objective_s"],
                    "T*(b=1) (ms)": 1e3 * opt.get(1, math.nan),
                    "T*(b=B) (ms)": 1e3 * opt.get(B, math.nan),
                    "T*(B) / T*": opt.get(B, math.nan) / ex["objective_s"]})
    sizes = {r["b"] for r in result.summary}
    B = max(sizes) if sizes else 0
    shown = [r for r in result.summary
             if r["b"] in set(candidate_micro_batch_sizes(int(B)))] if B else []
    curve = [{"b": r["b"], "mean T*(b) / T*": r["ratio_mean"], "min": r["ratio_min"],
              "max": r["ratio_max"]} for r in shown]
    return (f"### {result.name}\n\nPer instance: the exact planner's b, the closed-form b* "
            "on its placement, and the optimal T at b = 1 and b = B (no pipelining).\n\n"
            + markdown_table(per)
            + "\nGenerated instances: T*(b) / T* at b = ceil(B / M).\n\n"
            + markdown_table(curve))
