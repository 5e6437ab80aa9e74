"""Colours, figure creation and saving shared by the plots (Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["BACKWARD", "FORWARD", "STAGE_COLORS", "new_figure", "save_figure", "time_scale"]

FORWARD = "#3b6fb6"
"""Forward passes (activations)."""
BACKWARD = "#e08a2e"
"""Backward passes (gradients)."""
STAGE_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
                "#edc948", "#9c755f", "#ff9da7", "#bab0ac")
"""One colour per compute stage (Tableau 10), cycled beyond ten stages."""

_UNITS = {"us": 1e6, "ms": 1e3, "s": 1.0}
_SHOWN = {"us": "µs", "ms": "ms", "s": "s"}


def new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no global pyplot state, safe in threads and servers)."""
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` (PNG, SVG or PDF by suffix) and return the path."""
    p = Path(path)
    fig.savefig(p, dpi=dpi)
    return p


def time_scale(seconds: float, unit: str | None = None) -> tuple[float, str]:
    """``(factor, label)`` to show times up to ``seconds``: ms below 2 s, µs below 2 ms.

    ``unit`` forces ``"us"``, ``"ms"`` or ``"s"``.
    """
    if unit is None:
        unit = "us" if seconds < 2e-3 else "ms" if seconds < 2.0 else "s"
    if unit not in _UNITS:
        raise ValueError(f"time unit must be one of {sorted(_UNITS)}, not {unit!r}")
    return _UNITS[unit], _SHOWN[unit]
