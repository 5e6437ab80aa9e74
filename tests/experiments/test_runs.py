"""Every kind of experiment on tiny configs: the checks hold row by row, outputs are written.

The invariants are asserted on the rows themselves (not only on the experiment's own
counters): on every instance the exact planner's T is <= every other planner's, the MILP at
the exact planner's b gives the same T, a re-optimised plan is never worse than a stale one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from pipesl.experiments.config import (
    InstanceConfig,
    MicroBatchConfig,
    RobustnessConfig,
    SweepConfig,
    TimingConfig,
)
from pipesl.experiments.runner import add_ratios, markdown_table, summarise, write_csv
from pipesl.experiments.suite import (
    experiment_markdown,
    headline_table,
    run_experiment,
    units_of_work,
    write_outputs,
)

SMALL = InstanceConfig(n_nodes=7, batch_size=16)


def _counting(cfg):
    steps: list[str] = []
    result = run_experiment(cfg, steps.append)
    assert len(steps) == units_of_work(cfg)
    return result


@pytest.fixture(scope="module")
def sweep():
    cfg = SweepConfig("tiny", "topology", ("star", "ring"), SMALL, seeds=2, milp_check=True)
    return _counting(cfg)


def test_sweep_rows_exact_is_best_and_milp_agrees(sweep) -> None:
    rows = sweep.rows
    assert {r["x"] for r in rows} == {"star", "ring"}
    for x in ("star", "ring"):
        for seed in (0, 1):
            mine = [r for r in rows if r["x"] == x and r["seed"] == seed]
            exact = next(r for r in mine if r["method"] == "exact")
            assert exact["status"] == "optimal"
            for r in mine:
                if math.isfinite(r["objective_s"]):
                    assert r["objective_s"] >= exact["objective_s"] * (1 - 1e-9), r["method"]
            milp = next(r for r in mine if r["method"] == "milp")
            assert milp["micro_batch_size"] == exact["micro_batch_size"]
            assert milp["objective_s"] == pytest.approx(exact["objective_s"], rel=1e-6)
    assert sweep.checks["exact_beaten"] == 0 and sweep.checks["milp_disagree"] == 0
    assert sweep.checks["milp_checked"] == 4


def test_sweep_outputs(sweep, tmp_path: Path) -> None:
    paths = write_outputs(sweep, tmp_path)
    assert [p.name for p in paths] == ["tiny.csv", "tiny-summary.csv", "tiny.md"]
    csv_text = paths[0].read_text().splitlines()
    assert csv_text[0].startswith("experiment,x_name,x,seed")
    assert len(csv_text) == 1 + len(sweep.rows)
    md = paths[2].read_text()
    assert "| topology | exact |" in md and "exact_beaten = 0" in md
    assert "no_pipeline" in headline_table([sweep])


def test_sweep_figure(sweep, tmp_path: Path) -> None:
    from pipesl.plotting import save_figure
    from pipesl.plotting.experiments import experiment_figure

    path = save_figure(experiment_figure(sweep), tmp_path / "tiny.png", dpi=50)
    assert path.stat().st_size > 5000


def test_scenario_sweep_seed_zero_is_as_shipped() -> None:
    from pipesl.problem import load_problem
    from pipesl.solvers import solve

    cfg = SweepConfig("sc", "scenario", ("relay-line",), seeds=2, methods=("exact",))
    result = run_experiment(cfg)
    t0 = solve(load_problem("relay-line"), objective="analytic").objective_s
    assert result.rows[0]["objective_s"] == pytest.approx(t0)
    assert result.rows[1]["objective_s"] != pytest.approx(t0)


def test_microbatch_curve_and_closed_form(tmp_path: Path) -> None:
    cfg = MicroBatchConfig(instance=SMALL, seeds=1, scenario="relay-line", all_sizes=False)
    result = _counting(cfg)
    for inst in {r["instance"] for r in result.rows}:
        mine = [r for r in result.rows if r["instance"] == inst]
        exact = next(r for r in mine if r["series"] == "exact")
        curve = [r for r in mine if r["series"] == "optimal_at_b"]
        # the joint optimum is the least point of the curve of per-b optima
        assert min(r["objective_s"] for r in curve) == pytest.approx(exact["objective_s"])
        closed = next(r for r in mine if r["series"] == "closed_form")
        assert 1 <= closed["b"] <= exact["batch_size"]
    assert result.checks["exact_beaten"] == 0
    assert "closed-form b*" in experiment_markdown(result)
    from pipesl.plotting.experiments import experiment_figure

    experiment_figure(result)


def test_robustness_fresh_beats_stale() -> None:
    cfg = RobustnessConfig(instance=SMALL, seeds=1, fluctuations=(0.0, 0.4), rounds=2,
                           methods=("two_tier",))
    result = _counting(cfg)
    for key in {(r["x"], r["round"]) for r in result.rows}:
        mine = {r["method"]: r for r in result.rows if (r["x"], r["round"]) == key}
        fresh = mine["exact"]["objective_s"]
        for m in ("exact_stale", "exact_stale_b", "no_pipeline", "no_pipeline_stale",
                  "two_tier"):
            assert mine[m]["objective_s"] >= fresh * (1 - 1e-9)
        assert mine["exact_stale_b"]["objective_s"] <= mine["exact_stale"]["objective_s"] * (
            1 + 1e-9)
        if key[0] == 0.0:  # no fluctuation: the stale plan is the fresh one
            assert mine["exact_stale"]["objective_s"] == pytest.approx(fresh)
    from pipesl.plotting.experiments import experiment_figure

    experiment_figure(result)


def test_timing_rows() -> None:
    cfg = TimingConfig(instance=InstanceConfig(batch_size=16), seeds=1, nodes=(6,),
                       layers=(5,), layers_nodes=6, micro_batch_size=4, time_limit=20.0)
    result = _counting(cfg)
    methods = {r["method"] for r in result.rows}
    assert methods == {"exact", "alternating", "exact_b", "basp", "milp"}
    for r in result.rows:
        assert r["seconds"] > 0
        if r["method"] == "milp":
            assert r["ratio"] == pytest.approx(1.0, abs=1e-6)
        if r["method"] == "basp":
            assert r["basp_value_s"] <= r["objective_s"] * (1 + 1e-9) or not r["valid"]
    assert result.checks["milp_disagree"] == 0
    assert "By number of layers" in experiment_markdown(result)
    from pipesl.plotting.experiments import experiment_figure

    experiment_figure(result)


def test_runner_helpers(tmp_path: Path) -> None:
    rows = [{"x": 1, "seed": s, "method": m, "objective_s": t, "seconds": 0.1}
            for s, m, t in ((0, "exact", 2.0), (0, "b", 3.0), (1, "exact", 4.0),
                            (1, "b", float("nan")))]
    add_ratios(rows, ("x", "seed"))
    assert rows[1]["ratio"] == 1.5 and math.isnan(rows[3]["ratio"])
    summary = summarise(rows)
    b = next(r for r in summary if r["method"] == "b")
    assert (b["n"], b["n_ok"], b["objective_s_mean"]) == (2, 1, 3.0)
    table = markdown_table(summary, ["x", "method", "n_ok"])
    assert table.splitlines()[0] == "| x | method | n_ok |"
    path = write_csv(rows, tmp_path / "sub" / "rows.csv")
    assert path.read_text().splitlines()[4].endswith(",")  # NaN -> empty cell
