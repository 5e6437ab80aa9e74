"""Drift: measured against planned per pass and transfer, medians over a window, and the
problem calibrated from what was measured."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pipesl.adapt.drift import DriftMonitor, Estimates, Sample, calibrate
from pipesl.adapt.events import parse_network_events
from pipesl.cost import evaluate, plan_stages
from pipesl.problem import load_problem
from pipesl.sim import plan_steps
from pipesl.solvers import solve

SIZES = (8, 8, 8, 3)
"""Micro-batch sizes of one measured iteration (a remainder last, so n varies)."""

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module", params=["iot-dual", "iot-digits", "edge-campus"])
def case(request):
    problem = load_problem(request.param)
    return problem, solve(problem, "exact", objective="analytic").plan


@pytest.fixture(scope="module")
def dual():
    problem = load_problem("iot-dual")
    return problem, solve(problem, "exact", objective="analytic").plan


def _iteration(problem, plan, scale: Mapping[int, float] | None = None,
               sizes=SIZES) -> list[Sample]:
    """One iteration's samples: the planned durations on ``problem``, step p times
    ``scale[p]``."""
    scale = scale or {}
    return [Sample(p, kind, n, (step.forward if kind == "F" else step.backward)(n)
                   * scale.get(p, 1.0))
            for p, step in enumerate(plan_steps(problem, plan))
            for kind in ("F", "B") for n in sizes]


def _steps_of(problem, plan, kind: str) -> list[int]:
    return [p for p, st in enumerate(plan_stages(problem, plan)) if st.kind == kind]


def _hop_link(problem, plan, step: int):
    hop = plan_stages(problem, plan)[step].hop
    assert hop is not None
    link = problem.network.link_between(*hop)
    assert link is not None
    return link


def test_planned_durations_are_no_drift(case) -> None:
    problem, plan = case
    monitor = DriftMonitor(problem, plan, window=3)
    for it in range(3):
        assert monitor.drift() is None
        monitor.observe(it, _iteration(problem, plan))
    assert monitor.full and monitor.drift() is None
    ratios = monitor.ratios()
    assert set(ratios) == {(p, k) for p in range(len(plan_steps(problem, plan)))
                           for k in ("F", "B")}
    assert all(r == pytest.approx(1.0, rel=1e-12) for r in ratios.values())


def test_a_hop_four_times_slower_is_named(case) -> None:
    problem, plan = case
    stages = plan_stages(problem, plan)
    for hop in _steps_of(problem, plan, "hop"):
        monitor = DriftMonitor(problem, plan, window=2)
        monitor.observe(7, _iteration(problem, plan, {hop: 4.0}))
        monitor.observe(8, _iteration(problem, plan, {hop: 4.0}))
        drift = monitor.drift()
        assert drift is not None and drift.iteration == 8
        assert {name for name, _ in drift.items} == {f"{stages[hop].name} F",
                                                     f"{stages[hop].name} B"}
        assert all(ratio == pytest.approx(4.0, rel=1e-12) for _, ratio in drift.items)
        link = _hop_link(problem, plan, hop)
        assert drift.resources == (f"link:{link.source}-{link.target}",)
        assert "x4.00" in drift.describe()


def test_worst_item_first_and_node_resource(dual) -> None:
    problem, plan = dual
    hop, last = _steps_of(problem, plan, "hop")[0], _steps_of(problem, plan, "compute")[-1]
    monitor = DriftMonitor(problem, plan, window=1)
    monitor.observe(0, _iteration(problem, plan, {hop: 1.5, last: 0.1}))
    drift = monitor.drift()
    assert drift is not None
    assert [ratio for _, ratio in drift.items] == pytest.approx([0.1, 0.1, 1.5, 1.5])
    assert drift.resources == (f"node:{plan.stages[-1].node}", "link:mcu-mesh1")


@pytest.mark.parametrize("event", [
    {"iteration": 0, "link": ["mesh1", "mcu"], "bandwidth_factor": 0.25},
    {"iteration": 0, "link": ["pi1", "pi2"], "bandwidth_factor": 0.01},  # full duplex
    {"iteration": 0, "node": "pi2", "flops_factor": 0.5},
    {"iteration": 0, "node": "mcu", "flops_factor": 0.25},
])
def test_estimates_recover_the_truth_and_calibration_replans_like_it(dual, event) -> None:
    problem, plan = dual
    script = parse_network_events([event]).validate(problem)
    truth = script.problem_at(problem, 0)
    monitor = DriftMonitor(problem, plan, window=3)
    for it in range(3):
        monitor.observe(it, _iteration(truth, plan))
    drift = monitor.drift()
    assert drift is not None
    estimates = monitor.estimates(drift.resources)
    if "link" in event:
        link = problem.network.link_between(*event["link"])
        assert drift.resources == (f"link:{link.source}-{link.target}",)
        assert estimates.flops == {}
        assert list(estimates.bandwidth_bps) == [(link.source, link.target)]
        assert estimates.bandwidth_bps[(link.source, link.target)] == pytest.approx(
            link.bandwidth * event["bandwidth_factor"], rel=1e-9)
    else:
        node = problem.network.node(event["node"])
        assert drift.resources == (f"node:{node.id}",)
        assert estimates.bandwidth_bps == {}
        assert estimates.flops == {node.id: pytest.approx(node.flops * event["flops_factor"],
                                                          rel=1e-9)}
    calibrated = calibrate(problem, estimates)
    for got, want, old in zip(calibrated.network.links, truth.network.links,
                              problem.network.links, strict=True):
        assert got.bandwidth == pytest.approx(want.bandwidth, rel=1e-9)
        assert got.latency == old.latency  # the latency is kept
    for node, real in zip(calibrated.network.nodes, truth.network.nodes, strict=True):
        assert node.flops == pytest.approx(real.flops, rel=1e-9)
        assert node.overhead == real.overhead
    replanned = solve(calibrated, "exact", objective="analytic")
    best = solve(truth, "exact", objective="analytic")
    assert replanned.objective_s == pytest.approx(best.objective_s, rel=1e-9)
    assert evaluate(truth, replanned.plan).objective_s == pytest.approx(best.objective_s,
                                                                          rel=1e-9)


def test_estimates_of_every_resource_are_the_nominal_figures(case) -> None:
    problem, plan = case
    monitor = DriftMonitor(problem, plan, window=1)
    monitor.observe(0, _iteration(problem, plan))
    estimates = monitor.estimates()
    used = {f"link:{_hop_link(problem, plan, p).source}-{_hop_link(problem, plan, p).target}"
            for p in _steps_of(problem, plan, "hop")}
    assert len(estimates.bandwidth_bps) == len(used)
    for (u, v), bps in estimates.bandwidth_bps.items():
        link = problem.network.link_between(u, v)
        assert link is not None and (link.source, link.target) == (u, v)
        assert bps == pytest.approx(link.bandwidth, rel=1e-9)
    assert estimates.flops == {
        s.node: pytest.approx(problem.network.node(s.node).flops, rel=1e-9)
        for s in plan.stages}


def test_hyphenated_node_ids_are_estimated_and_calibrated(tmp_path) -> None:
    text = (EXAMPLES / "tiny-line.yaml").read_text()
    for old, new in (("id: r,", "id: r-1,"), ("target: r,", "target: r-1,"),
                     ("source: r,", "source: r-1,"), ("id: srv,", "id: srv-a,"),
                     ("target: srv,", "target: srv-a,")):
        text = text.replace(old, new)
    (tmp_path / "p.yaml").write_text(text)
    problem = load_problem(str(tmp_path / "p.yaml"))
    plan = solve(problem, "exact", objective="analytic").plan
    truth = parse_network_events([{"iteration": 0, "link": ["r-1", "srv-a"],
                                   "bandwidth_factor": 0.5}]).problem_at(problem, 0)
    monitor = DriftMonitor(problem, plan, window=1)
    monitor.observe(0, _iteration(truth, plan))
    drift = monitor.drift()
    assert drift is not None and drift.resources == ("link:r-1-srv-a",)
    estimates = monitor.estimates(drift.resources)
    assert estimates.bandwidth_bps == {("r-1", "srv-a"): pytest.approx(4e7, rel=1e-9)}
    link = calibrate(problem, estimates).network.link_between("r-1", "srv-a")
    assert link is not None and link.bandwidth == pytest.approx(4e7, rel=1e-9)


def test_a_transfer_within_its_latency_says_nothing_about_the_rate(dual) -> None:
    problem, plan = dual
    hop = _steps_of(problem, plan, "hop")[0]
    latency = _hop_link(problem, plan, hop).latency
    monitor = DriftMonitor(problem, plan, window=1)
    monitor.observe(0, [Sample(hop, "F", 8, latency), Sample(hop, "B", 8, latency / 2),
                        Sample(99, "F", 8, 1.0)])  # an unknown step is ignored
    assert monitor.estimates() == Estimates()
    assert monitor.ratios().keys() == {(hop, "F"), (hop, "B")}


def test_drift_only_once_the_window_is_full(dual) -> None:
    problem, plan = dual
    hop = _steps_of(problem, plan, "hop")[0]
    monitor = DriftMonitor(problem, plan, window=3)
    for it in range(2):
        monitor.observe(it, _iteration(problem, plan, {hop: 4.0}))
        assert not monitor.full and monitor.drift() is None
        assert monitor.ratios()[(hop, "F")] == pytest.approx(4.0)  # measured all the same
    monitor.observe(2, _iteration(problem, plan, {hop: 4.0}))
    drift = monitor.drift()
    assert monitor.full and drift is not None and drift.iteration == 2


def test_an_old_slow_iteration_falls_out_of_the_window(dual) -> None:
    problem, plan = dual
    hop = _steps_of(problem, plan, "hop")[0]
    monitor = DriftMonitor(problem, plan, window=2)
    monitor.observe(0, _iteration(problem, plan, {hop: 4.0}))
    monitor.observe(1, _iteration(problem, plan))
    drift = monitor.drift()  # half the samples at x4, half at x1: median 2.5
    assert drift is not None and dict(drift.items)[
        f"{plan_stages(problem, plan)[hop].name} F"] == pytest.approx(2.5)
    monitor.observe(2, _iteration(problem, plan))
    assert monitor.drift() is None
    assert monitor.ratios()[(hop, "F")] == pytest.approx(1.0)


def test_a_single_outlier_iteration_is_ignored_by_the_median(dual) -> None:
    problem, plan = dual
    hop = _steps_of(problem, plan, "hop")[0]
    monitor = DriftMonitor(problem, plan, window=3)
    for it, factor in enumerate((1.0, 4.0, 1.0)):
        monitor.observe(it, _iteration(problem, plan, {hop: factor}))
    assert monitor.drift() is None
    monitor.observe(3, _iteration(problem, plan, {hop: 4.0}))  # now two of three are slow
    drift = monitor.drift()
    assert drift is not None and drift.resources == ("link:mcu-mesh1",)


def test_threshold(dual) -> None:
    problem, plan = dual
    hop = _steps_of(problem, plan, "hop")[0]
    for factor, drifts in ((1.2, False), (0.8, False), (1.3, True), (0.7, True)):
        monitor = DriftMonitor(problem, plan, threshold=0.25, window=1)
        monitor.observe(0, _iteration(problem, plan, {hop: factor}))
        assert (monitor.drift() is not None) == drifts, factor
    with pytest.raises(ValueError, match="window"):
        DriftMonitor(problem, plan, window=0)


def test_time_scale_divides_the_measurements(dual) -> None:
    problem, plan = dual
    monitor = DriftMonitor(problem, plan, window=1, time_scale=10.0)
    monitor.observe(0, [s._replace(seconds=s.seconds * 10.0)
                        for s in _iteration(problem, plan)])
    assert monitor.drift() is None
    assert all(r == pytest.approx(1.0, rel=1e-12) for r in monitor.ratios().values())
    assert monitor.estimates().bandwidth_bps[("mcu", "mesh1")] == pytest.approx(16e6,
                                                                              rel=1e-9)
    monitor.observe(1, _iteration(problem, plan))  # unscaled: ten times too fast
    drift = monitor.drift()
    assert drift is not None
    assert len(drift.items) == 2 * len(plan_steps(problem, plan))
    assert all(ratio == pytest.approx(0.1) for _, ratio in drift.items)
