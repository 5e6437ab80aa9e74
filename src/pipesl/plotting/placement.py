"""Placement map: the network with the plan drawn on it.

Compute stages are large discs coloured by stage and labelled with their layer ranges; the
routes between consecutive stages are arrows in the sending stage's colour; relays are grey
squares (darker when a route crosses them); a compute node that holds no stage but forwards a
route is drawn as a relay on the route (a dark disc), an idle one as a hollow disc; the source
wears a black ring, the label node (U-shaped split learning) a dashed one. Half-duplex links
(one medium shared by both directions) are dashed, full-duplex links solid, and a route's
arrow keeps its link's style, so the duplex of a used hop stays visible. Node ``pos`` from
the problem is used when every node has one, else a Kamada-Kawai layout.

Each node's marker and each hop's arrow carries a ``gid`` (``node:<id>:<role>``,
``hop:<u>><v>:<duplex>``) so that tests and tools can find them.

With several data owners (an :class:`~pipesl.plan.OwnersPlan`) every owner has its own colour:
its node is a disc of that colour with a black ring, its routes (and label route) are arrows
of that colour (hops used by several owners bend apart), and a node computing stages of
several owners is drawn as concentric rings of their colours and labelled with every owner's
layers;
the legend names each owner, its node and its stages. Arrows carry
``hop:<u>><v>:<duplex>:owner<o>``, owner discs ``node:<id>:owner<o>``, server discs
``node:<id>:stage``.
"""

from __future__ import annotations

from itertools import pairwise

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from pipesl.plan import OwnersPlan, Plan, Stage
from pipesl.plotting.style import STAGE_COLORS, new_figure
from pipesl.problem.types import Problem

__all__ = ["node_positions", "placement_map"]

RELAY_ON_ROUTE = "#555555"
"""Fill of a node that forwards a route without computing (relay, or unused compute node)."""


def node_positions(problem: Problem) -> dict[str, tuple[float, float]]:
    """Drawing positions: the problem's ``pos`` when every node has one, else a layout."""
    nodes = problem.network.nodes
    if all(n.pos is not None for n in nodes):
        return {n.id: (float(n.pos[0]), float(n.pos[1])) for n in nodes}  # type: ignore[index]
    g = problem.network.graph
    if len(g) == 1:
        return {n.id: (0.0, 0.0) for n in nodes}
    layout = nx.kamada_kawai_layout(g)
    return {n: (float(x), float(y)) for n, (x, y) in layout.items()}


def _canvas(pos: dict[str, tuple[float, float]], ax: Axes | None) -> tuple[
        Figure, Axes, tuple[list[float], list[float], float, float]]:
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    span_x = max(max(xs) - min(xs), 1e-9)
    span_y = max(max(ys) - min(ys), 1e-9)
    if ax is None:
        width = 11.0
        height = min(max(width * span_y / span_x + 1.8, 4.5), 9.0)
        fig = new_figure(width, height)
        ax = fig.subplots()
    else:
        fig = ax.figure  # type: ignore[assignment]
    return fig, ax, (xs, ys, span_x, span_y)


def _layers(first: int, last: int) -> str:
    return f"L{first}" if first == last else f"L{first}–{last}"


def placement_map(problem: Problem, plan: Plan | OwnersPlan, *, title: str | None = None,
                  ax: Axes | None = None) -> Figure:
    """Draw ``plan`` on ``problem``'s network.

    Parameters
    ----------
    problem : Problem
    plan : Plan or OwnersPlan
        Assumed valid (see :func:`pipesl.plan.validate_plan`); an OwnersPlan of several
        owners draws every owner's route in its own colour.
    title : str, optional
        Default: the problem's name, K and b.
    ax : matplotlib Axes, optional
        Draw into it instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(plan, OwnersPlan):
        if len(plan.plans) > 1:
            return _owners_map(problem, plan, title, ax)
        plan = plan.plans[0]
    pos = node_positions(problem)
    fig, ax, (xs, ys, span_x, span_y) = _canvas(pos, ax)
    net, tr = problem.network, problem.training
    stage_of = {s.node: k for k, s in enumerate(plan.stages)}
    on_route = {n for r in plan.all_routes() for n in r[1:-1]}

    # Links: grey, dashed when half duplex.
    for link in net.links:
        (x0, y0), (x1, y1) = pos[link.source], pos[link.target]
        ax.plot([x0, x1], [y0, y1], color="#b8b8b8", linewidth=1.3, zorder=1,
                linestyle=(0, (4, 3)) if link.duplex == "half" else "-")

    # Routes: arrows hop by hop in the sending stage's colour; repeated hops bend apart.
    used: dict[frozenset[str], int] = {}
    routes = [(k, r) for k, r in enumerate(plan.routes)]
    if plan.label_route is not None and len(plan.label_route) > 1:
        routes.append((len(plan.stages) - 1, plan.label_route))
    for k, route in routes:
        color = STAGE_COLORS[k % len(STAGE_COLORS)]
        for u, v in pairwise(route):
            seen = used.get(frozenset((u, v)), 0)
            used[frozenset((u, v))] = seen + 1
            rad = 0.0 if seen == 0 else 0.18 * (1 if seen % 2 else -1) * ((seen + 1) // 2)
            hop = net.link_between(u, v)
            duplex = hop.duplex if hop is not None else "half"
            ax.add_patch(FancyArrowPatch(pos[u], pos[v], arrowstyle="-|>", mutation_scale=16,
                                         color=color, linewidth=2.6, zorder=2,
                                         linestyle="--" if duplex == "half" else "-",
                                         connectionstyle=f"arc3,rad={rad}",
                                         shrinkA=13, shrinkB=13, gid=f"hop:{u}>{v}:{duplex}"))

    # Nodes.
    for n in net.nodes:
        x, y = pos[n.id]
        if n.id in stage_of:
            k = stage_of[n.id]
            s = plan.stages[k]
            ax.scatter([x], [y], s=520, color=STAGE_COLORS[k % len(STAGE_COLORS)],
                       edgecolors="black" if n.id == tr.source else "white",
                       linewidths=3.0 if n.id == tr.source else 1.5, zorder=4,
                       gid=f"node:{n.id}:stage")
            ax.text(x, y, f"S{k + 1}", ha="center", va="center", color="white",
                    fontsize=9, fontweight="bold", zorder=5)
            label = f"{n.id}\n{_layers(s.first_layer, s.last_layer)}"
        elif n.can_compute and n.id in on_route:  # computes nothing here, forwards a route
            ax.scatter([x], [y], s=260, color=RELAY_ON_ROUTE, edgecolors="#333333",
                       linewidths=1.4, zorder=4, gid=f"node:{n.id}:relay")
            label = f"{n.id}\n(relays)"
        elif n.can_compute:
            ax.scatter([x], [y], s=260, color="white", edgecolors="#888888", linewidths=1.4,
                       zorder=4, gid=f"node:{n.id}:idle")
            label = n.id
        else:
            ax.scatter([x], [y], s=150, marker="s", zorder=4,
                       color=RELAY_ON_ROUTE if n.id in on_route else "#d0d0d0",
                       edgecolors="#333333" if n.id in on_route else "#999999",
                       gid=f"node:{n.id}:{'relay' if n.id in on_route else 'unused'}")
            label = n.id
        if n.id == tr.labels_at and n.id != plan.stages[-1].node:
            ax.scatter([x], [y], s=900, facecolors="none", edgecolors="black",
                       linestyle="--", linewidths=1.2, zorder=3)
            label += "\n(labels)"
        if n.id == tr.source:
            label += "\n(source)"
        ax.annotate(label, (x, y), xytext=(0, -17), textcoords="offset points", ha="center",
                    va="top", fontsize=8.5, zorder=6,
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 0.6},
                    fontweight="bold" if n.id in stage_of else "normal",
                    color="#222222" if n.id in stage_of or n.id in on_route else "#777777")

    handles = [Line2D([], [], marker="o", linestyle="", markersize=10,
                      color=STAGE_COLORS[k % len(STAGE_COLORS)],
                      label=f"S{k + 1} {s.node}: {_layers(s.first_layer, s.last_layer)}")
               for k, s in enumerate(plan.stages)]
    handles += [
        Line2D([], [], marker="o", linestyle="", markersize=10, color="white",
               markeredgecolor="black", markeredgewidth=2.5, label=f"source ({tr.source})"),
        Line2D([], [], marker="s", linestyle="", markersize=8, color=RELAY_ON_ROUTE,
               label="relay on a route"),
        Line2D([], [], marker="s", linestyle="", markersize=8, color="#d0d0d0",
               markeredgecolor="#999999", label="other relay"),
        Line2D([], [], marker="o", linestyle="", markersize=9, color="white",
               markeredgecolor="#888888", label="idle compute node"),
        Line2D([], [], color="#b8b8b8", linestyle=(0, (4, 3)),
               label="half-duplex link (route: dashed arrow)"),
        Line2D([], [], color="#b8b8b8", label="full-duplex link (route: solid arrow)"),
    ]
    if any(n.can_compute and n.id in on_route and n.id not in stage_of for n in net.nodes):
        handles.insert(len(plan.stages) + 2, Line2D(
            [], [], marker="o", linestyle="", markersize=9, color=RELAY_ON_ROUTE,
            markeredgecolor="#333333", label="compute node, relays only"))
    if tr.labels_at is not None and tr.labels_at != plan.stages[-1].node:
        handles.insert(len(plan.stages) + 1, Line2D(
            [], [], marker="o", linestyle="", markersize=12, color="white",
            markeredgecolor="black", label=f"labels at {tr.labels_at} (dashed ring)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8.5, title="stages and routes", title_fontsize=9, alignment="left")
    pad_x, pad_y = 0.08 * span_x, 0.12 * span_y
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y - 0.1 * span_y, max(ys) + pad_y)
    ax.set_axis_off()
    if title is None:
        name = problem.name or "plan"
        title = (f"{name}: {plan.num_stages} stage{'s' if plan.num_stages > 1 else ''}, "
                 f"b = {plan.micro_batch_size} of B = {tr.batch_size}")
    ax.set_title(title, fontsize=11, loc="left")
    return fig


def _owners_map(problem: Problem, plan: OwnersPlan, title: str | None,
                ax: Axes | None) -> Figure:
    """:func:`placement_map` for several data owners (module docstring)."""
    pos = node_positions(problem)
    fig, ax, (xs, ys, span_x, span_y) = _canvas(pos, ax)
    net = problem.network
    owners = problem.owners
    color = [STAGE_COLORS[o % len(STAGE_COLORS)] for o in range(len(owners))]
    owner_at = {o.node: i for i, o in enumerate(owners)}
    hosted: dict[str, list[tuple[int, int, Stage]]] = {}
    for o, p in enumerate(plan.plans):
        for k, s in enumerate(p.stages):
            hosted.setdefault(s.node, []).append((o, k, s))
    on_route = {n for p in plan.plans for r in p.all_routes() for n in r[1:-1]}

    for link in net.links:
        (x0, y0), (x1, y1) = pos[link.source], pos[link.target]
        ax.plot([x0, x1], [y0, y1], color="#b8b8b8", linewidth=1.3, zorder=1,
                linestyle=(0, (4, 3)) if link.duplex == "half" else "-")
    used: dict[frozenset[str], int] = {}
    for o, p in enumerate(plan.plans):
        for route in p.all_routes():
            for u, v in pairwise(route):
                seen = used.get(frozenset((u, v)), 0)
                used[frozenset((u, v))] = seen + 1
                rad = 0.0 if seen == 0 else 0.16 * (1 if seen % 2 else -1) * ((seen + 1) // 2)
                hop = net.link_between(u, v)
                duplex = hop.duplex if hop is not None else "half"
                ax.add_patch(FancyArrowPatch(
                    pos[u], pos[v], arrowstyle="-|>", mutation_scale=15, color=color[o],
                    linewidth=2.4, zorder=2, linestyle="--" if duplex == "half" else "-",
                    connectionstyle=f"arc3,rad={rad}", shrinkA=13, shrinkB=13,
                    gid=f"hop:{u}>{v}:{duplex}:owner{o}"))
    for n in net.nodes:
        x, y = pos[n.id]
        stages = hosted.get(n.id, [])
        if n.id in owner_at:
            o = owner_at[n.id]
            ax.scatter([x], [y], s=520, color=color[o], edgecolors="black", linewidths=3.0,
                       zorder=4, gid=f"node:{n.id}:owner{o}")
            first = plan.plans[o].stages[0]
            ax.text(x, y, f"O{o + 1}", ha="center", va="center", color="white", fontsize=9,
                    fontweight="bold", zorder=5)
            label = f"{n.id}\n{owners[o].label}: {_layers(first.first_layer, first.last_layer)}"
        elif stages:
            # concentric rings, one per owner computing here (outermost: the first)
            for i, (o, _, _) in enumerate(stages):
                size = 620.0 * 0.5**i
                ax.scatter([x], [y], s=size, color=color[o], edgecolors="white",
                           linewidths=1.5, zorder=4 + 0.01 * i,
                           gid=f"node:{n.id}:stage" if i == 0 else None)
            label = n.id + "".join(f"\nO{o + 1}: {_layers(s.first_layer, s.last_layer)}"
                                   for o, _, s in stages)
        elif n.can_compute:
            ax.scatter([x], [y], s=260, color=RELAY_ON_ROUTE if n.id in on_route else "white",
                       edgecolors="#888888", linewidths=1.4, zorder=4,
                       gid=f"node:{n.id}:{'relay' if n.id in on_route else 'idle'}")
            label = n.id
        else:
            ax.scatter([x], [y], s=150, marker="s", zorder=4,
                       color=RELAY_ON_ROUTE if n.id in on_route else "#d0d0d0",
                       edgecolors="#333333" if n.id in on_route else "#999999",
                       gid=f"node:{n.id}:{'relay' if n.id in on_route else 'unused'}")
            label = n.id
        ax.annotate(label, (x, y), xytext=(0, -17), textcoords="offset points", ha="center",
                    va="top", fontsize=8, zorder=6,
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 0.6},
                    fontweight="bold" if stages else "normal",
                    color="#222222" if stages or n.id in on_route else "#777777")
    handles = []
    for o, (owner, p) in enumerate(zip(owners, plan.plans, strict=True)):
        where = ", ".join(f"{s.node} {_layers(s.first_layer, s.last_layer)}" for s in p.stages)
        handles.append(Line2D([], [], color=color[o], linewidth=2.6, marker="o",
                              markersize=8, label=f"O{o + 1} {owner.label}: {where}, "
                              f"b = {p.micro_batch_size}"))
    handles += [
        Line2D([], [], marker="s", linestyle="", markersize=8, color=RELAY_ON_ROUTE,
               label="relay on a route"),
        Line2D([], [], marker="s", linestyle="", markersize=8, color="#d0d0d0",
               markeredgecolor="#999999", label="other relay"),
        Line2D([], [], color="#b8b8b8", linestyle=(0, (4, 3)),
               label="half-duplex link (route: dashed arrow)"),
        Line2D([], [], color="#b8b8b8", label="full-duplex link (route: solid arrow)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, title="data owners: stages and routes", title_fontsize=9,
              alignment="left")
    pad_x, pad_y = 0.08 * span_x, 0.12 * span_y
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y - 0.1 * span_y, max(ys) + pad_y)
    ax.set_axis_off()
    if title is None:
        tr = problem.training
        title = (f"{problem.name or 'plan'}: {len(owners)} data owners ({tr.owners_mode}, "
                 f"replicas {tr.replicas})")
    ax.set_title(title, fontsize=11, loc="left")
    return fig
