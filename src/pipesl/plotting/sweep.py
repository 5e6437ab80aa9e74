"""The iteration time against the micro-batch size b for one problem (``pipesl plan
--sweep-b --sweep-plot``): the best plan's objective at each b, the analytic T beside it."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from pipesl.plotting.style import BACKWARD, FORWARD, new_figure, time_scale

__all__ = ["micro_batch_sweep_figure"]


def micro_batch_sweep_figure(sizes: Sequence[int], objective_s: Sequence[float | None],
                             analytic_s: Sequence[float | None], *, what: str,
                             batch_size: int, title: str = "") -> Figure:
    """Objective and analytic T against b (log axis); b without a plan that fits is marked
    on the axis; the best b is ringed.

    Parameters
    ----------
    sizes : sequence of int
        The micro-batch sizes swept.
    objective_s, analytic_s : sequence of float or None
        Per size: the objective and the analytic T of the best plan (None: nothing fits).
    what : str
        The objective's name for the axis and legend.
    batch_size : int
        B, for the caption.
    """
    fig = new_figure(8.0, 4.6)
    ax = fig.subplots()
    feasible = [i for i, t in enumerate(objective_s) if t is not None]
    top = max((objective_s[i] or 0.0 for i in feasible), default=1.0)
    scale, unit = time_scale(top)
    bs = [sizes[i] for i in feasible]
    ax.plot(bs, [(objective_s[i] or 0.0) * scale for i in feasible], marker="o",
            color=FORWARD, label=what, zorder=3)
    if any(analytic_s[i] != objective_s[i] for i in feasible):
        ax.plot(bs, [(analytic_s[i] or 0.0) * scale for i in feasible], marker=".",
                linestyle="--", color=BACKWARD, label="analytic T (SPEC 3)", zorder=2)
    if feasible:
        best = min(feasible, key=lambda i: objective_s[i] or 0.0)
        ax.scatter([sizes[best]], [(objective_s[best] or 0.0) * scale], s=220,
                   facecolors="none", edgecolors="black", linewidths=1.5, zorder=4,
                   label=f"best: b = {sizes[best]}")
    missing = [b for b, t in zip(sizes, objective_s, strict=True) if t is None]
    if missing:
        ax.scatter(missing, [0.0] * len(missing), marker="x", color="#c03030", zorder=4,
                   label="no plan fits in memory", clip_on=False)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())  # 1, 2, 4 ... rather than 2^0, 2^1
    ax.set_xlabel(f"micro-batch size b (B = {batch_size})")
    ax.set_ylabel(f"iteration time ({unit})")
    ax.set_ylim(bottom=0)
    ax.grid(color="#dddddd", linewidth=0.6)
    ax.legend(frameon=False, fontsize=9)
    if title:
        ax.set_title(title, fontsize=10.5, loc="left")
    return fig
