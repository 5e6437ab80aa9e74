"""Gantt chart of a simulated iteration: one row per resource, one bar per task.

Forward passes are blue, backward passes orange; each bar carries its micro-batch number when
it can hold it: across the bar, or up it when the bar is narrow (M = 32 and more), in a font a
little smaller when the numbers have two digits or more; the figure widens with M. Rows
follow the pipeline (the order in which the first micro-batch uses the resources); link rows
sit on a grey band. A dashed line marks the
analytic T when the input is a :class:`~pipesl.sim.SimResult`. A trace of several data owners
(``trace.owner_labels``) colours each owner's bars in its own colour, backward passes lighter.
"""

from __future__ import annotations

import re

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from pipesl.cost import Resource
from pipesl.plotting.style import BACKWARD, FORWARD, STAGE_COLORS, new_figure, time_scale
from pipesl.sim import SimResult, Trace

__all__ = ["MAX_RECTANGLES", "gantt_chart", "resource_label"]

MAX_RECTANGLES = 20_000
"""Above this many tasks, bars are drawn as two collections instead of one patch each."""

_STEP = re.compile(r"^(?P<node>.+)\[(?P<first>\d+)-(?P<last>\d+)\]$")
_LAYERS = re.compile(r"^\[(?P<first>\d+)-(?P<last>\d+)\]$")


def _layers(first: str, last: str) -> str:
    return f"L{first}" if first == last else f"L{first}–{last}"


def resource_label(resource: str | Resource, steps: list[str], stage: int | None = None) -> str:
    """A row label: ``dev0  S1 L1-4`` for a node, ``u <-> v`` / ``u -> v`` for a link.

    Parameters
    ----------
    resource : str or Resource
        The typed resource (exact for any node id), or its name (parsed back: a node id
        holding ``-`` or ``>`` may then be mislabelled).
    steps : list of str
        The names of the steps the resource served (a compute stage is ``node[first-last]``).
    stage : int, optional
        The 0-based compute stage it served.

    Returns
    -------
    str
        The label.
    """
    where = f"S{stage + 1} " if stage is not None else ""
    if isinstance(resource, Resource):
        if resource.kind == "node":
            prefix = resource.u
            for step in steps:
                match = _LAYERS.match(step[len(prefix):]) if step.startswith(prefix) else None
                if match:
                    return f"{prefix}  {where}{_layers(match['first'], match['last'])}"
            return prefix
        arrow = "→" if resource.full_duplex else "↔"
        return f"{resource.u} {arrow} {resource.v}"
    kind, _, rest = resource.partition(":")
    if kind == "node":
        for step in steps:
            match = _STEP.match(step)
            if match:
                return f"{match['node']}  {where}{_layers(match['first'], match['last'])}"
        return rest
    if ">" in rest:
        u, v = rest.split(">", 1)
        return f"{u} → {v}"
    return rest.replace("-", " ↔ ", 1) if rest.count("-") == 1 else rest


def _row_labels(trace: Trace) -> list[str]:
    steps_of: list[list[str]] = [[] for _ in trace.resources]
    stage_of: list[int | None] = [None] * len(trace.resources)
    pairs = np.unique(np.stack([trace.resource, trace.step]), axis=1)
    for r, s in pairs.T.tolist():
        steps_of[r].append(trace.steps[s])
        if trace.step_stages[s] is not None:
            stage_of[r] = trace.step_stages[s]
    typed: tuple[str | Resource, ...] = trace.typed_resources or trace.resources
    return [resource_label(resource, steps_of[i], stage_of[i])
            for i, resource in enumerate(typed)]


def _is_link(trace: Trace, i: int) -> bool:
    if trace.typed_resources:
        return trace.typed_resources[i].kind == "link"
    return trace.resources[i].startswith("link:")


def _owner_color(owner: int) -> tuple[float, float, float, float]:
    return to_rgba(STAGE_COLORS[owner % len(STAGE_COLORS)])


def _lighter(rgba: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    r, g, b, a = rgba
    return (r + (1 - r) * 0.5, g + (1 - g) * 0.5, b + (1 - b) * 0.5, a)


def _owner_colors(trace: Trace) -> np.ndarray | None:
    """RGBA per task in its owner's colour (backward lighter); None for one owner."""
    if not trace.owner_labels:
        return None
    table = np.asarray([[_owner_color(o), _lighter(_owner_color(o))]
                        for o in range(len(trace.owner_labels))])
    return table[trace.owners(), trace.kind.astype(np.int64)]


def gantt_chart(result: SimResult | Trace, *, title: str | None = None,
                time_unit: str | None = None, ax: Axes | None = None) -> Figure:
    """Draw the Gantt chart of a simulated iteration.

    Parameters
    ----------
    result : SimResult or Trace
        What :func:`pipesl.sim.simulate` returned (or just its trace).
    title : str, optional
        Default: schedule, M, b, makespan and analytic T.
    time_unit : {"us", "ms", "s"}, optional
        Default: chosen from the makespan.
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`pipesl.plotting.save_figure`. With at most
        :data:`MAX_RECTANGLES` tasks, ``ax.patches`` holds exactly one rectangle per task.
    """
    trace = result.trace if isinstance(result, SimResult) else result
    rows = len(trace.resources)
    count = int(trace.micro_batch.max()) + 1 if len(trace) else 1
    if ax is None:
        width_in = min(12.0 * max(1.0, count / 16) ** 0.5, 20.0)
        fig = new_figure(width=width_in, height=1.3 + 0.42 * max(rows, 2))
        ax = fig.subplots()
    else:
        fig = ax.figure  # type: ignore[assignment]
    makespan = trace.makespan_s
    scale, unit = time_scale(makespan, time_unit)
    labels = _row_labels(trace)

    for i in range(rows):
        if _is_link(trace, i):
            ax.axhspan(i - 0.5, i + 0.5, color="#f2f2f2", zorder=0, linewidth=0)
    left = trace.start * scale
    width = (trace.end - trace.start) * scale
    y = trace.resource
    owner_colors = _owner_colors(trace)
    colors: np.ndarray = np.where(trace.kind == 0, FORWARD, BACKWARD) if owner_colors is None \
        else owner_colors
    # Pixels per time unit, to separate wide bars with a white edge but keep narrow ones
    # visible (a white edge would swallow a bar thinner than itself) and to place labels.
    fig_width_px = fig.get_figwidth() * fig.dpi * 0.82
    px_per_unit = fig_width_px / max(makespan * scale * 1.02, 1e-300)
    if len(trace) <= MAX_RECTANGLES:
        wide = width * px_per_unit >= 4.0
        edges = np.where(wide, "white", colors) if owner_colors is None else \
            np.where(wide[:, None], np.asarray(to_rgba("white")), colors)
        ax.barh(y, width, left=left, height=0.72, color=colors, edgecolor=edges,
                linewidth=0.6, zorder=2)
    elif owner_colors is not None:
        for r in range(rows):
            mask = y == r
            ax.broken_barh(list(zip(left[mask], width[mask], strict=True)),
                           (r - 0.36, 0.72), facecolors=colors[mask], zorder=2)
    else:
        for code, color in ((0, FORWARD), (1, BACKWARD)):
            sel = trace.kind == code
            for r in range(rows):
                mask = sel & (y == r)
                ax.broken_barh(list(zip(left[mask], width[mask], strict=True)),
                               (r - 0.36, 0.72), facecolors=color, zorder=2)

    # Micro-batch numbers where they fit: across the bar, else up it (a digit is about 0.6 em
    # wide and 1 em tall); the bar is 0.72 of a row high.
    fontsize = 7.5 if count <= 10 else 6.5
    em_px = fontsize / 72 * fig.dpi
    row_px = fig.get_figheight() * fig.dpi * 0.8 / max(rows, 1) * 0.72
    digits = np.floor(np.log10(trace.micro_batch + 1)) + 1
    bar_px = width * px_per_unit
    across = bar_px >= 0.62 * em_px * digits + 4
    up = ~across & (bar_px >= em_px + 1) & (0.62 * em_px * digits + 4 <= row_px)
    if int((across | up).sum()) <= 3000:
        for sel, rotation in ((across, 0), (up, 90)):
            for x0, w, r, m in zip(left[sel].tolist(), width[sel].tolist(), y[sel].tolist(),
                                   trace.micro_batch[sel].tolist(), strict=True):
                ax.text(x0 + w / 2, r, str(m), ha="center", va="center", fontsize=fontsize,
                        rotation=rotation, color="white", fontweight="bold", zorder=3)

    handles: list[Artist] = [Patch(color=FORWARD, label="forward (activation)"),
               Patch(color=BACKWARD, label="backward (gradient)")]
    if owner_colors is not None:
        handles = [Patch(color=_owner_color(o), label=label)
                   for o, label in enumerate(trace.owner_labels)]
        handles.append(Patch(color=_lighter(_owner_color(0)), label="(lighter: backward)"))
    if isinstance(result, SimResult):
        ax.axvline(result.analytic_s * scale, color="#333333", linestyle="--", linewidth=1.2,
                   zorder=4)
        handles.append(Line2D([], [], color="#333333", linestyle="--",
                              label=f"analytic T = {result.analytic_s * scale:.4g} {unit}"))
        if title is None:
            title = (f"{result.schedule} · M = {result.num_micro_batches} micro-batches of "
                     f"b = {result.micro_batch_size} · makespan {makespan * scale:.4g} {unit} "
                     f"(analytic {result.analytic_s * scale:.4g} {unit}) · "
                     f"bubbles {result.bubble_fraction:.1%}")
    ax.set_yticks(range(rows), labels)
    ax.set_ylim(rows - 0.5, -0.5)
    end = max(makespan, result.analytic_s if isinstance(result, SimResult) else 0.0)
    ax.set_xlim(0, end * scale * 1.02 if end > 0 else 1)
    ax.set_xlabel(f"time ({unit})")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=1)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False,
               fontsize=9)
    if title:
        ax.set_title(title, fontsize=10.5, loc="left")
    return fig
