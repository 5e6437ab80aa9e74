"""The placement map of several data owners: every owner's hops in its own colour, every
owner's node marked, a legend entry per owner."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from matplotlib.colors import to_hex

from owners_cases import random_owners_problem
from pipesl.plotting import placement_map, save_figure
from pipesl.solvers.owners import solve_owners


def test_every_owner_route_in_its_own_colour(tmp_path: Path) -> None:
    problem = random_owners_problem(3, owners=3, layers=3, batch=2)
    result = solve_owners(problem, "joint")
    fig = placement_map(problem, result.plan)
    ax = fig.axes[0]
    gids = {a.get_gid(): a for a in [*ax.collections, *ax.patches] if a.get_gid()}
    colours = {}
    for o, plan in enumerate(result.plan.plans):
        assert f"node:{problem.owners[o].node}:owner{o}" in gids
        for route in plan.all_routes():
            for u, v in pairwise(route):
                hop = [g for g in gids if g.startswith(f"hop:{u}>{v}:") and
                       g.endswith(f":owner{o}")]
                assert len(hop) == 1, (o, u, v)
                colours.setdefault(o, set()).add(to_hex(gids[hop[0]].get_edgecolor()))
    assert len(colours) >= 2  # at least two owners send over the network here
    for cs in colours.values():
        assert len(cs) == 1  # one colour per owner
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)  # distinct
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for o, owner in enumerate(problem.owners):
        assert any(t.startswith(f"O{o + 1} {owner.label}:") for t in labels)
    path = save_figure(fig, tmp_path / "owners.png")
    assert path.stat().st_size > 1000
