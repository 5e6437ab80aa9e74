"""Link estimates from timed transfers, and the probed problem (no torch)."""

from __future__ import annotations

import pytest

from pipesl.exceptions import ProblemError
from pipesl.plan import Plan, Stage
from pipesl.probe import (
    DEFAULT_SIZES,
    LinkEstimate,
    fit_direction,
    message_sizes,
    probe_nodes,
    probed_problem,
)
from pipesl.problem import compose_problem
from pipesl.problem.io import load_model, network_from_dict

NET = {"nodes": [
    {"id": "src", "kind": "device", "flops": 2e8, "memory": 1e9, "overhead": 0.002},
    {"id": "r", "kind": "relay", "compute": False},
    {"id": "a", "kind": "server", "flops": 4e8, "memory": 1e9, "overhead": 0.002}],
    "links": [
    {"source": "src", "target": "r", "bandwidth": 2e7, "latency": 0.002, "duplex": "half"},
    {"source": "r", "target": "a", "bandwidth": 5e7, "latency": 0.001, "duplex": "full"}]}


def _problem():  # type: ignore[no-untyped-def]
    return compose_problem(network_from_dict(NET), load_model("cnn-digits"),
                           {"source": "src", "batch_size": 16}, name="three")


def test_an_exact_line_gives_its_bandwidth_and_latency() -> None:
    # t = 8 s / 10 Mb/s + 1 ms at 1000, 3000 and 5000 bytes, three repetitions each
    sizes = [1000, 3000, 5000]
    seconds = [[8 * s / 1e7 + 1e-3] * 3 for s in sizes]
    est = fit_direction("a", "b", sizes, seconds)
    assert est.bandwidth_bps == pytest.approx(1e7)
    assert est.latency_s == pytest.approx(1e-3)
    assert est.spread == pytest.approx(0.0, abs=1e-9)
    assert est.predict(2000) == pytest.approx(8 * 2000 / 1e7 + 1e-3)


def test_the_spread_is_that_of_the_per_repetition_fits() -> None:
    # repetition 0 at 10 Mb/s, repetition 1 at 8 Mb/s (both with 1 ms): medians in between
    sizes = [1000, 5000]
    seconds = [[8 * s / 1e7 + 1e-3, 8 * s / 8e6 + 1e-3] for s in sizes]
    est = fit_direction("a", "b", sizes, seconds)
    assert est.bandwidth_range == pytest.approx((8e6, 1e7))
    median_slope = (1 / 1e7 + 1 / 8e6) / 2  # seconds per bit
    assert est.bandwidth_bps == pytest.approx(1 / median_slope)
    assert est.spread == pytest.approx((1e7 - 8e6) * median_slope)


def test_times_that_do_not_grow_are_refused() -> None:
    with pytest.raises(ProblemError, match="do not grow"):
        fit_direction("a", "b", [1000, 2000], [[2e-3], [1e-3]])
    with pytest.raises(ProblemError, match="two different"):
        fit_direction("a", "b", [1000, 1000], [[1e-3], [2e-3]])


def test_the_probed_problem_keeps_names_and_unmeasured_values() -> None:
    problem = _problem()
    fwd = fit_direction("src", "r", [1000, 3000], [[8e-4 + 5e-4], [2.4e-3 + 5e-4]])
    bwd = fit_direction("r", "src", [1000, 3000], [[8e-4 / 2 + 7e-4], [2.4e-3 / 2 + 7e-4]])
    est = LinkEstimate("src", "r", fwd, bwd)
    assert est.bandwidth_bps == pytest.approx(1e7)  # the slower direction
    assert est.latency_s == pytest.approx(7e-4)  # the larger intercept
    probed = probed_problem(problem, [est], {"a": (1e9, 0.004)}, duplex="full")
    assert [n.id for n in probed.network.nodes] == ["src", "r", "a"]
    link = probed.network.links[0]
    assert (link.source, link.target, link.duplex) == ("src", "r", "full")
    assert link.bandwidth == pytest.approx(1e7) and link.latency == pytest.approx(7e-4)
    assert probed.network.links[1] == problem.network.links[1]
    assert probed.network.node("a").flops == 1e9 and probed.network.node("a").overhead == 0.004
    assert probed.network.node("src") == problem.network.node("src")
    assert LinkEstimate.from_dict(est.to_dict()) == est


def test_message_sizes_bracket_the_plans_activations() -> None:
    problem = _problem()
    plan = Plan((Stage("src", 1, 2), Stage("a", 3, 5)), (("src", "r", "a"),), 4)
    sizes = message_sizes(problem, plan, [("src", "r"), ("r", "a")])
    act = problem.model.layers[1].out_bytes * 4
    expected = tuple(sorted({int(act * f) // 4 * 4 for f in (0.25, 0.5, 1, 2)}))
    assert sizes[frozenset(("src", "r"))] == expected
    assert sizes[frozenset(("r", "a"))] == expected
    assert message_sizes(problem, None, [("src", "r")])[frozenset(("src", "r"))] == DEFAULT_SIZES
    assert probe_nodes(problem, plan, None) == ("src", "a", "r")
    assert probe_nodes(problem, plan, ["a", "src"]) == ("a", "src")
    with pytest.raises(ProblemError, match="nodes"):
        probe_nodes(problem, None, ["nope"])
    with pytest.raises(ProblemError, match="sizes"):
        message_sizes(problem, None, [("src", "r")], [100])
