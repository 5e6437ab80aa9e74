"""The Gantt chart and the placement map: files written, one bar per task, labels present."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import FancyArrowPatch, Rectangle

from pipesl.plan import Plan, Stage
from pipesl.plotting import (
    gantt_chart,
    node_positions,
    placement_map,
    resource_label,
    save_figure,
    time_scale,
)
from pipesl.problem import Problem, load_problem
from pipesl.sim import simulate
from strategies import random_plan, random_problem


def instance(seed: int, **kwargs: object) -> tuple[Problem, Plan]:
    problem = random_problem(random.Random(seed), n_nodes=7, n_layers=6, memory="unbounded",
                             batch_size=16, **kwargs)  # type: ignore[arg-type]
    return problem, random_plan(random.Random(seed), problem, micro_batch_size=4)


def task_bars(fig) -> list[Rectangle]:  # type: ignore[no-untyped-def]
    ax = fig.axes[0]
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() == 0.72]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_gantt_has_one_bar_per_task(tmp_path: Path, seed: int, schedule: str) -> None:
    problem, plan = instance(seed)
    result = simulate(problem, plan, schedule)
    fig = gantt_chart(result)
    bars = task_bars(fig)
    assert len(bars) == len(result.trace)
    ax = fig.axes[0]
    assert ax.get_yticklabels()[0].get_text().startswith("dev0")
    assert len(ax.get_yticklabels()) == len(result.trace.resources)
    assert ax.get_xlabel() in ("time (ms)", "time (s)", "time (µs)")
    numbers = {t.get_text() for t in ax.texts}
    assert numbers <= {str(m) for m in range(result.num_micro_batches)}
    path = save_figure(fig, tmp_path / "gantt.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000


def test_gantt_colours_and_labels_on_a_known_case() -> None:
    problem = load_problem("edge-campus")
    from pipesl.plan import Stage

    plan = Plan((Stage("dev0", 1, 2), Stage("orin", 3, 7), Stage("rtx3090", 8, 16)),
                (("dev0", "ap1", "sw_lab", "orin"),
                 ("orin", "sw_lab", "core", "sw_dc", "rtx3090")), 16)
    result = simulate(problem, plan, "1f1b")
    fig = gantt_chart(result)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[:3] == ["dev0  S1 L1–2", "dev0 ↔ ap1", "ap1 → sw_lab"]
    assert "orin  S2 L3–7" in labels and labels[-1] == "rtx3090  S3 L8–16"
    colours = {tuple(round(c, 3) for c in b.get_facecolor()) for b in task_bars(fig)}
    assert len(colours) == 2  # forward and backward
    assert ax.get_xlabel() == "time (ms)"
    # Every micro-batch number appears on some bar.
    assert {t.get_text() for t in ax.texts} == {str(m) for m in range(8)}


def test_gantt_large_trace_uses_collections() -> None:
    problem, plan = instance(1)
    plan = plan.with_micro_batch_size(1)
    big = problem.with_training(batch_size=6000)
    result = simulate(big, plan, "1f1b")
    assert len(result.trace) > 20_000
    fig = gantt_chart(result.trace)
    ax = fig.axes[0]
    paths = sum(len(c.get_paths()) for c in ax.collections if isinstance(c, PolyCollection))
    assert paths == len(result.trace)


@pytest.mark.parametrize("seed", range(6))
def test_placement_map(tmp_path: Path, seed: int) -> None:
    problem, plan = instance(seed, labels="any")
    fig = placement_map(problem, plan)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == sum(len(r) - 1 for r in plan.all_routes())
    texts = " ".join(t.get_text() for t in ax.texts)
    for k, s in enumerate(plan.stages):
        assert f"S{k + 1}" in texts and s.node in texts
    assert "(source)" in texts
    path = save_figure(fig, tmp_path / "map.png")
    assert path.stat().st_size > 20_000


def test_positions_from_problem_or_layout() -> None:
    campus = load_problem("edge-campus")
    pos = node_positions(campus)
    assert pos["dev0"] == (0.0, 0.0) and pos["sw_lab"] == (3.0, 0.0)
    problem, _ = instance(0)
    layout = node_positions(problem)
    assert set(layout) == {n.id for n in problem.network.nodes}


def test_resource_labels_and_time_scale() -> None:
    assert resource_label("node:es2", ["es2[3-5]"], 1) == "es2  S2 L3–5"
    assert resource_label("node:es2", ["es2[3-3]"], 0) == "es2  S1 L3"
    assert resource_label("link:a-b", []) == "a ↔ b"
    assert resource_label("link:a>b", []) == "a → b"
    assert time_scale(0.5) == (1e3, "ms")
    assert time_scale(5.0) == (1.0, "s")
    assert time_scale(1e-4) == (1e6, "µs")
    assert time_scale(5.0, "ms") == (1e3, "ms")
    with pytest.raises(ValueError, match="time unit"):
        time_scale(1.0, "h")


# ---------------------------------------------------------------- issue 16, item 10


def _relaying_compute_node() -> tuple[Problem, Plan]:
    from pipesl.problem import ChainModel, Layer, Link, Network, Node, TrainingSpec

    nodes = (Node("src", 1e12, pos=(0, 0)), Node("mid", 1e9, pos=(1, 0)),
             Node("srv", 1e13, pos=(2, 0)), Node("spare", 1e12, pos=(1, 1)))
    links = (Link("src", "mid", 1e9, duplex="half"), Link("mid", "srv", 1e9, duplex="full"),
             Link("mid", "spare", 1e9))
    model = ChainModel("m", 100, tuple(Layer(f"l{i}", 1e9, 2e9, 1000) for i in range(2)))
    problem = Problem(Network(nodes, links), model, TrainingSpec("src", 8))
    plan = Plan((Stage("src", 1, 1), Stage("srv", 2, 2)), (("src", "mid", "srv"),), 2)
    return problem, plan


def _gids(fig) -> dict[str, object]:  # type: ignore[no-untyped-def]
    ax = fig.axes[0]
    return {a.get_gid(): a for a in [*ax.collections, *ax.patches] if a.get_gid()}


def test_a_compute_node_that_only_relays_is_drawn_as_a_relay() -> None:
    problem, plan = _relaying_compute_node()
    gids = _gids(placement_map(problem, plan))
    assert "node:mid:relay" in gids and "node:mid:idle" not in gids
    assert "node:spare:idle" in gids  # a compute node off every route is idle
    assert {"node:src:stage", "node:srv:stage"} <= set(gids)


def test_route_arrows_show_their_links_duplex() -> None:
    problem, plan = _relaying_compute_node()
    gids = _gids(placement_map(problem, plan))
    half, full = gids["hop:src>mid:half"], gids["hop:mid>srv:full"]
    assert isinstance(half, FancyArrowPatch) and isinstance(full, FancyArrowPatch)
    assert half.get_linestyle() in ("--", "dashed")
    assert full.get_linestyle() in ("-", "solid")


def test_gantt_numbers_every_micro_batch_at_m_32() -> None:
    from pipesl.solvers import solve

    problem = load_problem("edge-campus")
    result = simulate(problem, solve(problem, micro_batch_size=4, objective="analytic").plan)
    assert result.num_micro_batches == 32
    labels = {t.get_text() for t in gantt_chart(result).axes[0].texts}
    assert {str(m) for m in range(32)} <= labels


def test_gantt_colours_each_owner() -> None:
    from pipesl.plan import load_plan
    from pipesl.sim import simulate_owners

    problem = load_problem("campus-owners")
    plan = load_plan(Path(__file__).parents[2] / "examples" / "campus-owners.plan.json", problem)
    result = simulate_owners(problem, plan)  # type: ignore[arg-type]
    fig = gantt_chart(result.trace, title="owners")
    bars = [p for p in fig.axes[0].patches
            if isinstance(p, Rectangle) and abs(p.get_height() - 0.72) < 1e-9]
    assert len(bars) == len(result.trace)
    colour_of: dict[tuple[int, int], set[tuple[float, ...]]] = {}
    for bar, owner, kind in zip(bars, result.trace.owners().tolist(),
                                result.trace.kind.tolist(), strict=True):
        colour_of.setdefault((owner, kind), set()).add(
            tuple(round(c, 3) for c in bar.get_facecolor()))
    # One colour per owner and pass, six different colours for three owners.
    assert all(len(c) == 1 for c in colour_of.values())
    assert len({next(iter(c)) for c in colour_of.values()}) == 6
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["cam0", "cam1", "cam2"]


def test_gantt_labels_node_ids_holding_dash_and_arrow() -> None:
    """Row labels come from the typed resources, not from parsing their names back."""
    import json

    from pipesl.problem import problem_from_dict, problem_to_dict

    text = json.dumps(problem_to_dict(load_problem("relay-line")))
    renames = {"dev0": "ap-1", "r1": "a>b", "r2": "r-2", "r3": "x-y>z", "a4000": "gpu>1"}
    for old, new in renames.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    problem = problem_from_dict(json.loads(text))
    layers = problem.model.num_layers
    plan = Plan((Stage("ap-1", 1, 2), Stage("gpu>1", 3, layers)),
                (("ap-1", "a>b", "r-2", "x-y>z", "r4", "gpu>1"),), 8)
    result = simulate(problem, plan, "1f1b")
    labels = [t.get_text() for t in gantt_chart(result).axes[0].get_yticklabels()]
    assert labels == ["ap-1  S1 L1–2", "ap-1 ↔ a>b", "a>b ↔ r-2", "r-2 ↔ x-y>z",
                      "x-y>z ↔ r4", "r4 → gpu>1", "gpu>1 → r4",
                      f"gpu>1  S2 L3–{layers}"]
    assert [r.name for r in result.trace.typed_resources] == list(result.trace.resources)
