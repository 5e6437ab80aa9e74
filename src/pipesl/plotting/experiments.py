"""Figures of the experiments: sweep curves, the micro-batch U-curve, robustness, timing
(and, through :mod:`pipesl.plotting.adaptation`, the adaptation runs).

Every function takes an :class:`~pipesl.experiments.runner.ExperimentResult` and returns a
:class:`matplotlib.figure.Figure` (Agg canvas, see :mod:`pipesl.plotting.style`). Lines are
means over the seeded instances; shaded bands span their min..max.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipesl.experiments.runner import ExperimentResult
from pipesl.plotting.style import new_figure

__all__ = ["METHOD_STYLES", "experiment_figure", "microbatch_figure", "robustness_figure",
           "sweep_figure", "timing_figure"]

METHOD_STYLES: dict[str, dict[str, Any]] = {
    "exact": {"color": "#111111", "marker": "o", "lw": 2.4, "label": "exact (pipesl, optimal)"},
    "alternating": {"color": "#6b6b6b", "marker": ".", "ls": "--",
                    "label": "alternating (paper)"},
    "milp": {"color": "#17becf", "marker": "+", "ls": "none", "ms": 11,
             "label": "MILP at exact's b (check)"},
    "no_pipeline": {"color": "#d62728", "marker": "s", "label": "no pipelining (b = B)"},
    "two_tier": {"color": "#ff7f0e", "marker": "^", "label": "two-tier SL"},
    "fixed_b": {"color": "#9467bd", "marker": "v", "label": "fixed b = B/4"},
    "bottleneck_only": {"color": "#1f77b4", "marker": "D", "ms": 4,
                        "label": "bottleneck only (PipeEdge-like)"},
    "even_split": {"color": "#2ca02c", "marker": "P", "label": "even split"},
    "greedy": {"color": "#8c564b", "marker": "X", "label": "greedy fastest-first"},
    "random": {"color": "#bcbd22", "marker": "*", "label": "random plan"},
    "exact_stale": {"color": "#e377c2", "marker": "o", "ls": ":",
                    "label": "exact, stale plan"},
    "exact_stale_b": {"color": "#7f7f7f", "marker": "o", "ls": "-.",
                      "label": "exact, stale placement, b re-tuned"},
    "no_pipeline_stale": {"color": "#d62728", "marker": "s", "ls": ":",
                          "label": "no pipelining, stale plan"},
    "exact_b": {"color": "#555555", "marker": "o", "ls": "--", "label": "exact at fixed b"},
    "basp": {"color": "#1f77b4", "marker": "D", "label": "BASP, explicit graph (paper)"},
}


_OVERRIDES: dict[str, dict[str, Any]] = {}


def _style(method: str) -> dict[str, Any]:
    style = {"color": None, "marker": "o", "ls": "-", "lw": 1.5, "ms": 6, "label": method}
    style.update(METHOD_STYLES.get(method, {}))
    style.update(_OVERRIDES.get(method, {}))
    return style


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _series(summary: Sequence[dict[str, Any]], method: str, metric: str, xs: Sequence[Any],
            key: str = "x") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = {r[key]: r for r in summary if r["method"] == method}
    mean = np.array([cell[x][f"{metric}_mean"] if x in cell else np.nan for x in xs], float)
    lo = np.array([cell[x][f"{metric}_min"] if x in cell else np.nan for x in xs], float)
    hi = np.array([cell[x][f"{metric}_max"] if x in cell else np.nan for x in xs], float)
    return mean, lo, hi


BANDS = frozenset({"exact", "no_pipeline", "two_tier", "exact_stale", "exact_b", "milp"})
"""Methods drawn with their min..max band (the others as lines, to keep figures readable)."""


def _lines(ax: Axes, positions: np.ndarray, summary: Sequence[dict[str, Any]],
           methods: Sequence[str], metric: str, xs: Sequence[Any], scale: float = 1.0,
           key: str = "x", categorical: bool = False) -> None:
    """Mean per method: lines with min..max bands (numeric x), or dodged markers with
    min..max error bars (categorical x)."""
    width = 0.6 / max(len(methods), 1)
    for i, m in enumerate(methods):
        mean, lo, hi = _series(summary, m, metric, xs, key)
        if np.all(np.isnan(mean)):
            continue
        st = _style(m)
        if categorical:
            x = positions + (i - (len(methods) - 1) / 2) * width
            err = np.vstack((mean - lo, hi - mean)) * scale
            ax.errorbar(x, mean * scale, yerr=err, color=st["color"], marker=st["marker"],
                        ls="none", ms=st["ms"], capsize=2, lw=1.0, label=st["label"],
                        zorder=3 if m == "exact" else 2)
            continue
        ax.plot(positions, mean * scale, color=st["color"], marker=st["marker"], ls=st["ls"],
                lw=st["lw"], ms=st["ms"], label=st["label"], zorder=3 if m == "exact" else 2)
        if m in BANDS and st["ls"] != "none":
            ax.fill_between(positions, lo * scale, hi * scale, color=st["color"], alpha=0.15,
                            lw=0)


def _always_optimal(summary: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[str]:
    """Methods whose T equals exact's (within 1e-9) on every instance."""
    out = []
    for m in methods:
        rows = [r for r in summary if r["method"] == m]
        if rows and all(r["n_ok"] == r["n"] and r["ratio_max"] <= 1 + 1e-9 for r in rows):
            out.append(_style(m)["label"])
    return out


def _x_axis(ax: Axes, xs: Sequence[Any], label: str, log_x: bool) -> np.ndarray:
    if _is_numeric(xs):
        pos = np.asarray(xs, dtype=float)
        if log_x:
            ax.set_xscale("log")
        ax.set_xticks(pos)
        ax.set_xticklabels([f"{x:g}" for x in xs])
        ax.minorticks_off()
    else:
        pos = np.arange(len(xs), dtype=float)
        ax.set_xticks(pos)
        ax.set_xticklabels([str(x) for x in xs], rotation=20, ha="right")
    import textwrap

    ax.set_xlabel(textwrap.fill(label, 60))
    ax.grid(True, which="major", alpha=0.3)
    return pos


def sweep_figure(result: ExperimentResult) -> Figure:
    """Left: mean T per planner (band: min..max over seeds). Right: T / T(exact)."""
    cfg = result.config
    summary = result.summary
    xs = list(dict.fromkeys(r["x"] for r in summary))
    methods = [m for m in (*cfg.methods, "milp") if any(r["method"] == m for r in summary)]
    t_max = max((r["objective_s_max"] for r in summary
                 if isinstance(r["objective_s_max"], float)
                 and math.isfinite(r["objective_s_max"])), default=1.0)
    scale, unit = (1e3, "ms") if t_max < 20 else (1.0, "s")
    fig = new_figure(12.5, 4.8)
    left, right = fig.subplots(1, 2)
    label = cfg.x_label or cfg.vary
    for ax in (left, right):
        pos = _x_axis(ax, xs, label, cfg.log_x)
    categorical = not _is_numeric(xs)
    _lines(left, pos, summary, methods, "objective_s", xs, scale, categorical=categorical)
    left.set_yscale("log")
    _plain_log_axis(left.yaxis)
    left.set_ylabel(f"iteration latency T ({unit}, log scale)")
    left.set_title("Training latency of one mini-batch")
    others = [m for m in methods if m != "exact"]
    _lines(right, pos, summary, others, "ratio", xs, categorical=categorical)
    right.axhline(1.0, color="#111111", lw=2.0)
    right.set_yscale("log")
    _plain_log_axis(right.yaxis)
    right.set_ylabel("T / T(exact) on the same instance (log scale)")
    right.set_title("Slowdown against the exact optimum")
    same = _always_optimal(summary, others)
    if same:
        right.text(1.04, 0.0, "equal to exact on every instance:\n" + "\n".join(same),
                   transform=right.transAxes, va="bottom", ha="left", fontsize=7.5,
                   bbox={"boxstyle": "round", "fc": "white", "ec": "#cccccc"})
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    spread = ("markers = mean, bars = min..max" if categorical else
              "lines = mean; bands (exact, no pipelining, two-tier) = min..max")
    fig.suptitle(f"{result.name}: {cfg.seeds} seeded instance(s) per point; {spread}",
                 fontsize=10)
    return fig


def _plain_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")


def _plain_log_axis(axis: Any) -> None:
    """Plain numbers (not 10^k) on a log axis, minor ticks labelled sparsely."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_formatter(_plain_formatter())
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def microbatch_figure(result: ExperimentResult) -> Figure:
    """Left: one instance's T(b) with the closed-form b* marked. Right: mean T*(b) / T*."""
    rows = result.rows
    fig = new_figure(12.5, 4.8)
    left, right = fig.subplots(1, 2)
    first = rows[0]["instance"]
    mine = [r for r in rows if r["instance"] == first]
    for series, style in (("optimal_at_b", {"color": "#111111", "lw": 2.0,
                                            "label": "optimal plan at each b: T*(b)"}),
                          ("exact_placement", {"color": "#1f77b4", "lw": 1.3, "ls": "--",
                                               "label": "exact plan's placement, b varied"})):
        pts = sorted((r["b"], r["objective_s"]) for r in mine if r["series"] == series)
        b, t = np.array(pts, dtype=float).T
        left.plot(b, 1e3 * t, **style)
    cf = next(r for r in mine if r["series"] == "closed_form")
    ex = next(r for r in mine if r["series"] == "exact")
    B = ex["batch_size"]
    flat = next(r["objective_s"] for r in mine if r["series"] == "optimal_at_b" and r["b"] == B)
    left.axvline(cf["b"], color="#d62728", ls=":", lw=1.5,
                 label=f"closed-form b* = {cf['b']:.1f}")
    left.plot([ex["b"]], [1e3 * ex["objective_s"]], marker="*", ms=16, color="#ff7f0e", ls="none",
              label=f"exact optimum: b = {ex['b']}, T = {1e3 * ex['objective_s']:.0f} ms")
    left.plot([B], [1e3 * flat], marker="s", ms=8, color="#d62728", ls="none",
              label=f"no pipelining: b = B = {B}, T = {1e3 * flat:.0f} ms")
    left.set_xscale("log", base=2)
    left.xaxis.set_major_formatter(_plain_formatter())
    left.set_yscale("log")
    _plain_log_axis(left.yaxis)
    left.set_xlabel("micro-batch size b (samples, log scale)")
    left.set_ylabel("iteration latency T (ms, log scale)")
    left.set_title(f"{first}: the U-curve")
    left.legend(fontsize=8)
    left.grid(True, alpha=0.3)
    summary = result.summary
    if summary:
        b = np.array([r["b"] for r in summary], dtype=float)
        order = np.argsort(b)
        b = b[order]
        mean = np.array([r["ratio_mean"] for r in summary])[order]
        lo = np.array([r["ratio_min"] for r in summary])[order]
        hi = np.array([r["ratio_max"] for r in summary])[order]
        right.plot(b, mean, color="#111111", lw=2.0, label="mean T*(b) / T* (band: min..max)")
        right.fill_between(b, lo, hi, color="#111111", alpha=0.15, lw=0)
        for i, r in enumerate(r for r in rows if r["series"] == "closed_form"
                              and r["group"] == "generated"):
            right.axvline(r["b"], color="#d62728", ls=":", lw=1.0,
                          label="closed-form b* per instance" if i == 0 else None)
        right.set_xscale("log", base=2)
        right.xaxis.set_major_formatter(_plain_formatter())
        right.set_yscale("log")
        _plain_log_axis(right.yaxis)
    n = sum(r["series"] == "exact" and r["group"] == "generated" for r in rows)
    right.set_xlabel("micro-batch size b (samples, log scale)")
    right.set_ylabel("T*(b) / T* (log scale)")
    right.set_title(f"{n} generated instances, normalised")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    return fig


def robustness_figure(result: ExperimentResult) -> Figure:
    """T / T(re-optimised exact) against the fluctuation level, per planner."""
    summary = result.summary
    xs = list(dict.fromkeys(r["x"] for r in summary))
    methods = [m for m in dict.fromkeys(r["method"] for r in summary) if m != "exact"]
    fig = new_figure(11.5, 4.8)
    ax = fig.subplots()
    pos = np.asarray(xs, dtype=float) * 100
    _lines(ax, pos, summary, methods, "ratio", xs)
    ax.axhline(1.0, color="#111111", lw=2.0, label="exact, re-optimised each round = 1")
    ax.set_xticks(pos)
    ax.set_xticklabels([f"±{p:.0f}" for p in pos])
    ax.set_xlabel("per-round fluctuation of every bandwidth and server FLOP/s (%)")
    ax.set_ylabel("T / T(exact re-optimised), log scale")
    ax.set_yscale("log")
    _plain_log_axis(ax.yaxis)
    ax.grid(True, alpha=0.3)
    cfg = result.config
    ax.set_title(f"Fresh vs stale plans: {cfg.seeds} instance(s) x {cfg.rounds} rounds per "
                 "level (bands: min..max)", fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=8,
               frameon=False)
    return fig


def timing_figure(result: ExperimentResult) -> Figure:
    """Planner time against nodes (left) and layers (right), log scale."""
    fig = new_figure(12.5, 4.8)
    axes = fig.subplots(1, 2)
    methods = ["exact", "alternating", "exact_b", "basp", "milp"]
    cfg = result.config
    for ax, series, label in ((axes[0], "nodes", "network nodes (model: "
                               f"{cfg.instance.model}, L fixed)"),
                              (axes[1], "layers", f"model layers (synthetic CNN, "
                               f"{cfg.layers_nodes} nodes)")):
        summary = [r for r in result.summary if r["series"] == series]
        xs = list(dict.fromkeys(r["x"] for r in summary))
        pos = _x_axis(ax, xs, label, log_x=True)
        _OVERRIDES["milp"] = {"ls": "-", "ms": 9, "label": "MILP at fixed b (HiGHS)"}
        try:
            _lines(ax, pos, summary, methods, "seconds", xs)
        finally:
            _OVERRIDES.clear()
        ax.set_yscale("log")
        ax.set_ylabel("planner running time (s, log scale)")
        ax.yaxis.set_major_formatter(_plain_formatter())
    axes[0].set_title(f"b fixed at {cfg.micro_batch_size} for exact_b, BASP and MILP; "
                      "joint over b for exact, alternating", fontsize=9)
    axes[1].set_title(f"MILP time limit {cfg.time_limit:g} s; bands: min..max over "
                      f"{cfg.seeds} seed(s)", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return fig


def experiment_figure(result: ExperimentResult) -> Figure:
    """The figure of any experiment result."""
    if result.kind == "adaptation":
        from pipesl.plotting.adaptation import adaptation_figure

        return adaptation_figure(result)
    if result.kind == "owners":
        from pipesl.plotting.owners import owners_figure

        return owners_figure(result)
    return {"sweep": sweep_figure, "microbatch": microbatch_figure,
            "robustness": robustness_figure, "timing": timing_figure}[result.kind](result)
