"""Running planners on instances and turning their results into tidy rows and summaries.

A *row* is one (point, seed, method) outcome as a flat dict (one CSV line): the measured T and
its parts, T divided by the exact planner's T on the same instance, the solver's time and
status, or the error that stopped it. :func:`summarise` groups rows into mean / standard
deviation / min / max per point and method; :func:`markdown_table` renders any list of dicts.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipesl.exceptions import InfeasibleError
from pipesl.problem.types import Problem
from pipesl.solvers import SolveResult, solve

__all__ = [
    "ExperimentResult",
    "Progress",
    "check_rows",
    "markdown_table",
    "result_row",
    "solve_row",
    "summarise",
    "write_csv",
]

Progress = Callable[[str], None]
"""Called once per finished unit of work with a short label (the CLI draws a progress bar)."""
EXACT = "exact"
REL_TOL = 1e-9
"""A baseline below exact by more than this relative margin is a bug (it is reported)."""


@dataclass(frozen=True)
class ExperimentResult:
    """What an experiment returns: its tidy rows, their summary and the checks it ran."""

    name: str
    kind: str
    """``sweep``, ``microbatch``, ``robustness`` or ``timing``."""
    config: Any
    rows: tuple[dict[str, Any], ...]
    summary: tuple[dict[str, Any], ...]
    checks: dict[str, int] = field(default_factory=dict)
    """``instances``, ``exact_beaten`` (must be 0), ``milp_checked``, ``milp_disagree``
    (must be 0), ... depending on the experiment."""
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    """Facts measured by the experiment worth a sentence (closed-form b, counts, ...)."""


def result_row(result: SolveResult) -> dict[str, Any]:
    """The measured fields of a solver result."""
    ev = result.evaluation
    assert ev is not None
    return {"objective_s": result.objective_s, "micro_batch_size": result.micro_batch_size,
            "num_micro_batches": result.num_micro_batches,
            "num_stages": result.plan.num_stages,
            "first_micro_batch_s": ev.first_micro_batch_s, "bottleneck_s": ev.bottleneck_s,
            "seconds": result.seconds, "status": result.status, "optimal": result.optimal,
            "error": ""}


def _failed(message: str, seconds: float) -> dict[str, Any]:
    return {"objective_s": math.nan, "micro_batch_size": 0, "num_micro_batches": 0,
            "num_stages": 0, "first_micro_batch_s": math.nan, "bottleneck_s": math.nan,
            "seconds": seconds, "status": "infeasible", "optimal": False,
            "error": " ".join(message.split())}


def solve_row(problem: Problem, method: str, **options: Any
              ) -> tuple[dict[str, Any], SolveResult | None]:
    """Run one planner; an :class:`InfeasibleError` becomes a row with ``status=infeasible``."""
    started = time.perf_counter()
    try:
        result = solve(problem, method, objective="analytic", **options)
    except InfeasibleError as exc:
        return _failed(str(exc), time.perf_counter() - started), None
    return result_row(result), result


def add_ratios(rows: list[dict[str, Any]], keys: Sequence[str], reference: str = EXACT,
               column: str = "ratio") -> None:
    """Set ``row[column]`` = T / T of ``reference`` among the rows sharing ``keys``."""
    ref = {tuple(r[k] for k in keys): r["objective_s"] for r in rows
           if r["method"] == reference}
    for r in rows:
        t0 = ref.get(tuple(r[k] for k in keys), math.nan)
        t = r["objective_s"]
        r[column] = t / t0 if t0 and math.isfinite(t0) and math.isfinite(t) else math.nan


def check_rows(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Count instances and the rows that beat the exact planner (which would be a bug)."""
    rows = list(rows)
    beaten = [r for r in rows if r["method"] != EXACT and r.get("ratio", math.nan) < 1 - REL_TOL]
    milp = [r for r in rows if r["method"] == "milp" and r["status"] == "optimal"]
    return {"instances": sum(r["method"] == EXACT for r in rows),
            "exact_infeasible": sum(r["method"] == EXACT and r["status"] == "infeasible"
                                    for r in rows),
            "exact_unproven": sum(r["method"] == EXACT and r["status"] == "time_limit"
                                  for r in rows),
            "exact_beaten": len(beaten),
            "milp_checked": len(milp),
            "milp_disagree": sum(abs(r["ratio"] - 1) > 1e-6 for r in milp)}


def _stats(values: list[float], prefix: str) -> dict[str, float]:
    ok = [v for v in values if math.isfinite(v)]
    if not ok:
        return {f"{prefix}_mean": math.nan, f"{prefix}_std": math.nan,
                f"{prefix}_min": math.nan, f"{prefix}_max": math.nan}
    return {f"{prefix}_mean": statistics.fmean(ok),
            f"{prefix}_std": statistics.stdev(ok) if len(ok) > 1 else 0.0,
            f"{prefix}_min": min(ok), f"{prefix}_max": max(ok)}


def summarise(rows: Iterable[dict[str, Any]], by: Sequence[str] = ("x", "method"),
              values: Sequence[str] = ("objective_s", "ratio", "seconds")
              ) -> list[dict[str, Any]]:
    """Mean, standard deviation, min and max of ``values`` per group of ``by`` (first-seen
    order); ``n`` counts the rows, ``n_ok`` those with a finite T."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n"] = len(members)
        row["n_ok"] = sum(math.isfinite(m["objective_s"]) for m in members)
        for v in values:
            row.update(_stats([float(m.get(v, math.nan)) for m in members], v))
        out.append(row)
    return out


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write rows (dicts with the same keys, first row's order) as CSV."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with p.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(r.get(k, "")) for k in columns})
    return p


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                   headers: Sequence[str] | None = None,
                   formats: dict[str, Callable[[Any], str]] | None = None) -> str:
    """A GitHub markdown table of ``rows`` (numbers to 4 significant digits)."""
    if not rows:
        return "(no rows)\n"
    columns = list(columns or rows[0].keys())
    headers = list(headers or columns)
    formats = formats or {}

    def fmt(col: str, value: Any) -> str:
        if col in formats:
            return formats[col](value)
        if isinstance(value, float):
            return "–" if math.isnan(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(c, r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"
