"""Pictures: the Gantt chart of a simulation and the placement map of a plan.

matplotlib is imported only under this package, and only through an Agg canvas (no pyplot,
no global backend state): every function returns a :class:`matplotlib.figure.Figure` that
:func:`save_figure` writes to PNG, SVG or PDF.
"""

from pipesl.plotting.gantt import gantt_chart, resource_label
from pipesl.plotting.placement import node_positions, placement_map
from pipesl.plotting.style import new_figure, save_figure, time_scale

__all__ = [
    "gantt_chart",
    "new_figure",
    "node_positions",
    "placement_map",
    "resource_label",
    "save_figure",
    "time_scale",
]
