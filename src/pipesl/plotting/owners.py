"""The owners experiment's figure: iteration time against the number of data owners.

One panel per family of instances (the generated campus, the built-in scenario): the mean
iteration time of each planner (joint, independent, sequential) against n, with a band from
the least to the largest instance, and joint's lower bound dotted where it is not certified.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure

from pipesl.experiments.runner import ExperimentResult
from pipesl.plotting.style import new_figure

__all__ = ["owners_figure"]

STYLE = {"joint": {"color": "#111111", "marker": "o", "lw": 2.2,
                   "label": "joint (all owners planned together)"},
         "heuristic": {"color": "#2ca02c", "marker": "^", "lw": 1.4, "label": "heuristic"},
         "independent": {"color": "#1f77b4", "marker": "s", "lw": 1.5, "ls": "--",
                         "label": "independent (each owner planned alone)"},
         "sequential": {"color": "#d62728", "marker": "D", "lw": 1.5, "ls": ":",
                        "label": "sequential SL (round-robin, round time)"}}


def owners_figure(result: ExperimentResult) -> Figure:
    """Iteration time (ms) against the number of owners, one panel per family."""
    rows = result.rows
    families = list(dict.fromkeys(r["family"] for r in rows))
    fig = new_figure(5.8 * len(families) + 2.5, 4.6)
    axes = fig.subplots(1, len(families), squeeze=False)[0]
    methods = result.config.methods
    for ax, family in zip(axes, families, strict=True):
        mine = [r for r in rows if r["family"] == family]
        ns = sorted({r["owners"] for r in mine})
        for m in methods:
            mean, lo, hi = [], [], []
            for n in ns:
                ts = [1e3 * r["makespan_s"] for r in mine if r["owners"] == n
                      and r["method"] == m and math.isfinite(r["makespan_s"])]
                mean.append(sum(ts) / len(ts) if ts else math.nan)
                lo.append(min(ts) if ts else math.nan)
                hi.append(max(ts) if ts else math.nan)
            style = dict(STYLE.get(m, {"label": m}))
            ax.plot(ns, mean, **style)
            if any(a != b for a, b in zip(lo, hi, strict=True)):
                ax.fill_between(ns, lo, hi, color=style.get("color"), alpha=0.12, lw=0)
        bounds = []
        for n in ns:
            joint = [r for r in mine if r["owners"] == n and r["method"] == methods[0]]
            lbs = [1e3 * r["lower_bound_s"] for r in joint if not r["optimal"]
                   and math.isfinite(r["lower_bound_s"])]
            bounds.append(sum(lbs) / len(lbs) if lbs else math.nan)
        if any(math.isfinite(b) for b in bounds):
            ax.plot(ns, bounds, color="#777777", lw=1.0, ls=(0, (1, 2)), marker=".",
                    label="joint's lower bound (where not certified)")
        ax.set_xticks(ns)
        ax.set_xlabel("data owners n (each B = its batch, in parallel)")
        ax.set_ylabel("iteration time (ms)")
        ax.set_title(family, fontsize=10, loc="left")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    return fig
