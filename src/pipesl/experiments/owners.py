"""Iteration time against the number of data owners: joint vs independent vs sequential.

Two families of instances, each swept over n = 1..N owners:

* the built-in multi-owner scenario (``scenario``, by default ``campus-owners``: camera
  boards on two Wi-Fi access points, two edge servers), grown to n owners by
  :func:`campus_owners` (owners beyond its three copy its cameras, each on the same access
  point as the camera it copies); seed 0 is the scenario as shipped, other seeds perturb
  every bandwidth and FLOP/s by up to +-20 %;
* :func:`many_owners` — generated edge networks with many owners (the benchmark's).

For every instance: ``joint`` (:func:`pipesl.solvers.owners.solve_owners`, certified when
the search finishes within the time limit, else with its gap), ``independent`` (every owner's
own optimum, simulated together) and ``sequential`` (round-robin vanilla SL: the round time).
Rows carry each method's makespan, its ratio to joint's, the bound, the gap and the time.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np

from pipesl.exceptions import InfeasibleError
from pipesl.experiments.config import OwnersConfig
from pipesl.experiments.generators import synthetic_model
from pipesl.experiments.runner import ExperimentResult, Progress, markdown_table
from pipesl.problem.types import DataOwner, Network, Problem, TrainingSpec
from pipesl.problem.validate import validate_problem

__all__ = ["campus_owners", "many_owners", "owners_markdown", "owners_units", "run_owners"]

GiB = 2.0**30


def campus_owners(n_owners: int, *, seed: int = 0, scenario: str = "campus-owners",
                  perturb: float = 0.2) -> Problem:
    """The built-in multi-owner scenario grown (or cut) to ``n_owners`` owners.

    Owners beyond the scenario's are new camera boards: owner i copies owner ``i mod k``'s
    device (FLOP/s, memory, overhead), its access link (to the same access point) and its
    batch (k = the scenario's owners); owners below keep the scenario's own. Seed 0 is the
    scenario as shipped (points n <= k are exactly its first n owners); seed s > 0 multiplies
    every bandwidth and every FLOP/s by an independent uniform [1 - x, 1 + x]
    (:func:`~pipesl.experiments.instances.fluctuate`, x = ``perturb``), drawn once for the
    largest network so that point n of seed s is point n + 1 without its last owner.
    """
    from pipesl.experiments.instances import fluctuate
    from pipesl.problem import load_problem

    base = load_problem(scenario)
    owners = list(base.owners)
    k = len(owners)
    net = base.network
    nodes = list(net.nodes)
    links = list(net.links)
    for i in range(k, n_owners):
        model = owners[i % k]
        dev = net.node(model.node)
        new = f"{model.node}-{i}"
        x, y = dev.pos if dev.pos is not None else (0.0, 0.0)
        nodes.insert(i, replace(dev, id=new, pos=(x - 0.6 * (i // k), y - 0.25 * (i // k))))
        access = next(e for e in net.links if model.node in e.ends)
        other = access.target if access.source == model.node else access.source
        links.append(replace(access, source=new, target=other))
        owners.append(replace(model, node=new, name=""))
    network = Network(tuple(nodes), tuple(links))
    if seed:
        network = fluctuate(network, perturb, np.random.default_rng(seed))
    keep = {o.node for o in owners[:n_owners]}
    drop = {o.node for o in owners} - keep
    network = Network(tuple(n for n in network.nodes if n.id not in drop),
                      tuple(e for e in network.links if not (e.ends & drop)))
    chosen = tuple(owners[:n_owners])
    training = replace(base.training, sources=chosen if n_owners > 1 else ())
    if n_owners == 1:
        o = chosen[0]
        training = replace(training, source=o.node, batch_size=o.batch_size,
                           micro_batch_size=o.micro_batch_size, labels_at=o.labels_at)
    return validate_problem(replace(base, network=network, training=training,
                                    name=f"{scenario}-{n_owners}-s{seed}"))


def many_owners(n_nodes: int, n_owners: int, *, seed: int = 0, layers: int = 12,
                batch_size: int = 32) -> Problem:
    """A generated edge network (:func:`~pipesl.experiments.generators.edge_network`) with
    ``n_owners`` data owners: ``dev0`` and ``n_owners - 1`` of its relays, drawn at random,
    turned into Jetson-class devices (0.38 TFLOP/s, 5 GiB); B = ``batch_size`` each."""
    from pipesl.experiments.generators import edge_network

    net = edge_network(n_nodes, seed=seed)
    rng = np.random.default_rng(seed)
    relays = [n.id for n in net.nodes if not n.can_compute]
    if n_owners - 1 > len(relays):
        raise ValueError(f"{n_nodes} nodes have {len(relays)} relays; {n_owners} owners need "
                         f"{n_owners - 1}")
    chosen = [str(x) for x in rng.choice(relays, size=n_owners - 1, replace=False)]
    nodes = tuple(replace(n, flops=0.38e12, memory=5 * GiB, overhead=3e-3, compute=True,
                          kind="device") if n.id in chosen else n for n in net.nodes)
    owners = tuple(DataOwner(o, batch_size) for o in ["dev0", *chosen])
    training = TrainingSpec(source="dev0", batch_size=batch_size,
                            sources=owners if n_owners > 1 else ())
    return validate_problem(Problem(Network(nodes, net.links),
                                    synthetic_model(layers, "cnn", seed=seed), training,
                                    name=f"edge-{n_nodes}n-{n_owners}owners-s{seed}"))


def _instances(config: OwnersConfig) -> list[tuple[str, int, int, Problem]]:
    return [(config.scenario, seed, n, campus_owners(n, seed=seed, scenario=config.scenario))
            for n in config.owners for seed in range(config.seeds)]


def owners_units(config: OwnersConfig) -> int:
    """Progress steps of :func:`run_owners`: one per instance and method."""
    return len(_instances(config)) * len(config.methods)


def run_owners(config: OwnersConfig, progress: Progress | None = None) -> ExperimentResult:
    """Run the owners experiment (module docstring)."""
    from pipesl.solvers.owners import solve_owners

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for family, seed, n, problem in _instances(config):
        base = {"experiment": config.name, "family": family, "seed": seed, "owners": n,
                "instance": problem.name}
        joint = math.nan
        for method in config.methods:
            t0 = time.perf_counter()
            try:
                r = solve_owners(problem, method, time_limit=config.time_limit)
            except InfeasibleError as exc:
                rows.append({**base, "method": method, "makespan_s": math.nan,
                             "lower_bound_s": math.nan, "gap": math.nan, "optimal": False,
                             "status": "infeasible", "seconds": time.perf_counter() - t0,
                             "ratio": math.nan, "error": " ".join(str(exc).split())})
                continue
            if method == config.methods[0]:
                joint = r.makespan_s
            rows.append({**base, "method": method, "makespan_s": r.makespan_s,
                         "lower_bound_s": r.lower_bound_s, "gap": r.gap,
                         "optimal": r.optimal, "status": r.status, "seconds": r.seconds,
                         "ratio": r.makespan_s / joint if joint > 0 else math.nan,
                         "error": ""})
            if progress is not None:
                progress(f"{family} n={n} {method}")
    summary = _summary(rows, config.methods)
    ref = config.methods[0]
    beaten = sum(r["method"] != ref and r["ratio"] < 1 - 1e-9 for r in rows
                 if r["method"] != "sequential" and math.isfinite(r["ratio"]))
    checks = {"instances": len(_instances(config)),
              "joint_certified": sum(r["method"] == ref and r["optimal"] for r in rows),
              "exact_beaten": beaten}
    notes = []
    for family in dict.fromkeys(r["family"] for r in rows):
        for other in config.methods[1:]:
            gains = [r["ratio"] for r in rows if r["family"] == family and r["method"] == other
                     and r["owners"] > 1 and math.isfinite(r["ratio"])]
            if gains:
                notes.append(f"{family}: {other} / joint over {len(gains)} multi-owner "
                             f"instances: mean {statistics.fmean(gains):.3f}x, min "
                             f"{min(gains):.3f}x, max {max(gains):.3f}x")
    return ExperimentResult(config.name, "owners", config, tuple(rows), tuple(summary), checks,
                            time.perf_counter() - started, tuple(notes))


def _summary(rows: list[dict[str, Any]], methods: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per (family, owners): mean makespan of each method, the mean gains over joint, how
    many joint solves were certified and the largest gap."""
    out = []
    keys = dict.fromkeys((r["family"], r["owners"]) for r in rows)
    for family, n in keys:
        mine = [r for r in rows if r["family"] == family and r["owners"] == n]
        row: dict[str, Any] = {"family": family, "owners": n,
                               "instances": len({r["seed"] for r in mine})}
        for m in methods:
            ts = [r["makespan_s"] for r in mine if r["method"] == m
                  and math.isfinite(r["makespan_s"])]
            row[f"{m}_s"] = statistics.fmean(ts) if ts else math.nan
            if m != methods[0]:
                gains = [r["ratio"] for r in mine if r["method"] == m
                         and math.isfinite(r["ratio"])]
                row[f"{m}_gain"] = statistics.fmean(gains) if gains else math.nan
        joint = [r for r in mine if r["method"] == methods[0]]
        row["certified"] = f"{sum(r['optimal'] for r in joint)}/{len(joint)}"
        gaps = [r["gap"] for r in joint if math.isfinite(r["gap"])]
        row["max_gap"] = max(gaps) if gaps else math.nan
        secs = [r["seconds"] for r in joint]
        row["joint_seconds"] = statistics.fmean(secs) if secs else math.nan
        out.append(row)
    return out


def owners_markdown(result: ExperimentResult) -> str:
    """The sweep table: iteration time (ms) per method, gains over joint, certification."""
    cfg = result.config
    methods = cfg.methods
    table = []
    for r in result.summary:
        row: dict[str, Any] = {"family": r["family"], "owners": r["owners"],
                               "instances": r["instances"]}
        for m in methods:
            row[f"{m} (ms)"] = 1e3 * r[f"{m}_s"]
        for m in methods[1:]:
            row[f"{m} / {methods[0]}"] = r[f"{m}_gain"]
        row["certified"] = r["certified"]
        row["max gap"] = f"{100 * r['max_gap']:.1f} %" if math.isfinite(r["max_gap"]) else "–"
        row["joint s"] = r["joint_seconds"]
        table.append(row)
    return (f"### {result.name}\n\nMean iteration time per number of data owners (parallel "
            f"mode; sequential: the round), time limit {cfg.time_limit:g} s per solve; "
            "gains are means of per-instance ratios.\n\n" + markdown_table(table))
