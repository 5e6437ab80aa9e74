"""Planner running time against problem size: network nodes, then model layers.

Methods, each timed on the same seeded instances:

* ``exact`` and ``alternating`` — joint over the plan and b (every b = ceil(B / M));
* ``exact_b`` — the exact planner at one fixed b (the config's ``micro_batch_size``);
* ``basp`` — the paper's threshold method on the explicit decision graph at that b
  (:func:`~pipesl.solvers.decision_graph.build_decision_graph` +
  :func:`~pipesl.solvers.basp.bottleneck_aware_shortest_path`, graph building included): it
  prices every hop on its own, so its value is a lower bound and its path may share a link or
  reuse a node; the row's T is cost.py's T of the decoded plan (``valid`` says whether the plan
  is a valid SPEC plan);
* ``milp`` — the mixed-integer program at that b (HiGHS, with a time limit).

The fixed-b rows carry ``ratio`` = T / T(exact_b): 1 for the MILP when both finish.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any

from pipesl.cost import evaluate, num_micro_batches
from pipesl.exceptions import PlanError
from pipesl.experiments.config import TimingConfig
from pipesl.experiments.instances import make_instance
from pipesl.experiments.runner import (
    ExperimentResult,
    Progress,
    add_ratios,
    markdown_table,
    solve_row,
    summarise,
)
from pipesl.problem.types import Problem
from pipesl.solvers.basp import bottleneck_aware_shortest_path
from pipesl.solvers.decision_graph import build_decision_graph, plan_from_path

__all__ = ["basp_row", "run_timing", "timing_markdown"]

JOINT = ("exact", "alternating")
FIXED = ("exact_b", "basp", "milp")


def basp_row(problem: Problem, b: int) -> dict[str, Any]:
    """Time the explicit decision graph + BASP at ``b``; T of the decoded plan by cost.py."""
    started = time.perf_counter()
    g, source, sink = build_decision_graph(problem, b)
    lam = num_micro_batches(problem.training.batch_size, b) - 1
    found = bottleneck_aware_shortest_path(g, source, sink, lam, weight="weight",
                                           bottleneck_weight="load")
    plan = plan_from_path(problem, g, found.path)
    seconds = time.perf_counter() - started
    try:
        ev = evaluate(problem, plan)
        valid = ev.feasible
        t = ev.objective_s
    except PlanError:  # a path that reuses a node is no SPEC plan
        valid, t = False, math.nan
    return {"objective_s": t, "basp_value_s": found.value, "valid": valid,
            "micro_batch_size": b, "num_stages": plan.num_stages, "seconds": seconds,
            "status": "relaxation", "optimal": False, "error": "",
            "graph_edges": g.number_of_edges()}


def _point(config: TimingConfig, series: str, size: int, seed: int) -> Problem:
    inst = config.instance
    if series == "nodes":
        inst = replace(inst, n_nodes=size)
    else:
        inst = replace(inst, n_nodes=config.layers_nodes, model=f"synthetic-cnn:{size}")
    return make_instance(inst, seed)


def run_timing(config: TimingConfig, progress: Progress | None = None) -> ExperimentResult:
    """Run the timing experiment (module docstring)."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    b = config.micro_batch_size
    points = [("nodes", n) for n in config.nodes] + [("layers", n) for n in config.layers]
    for series, size in points:
        for seed in range(config.seeds):
            problem = _point(config, series, size, seed)
            n_nodes, n_layers = len(problem.network.nodes), problem.model.num_layers
            base = {"experiment": config.name, "series": series, "x": size, "seed": seed,
                    "n_nodes": n_nodes, "n_links": len(problem.network.links),
                    "n_layers": n_layers, "instance": problem.name}
            for method in (*JOINT, *FIXED):
                if method == "basp":
                    if n_nodes > config.basp_max_nodes or n_layers > config.basp_max_layers:
                        continue
                    row = basp_row(problem, b)
                elif method == "milp":
                    if n_nodes > config.milp_max_nodes or n_layers > config.milp_max_layers:
                        continue
                    row, _ = solve_row(problem, "milp", micro_batch_size=b,
                                       time_limit=config.time_limit)
                elif method == "exact_b":
                    row, _ = solve_row(problem, "exact", micro_batch_size=b)
                else:
                    row, _ = solve_row(problem, method)
                rows.append({**base, "method": method, **row})
                if progress is not None:
                    progress(f"{series}={size} seed {seed} {method}")
    fixed = [r for r in rows if r["method"] in FIXED]
    add_ratios(fixed, ("series", "x", "seed"), reference="exact_b")
    joint = [r for r in rows if r["method"] in JOINT]
    add_ratios(joint, ("series", "x", "seed"), reference="exact")
    summary = summarise(rows, by=("series", "x", "method"), values=("seconds", "ratio"))
    milp = [r for r in rows if r["method"] == "milp"]
    checks = {"instances": sum(r["method"] == "exact" for r in rows),
              "milp_checked": sum(r["status"] == "optimal" for r in milp),
              "milp_time_limit": sum(r["status"] == "time_limit" for r in milp),
              "milp_disagree": sum(r["status"] == "optimal" and abs(r["ratio"] - 1) > 1e-6
                                   for r in milp),
              "exact_beaten": sum(r.get("ratio", math.nan) < 1 - 1e-9 for r in rows
                                  if r["method"] in ("milp", "alternating")),
              "basp_invalid": sum(r["method"] == "basp" and not r["valid"] for r in rows)}
    return ExperimentResult(config.name, "timing", config, tuple(rows), tuple(summary),
                            checks, time.perf_counter() - started)


def timing_markdown(result: ExperimentResult) -> str:
    """Mean planner time (s) per size and method, per series."""
    out = [f"### {result.name}\n\nMean running time in seconds over "
           f"{result.config.seeds} instance(s) per size (— : not run at that size).\n"]
    methods = [*JOINT, *FIXED]
    for series, label in (("nodes", "nodes"), ("layers", "layers")):
        cell = {(r["x"], r["method"]): r for r in result.summary if r["series"] == series}
        xs = list(dict.fromkeys(x for x, _ in cell))
        rows = []
        for x in xs:
            row: dict[str, Any] = {label: x}
            for m in methods:
                s = cell.get((x, m))
                row[m] = "—" if s is None else f"{s['seconds_mean']:.3g}"
            rows.append(row)
        out.append(f"\nBy number of {label}:\n\n" + markdown_table(rows, [label, *methods]))
    return "".join(out)
