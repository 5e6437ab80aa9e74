"""Figure of the adaptation experiment: iteration time and throughput through a network change.

One row per case (:mod:`pipesl.experiments.adaptation`): on the left, the measured iteration
time of each arm against the iteration, with the event and the adapted run's switch marked;
on the right, each arm's throughput against wall-clock time since its launch, every
iteration drawn as a bar over the time it ran, so that start-up, the relaunch gap and a
failure show as empty stretches.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from pipesl.experiments.runner import ExperimentResult
from pipesl.plotting.style import new_figure

__all__ = ["ARM_STYLES", "adaptation_figure"]

ARM_STYLES: dict[str, dict[str, Any]] = {
    "static": {"color": "#d62728", "marker": "o", "ls": "-",
               "label": "static: the initial optimal plan throughout"},
    "adapted": {"color": "#1f77b4", "marker": "s", "ls": "-",
                "label": "adapted: detects the change, re-plans, moves the job"},
    "optimum": {"color": "#111111", "marker": "^", "ls": "--",
                "label": "optimum: the changed network's optimal plan from the start"},
}
EVENT = "#7f7f7f"
_BOX = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "#cccccc", "alpha": 0.9}


def _its(rows: Sequence[dict[str, Any]], case: str, arm: str, kept: bool | None = True
         ) -> list[dict[str, Any]]:
    out = [r for r in rows if r["record"] == "iteration" and r["case"] == case
           and r["arm"] == arm and (kept is None or r["kept"] == kept)]
    return sorted(out, key=lambda r: (r["arrived_s"]))


def _failure(rows: Sequence[dict[str, Any]], case: str, arm: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["record"] == "failure" and r["case"] == case
                 and r["arm"] == arm), None)


def _event_label(summary: dict[str, Any]) -> str:
    text = str(summary["event"]).replace(" x", " ×")
    return text.replace(f" from iteration {summary['event_iteration']}", "").replace(
        f" at iteration {summary['event_iteration']}", "")


def _iterations_panel(ax: Axes, rows: Sequence[dict[str, Any]], s: dict[str, Any],
                      target: float) -> None:
    case, event = s["case"], s["event_iteration"]
    for arm, st in ARM_STYLES.items():
        mine = sorted(_its(rows, case, arm), key=lambda r: r["iteration"])
        if mine:
            ax.plot([r["iteration"] for r in mine], [1e3 * r["measured_s"] for r in mine],
                    color=st["color"], marker=st["marker"], ls=st["ls"], ms=4.5, lw=1.6,
                    label=st["label"], zorder=3 if arm == "adapted" else 2)
        again = _its(rows, case, arm, kept=False)
        if again:
            ax.plot([r["iteration"] for r in again], [1e3 * r["measured_s"] for r in again],
                    color=st["color"], marker=st["marker"], mfc="white", ls="none", ms=6,
                    label=f"{arm}: iteration lost to the failure (run again)")
        fail = _failure(rows, case, arm)
        if fail is not None:
            y = 1e3 * mine[-1]["measured_s"] if mine else 0.0
            ax.plot([fail["iteration"]], [y], marker="X", ms=11, color=st["color"], ls="none")
            ax.annotate(f"{arm} run fails here:\n{fail['node']} is gone", (fail["iteration"], y),
                        xytext=(14, -34), textcoords="offset points", fontsize=8,
                        color=st["color"], bbox=_BOX,
                        arrowprops={"arrowstyle": "-", "color": st["color"]})
    opt = s["optimum_after_event_s"]
    if isinstance(opt, float) and math.isfinite(opt):
        ax.axhspan(1e3 * opt, 1e3 * opt / target, xmin=0, xmax=1, color="#2ca02c", alpha=0.12,
                   lw=0, label=f"≥ {target:.0%} of the optimum's throughput after the event")
    ax.axvline(event - 0.5, color=EVENT, ls=":", lw=1.8)
    ax.annotate(f"event: {_event_label(s)}\n(from iteration {event})", (event - 0.5, 0.02),
                xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points",
                va="bottom", fontsize=8, color="#333333", bbox=_BOX)
    resumed = s["resumed_from"]
    if isinstance(resumed, int):
        ax.axvline(resumed - 0.5, color=ARM_STYLES["adapted"]["color"], ls="--", lw=1.0)
        ax.annotate(f"adapted runs a new plan\nfrom iteration {resumed}",
                    (resumed - 0.5, 0.13), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", va="bottom", fontsize=8,
                    color=ARM_STYLES["adapted"]["color"], bbox=_BOX)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("measured iteration time (ms, emulated network)")
    ax.set_ylim(0, 1.12 * ax.get_ylim()[1])
    ax.grid(True, alpha=0.3)


def _wall_panel(ax: Axes, rows: Sequence[dict[str, Any]], s: dict[str, Any]) -> None:
    case, event = s["case"], s["event_iteration"]
    for arm, st in ARM_STYLES.items():
        mine = _its(rows, case, arm, kept=None)
        if not mine:
            continue
        ax.hlines([r["throughput_sps"] for r in mine], [r["started_s"] for r in mine],
                  [r["arrived_s"] for r in mine], color=st["color"], lw=2.6,
                  linestyles="solid" if arm != "optimum" else "dashed")
        ax.plot([r["arrived_s"] for r in mine], [r["throughput_sps"] for r in mine],
                marker=st["marker"], ms=3.5, ls="none", color=st["color"], label=arm)
        first = next((r for r in mine if r["iteration"] >= event), None)
        fail = _failure(rows, case, arm)
        at = first["started_s"] if first is not None else (fail["arrived_s"] if fail else None)
        if at is not None:
            ax.axvline(at, color=st["color"], ls=":", lw=1.2)
        if fail is not None:
            ax.plot([fail["arrived_s"]], [0], marker="X", ms=11, color=st["color"], ls="none",
                    clip_on=False)
            ax.annotate(f"{arm} fails", (fail["arrived_s"], 0), xytext=(6, 8),
                        textcoords="offset points", fontsize=8, color=st["color"])
    adapted = _its(rows, case, "adapted", kept=None)
    for prev, nxt in itertools.pairwise(adapted):
        if nxt["segment"] != prev["segment"]:
            ax.axvspan(prev["arrived_s"], nxt["started_s"], color=ARM_STYLES["adapted"]["color"],
                       alpha=0.12, lw=0)
            ax.annotate(f"relaunch\n{nxt['started_s'] - prev['arrived_s']:.1f} s",
                        ((prev["arrived_s"] + nxt["started_s"]) / 2, 0.97),
                        xycoords=("data", "axes fraction"), ha="center", va="top", fontsize=8,
                        color=ARM_STYLES["adapted"]["color"])
    ax.plot([], [], color=EVENT, ls=":", label=f"iteration {event} (event) starts, per run")
    ax.set_xlabel("wall-clock time since the run's launch (s)")
    ax.set_ylabel("throughput (samples/s = B / iteration time)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")


def adaptation_figure(result: ExperimentResult) -> Figure:
    """Per case: iteration time vs iteration (left) and throughput vs wall clock (right)."""
    cases = list(result.summary)
    fig = new_figure(13.5, 4.4 * max(len(cases), 1) + 0.6)
    axes = fig.subplots(max(len(cases), 1), 2, squeeze=False)
    cfg = result.config
    for (left, right), s in zip(axes, cases, strict=False):
        _iterations_panel(left, result.rows, s, cfg.target)
        _wall_panel(right, result.rows, s)
        left.set_title(f"{s['case']}: iteration time per iteration", fontsize=10)
        right.set_title(f"{s['case']}: throughput over time (bars span each iteration)",
                        fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[1:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8.5,
               frameon=False)
    fig.suptitle(f"Adaptation in emulation: {cfg.scenario}, {cfg.steps} iterations per run, "
                 f"B = {cases[0]['batch_size'] if cases else '?'} samples per iteration",
                 fontsize=11)
    return fig
