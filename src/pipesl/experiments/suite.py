"""The experiment suite: names, default (full and quick) configs, dispatch and outputs.

``pipesl experiment NAME`` runs one of :data:`EXPERIMENTS`; ``all`` runs every one. Full
configs reproduce the study of docs/results.md; ``quick`` ones are small versions for CI.
``adaptation`` trains in emulation and needs torch (without it, it fails with one line); it
is run by name: ``all`` (:data:`PLANNING`) is the planning study, which needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.experiments.adaptation import adaptation_markdown, run_adaptation
from pipesl.experiments.adaptation import units as adaptation_units
from pipesl.experiments.config import (
    AdaptationConfig,
    ExperimentConfig,
    InstanceConfig,
    MicroBatchConfig,
    OwnersConfig,
    RobustnessConfig,
    SweepConfig,
    TimingConfig,
)
from pipesl.experiments.microbatch import microbatch_markdown, run_microbatch
from pipesl.experiments.owners import owners_markdown, owners_units, run_owners
from pipesl.experiments.robustness import robustness_markdown, run_robustness
from pipesl.experiments.runner import ExperimentResult, Progress, markdown_table, write_csv
from pipesl.experiments.sweeps import run_sweep, sweep_markdown
from pipesl.experiments.timing import run_timing, timing_markdown

__all__ = [
    "EXPERIMENTS",
    "PLANNING",
    "config_class",
    "default_config",
    "experiment_markdown",
    "headline_table",
    "run_experiment",
    "units_of_work",
    "write_outputs",
]

SCENARIOS = ("edge-campus", "star-hub", "relay-line", "mesh")
TOPOLOGY_VALUES = ("line", "ring", "star", "grid", "tree", "geometric", "metro-campus")
MODELS = ("vgg16-cifar", "resnet50-imagenet", "vit-b16-imagenet", "gpt2-small")
GUARD_S = 60.0
"""Time limit per solve in the full sweeps: a guard only (every default instance is solved to
proven optimality well within it; an unproven exact result is counted as ``exact_unproven``)."""


@dataclass(frozen=True)
class _Spec:
    description: str
    full: Callable[[], ExperimentConfig]
    quick: Callable[[], ExperimentConfig]
    trains: bool = False
    """Trains models in emulation (needs torch); not part of ``all``."""


def _sweep(name: str, vary: str, values: tuple[Any, ...], quick_values: tuple[Any, ...],
           description: str, x_label: str, log_x: bool = False, milp: bool = False,
           **instance: Any) -> _Spec:
    base = InstanceConfig(**instance)
    small = replace(base, n_nodes=min(base.n_nodes, 10),
                    servers=None if base.servers is None else min(base.servers, 3))

    def full() -> SweepConfig:
        return SweepConfig(name, vary, values, base, seeds=10, x_label=x_label, log_x=log_x,
                           milp_check=milp, time_limit=GUARD_S)

    def quick() -> SweepConfig:
        return SweepConfig(name, vary, quick_values, small, seeds=2, x_label=x_label,
                           log_x=log_x, milp_check=milp, milp_time_limit=10.0)

    return _Spec(description, full, quick)


EXPERIMENTS: dict[str, _Spec] = {
    "scenarios": _sweep(
        "scenarios", "scenario", SCENARIOS, ("edge-campus", "star-hub"),
        "every planner on the built-in scenarios (seed 0 as shipped, others perturbed ±20 %)",
        "scenario", milp=True),
    "servers": _sweep(
        "servers", "servers", (1, 2, 4, 6, 8, 12, 16), (1, 3),
        "latency vs number of edge servers (24-node random geometric networks)",
        "edge servers (of 24 nodes)", n_nodes=24),
    "bandwidth": _sweep(
        "bandwidth", "bandwidth_scale", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), (0.03, 3.0),
        "latency vs link bandwidth (every link scaled)",
        "bandwidth × nominal (1: Wi-Fi 100–600 Mbit/s, backhaul ≥ 0.5 Gbit/s)",
        log_x=True),
    "compute": _sweep(
        "compute", "server_flops_scale", (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0), (0.1, 10.0),
        "latency vs server compute (every server's FLOP/s scaled)",
        "server FLOP/s × nominal (1: 1.6–8.9 TFLOP/s)", log_x=True),
    "memory": _sweep(
        "memory", "server_memory_gib", (1.5, 2.0, 3.0, 4.0, 8.0, 16.0), (1.5, 16.0),
        "latency vs memory per server (ResNet-50, B = 64)", "memory per server (GiB)",
        log_x=True, model="resnet50-imagenet", batch_size=64),
    "batch": _sweep(
        "batch", "batch_size", (16, 32, 64, 128, 256, 512), (32, 256),
        "latency vs batch size", "batch size B (samples)", log_x=True),
    "topology": _sweep(
        "topology", "topology", TOPOLOGY_VALUES, ("line", "star", "metro-campus"),
        "latency across topologies, including the hand-written metro-campus GraphML network",
        "topology", milp=True),
    "models": _sweep(
        "models", "model", MODELS, ("vgg16-cifar", "gpt2-small"),
        "latency for VGG-16, ResNet-50, ViT-B/16 and GPT-2 small profiles (B = 64)",
        "model profile", batch_size=64),
    "microbatch": _Spec(
        "T against the micro-batch size b (the U-curve) with the closed-form b marked",
        lambda: MicroBatchConfig(),
        lambda: MicroBatchConfig(instance=InstanceConfig(n_nodes=10, batch_size=32), seeds=2,
                                 all_sizes=False)),
    "robustness": _Spec(
        "per-round ±x % fluctuation of bandwidth and compute: re-optimised vs stale plans",
        lambda: RobustnessConfig(seeds=5, rounds=10),
        lambda: RobustnessConfig(instance=InstanceConfig(n_nodes=10), seeds=1,
                                 fluctuations=(0.0, 0.3), rounds=2)),
    "timing": _Spec(
        "planner running time vs problem size: exact, alternating, BASP (explicit graph), MILP",
        lambda: TimingConfig(nodes=(8, 12, 16, 24, 32, 48, 64, 96, 128),
                             layers=(8, 16, 32, 64, 128), basp_max_nodes=24,
                             milp_max_nodes=48),
        lambda: TimingConfig(seeds=1, nodes=(8, 12), layers=(8, 16), layers_nodes=8,
                             basp_max_nodes=12, time_limit=10.0)),
    "owners": _Spec(
        "iteration time vs number of data owners: joint planning vs each owner planned alone "
        "vs round-robin sequential SL (campus-owners grown to 1..6 owners)",
        lambda: OwnersConfig(),
        lambda: OwnersConfig(owners=(1, 2), seeds=1, time_limit=5.0)),
    "adaptation": _Spec(
        "training in emulation through a bandwidth drop and a node departure: static plan vs "
        "adapted vs the new optimum from the start (needs torch)",
        lambda: AdaptationConfig(steps=30, drop_iteration=5, departure_iteration=8),
        lambda: AdaptationConfig(steps=14, drop_iteration=4, departure_iteration=5),
        trains=True),
}
PLANNING: tuple[str, ...] = tuple(n for n, spec in EXPERIMENTS.items() if not spec.trains)
"""What ``pipesl experiment all`` runs: every experiment that only plans (no torch)."""


def config_class(name: str) -> type:
    """The config dataclass of experiment ``name``."""
    return type(default_config(name, quick=True))


def default_config(name: str, quick: bool = False) -> Any:
    """The full (or quick) config of experiment ``name``.

    Raises
    ------
    ProblemError
        An unknown name (the message lists the valid ones).
    """
    if name not in EXPERIMENTS:
        raise ProblemError("experiment", f"is not an experiment; choose one of "
                           f"{', '.join(EXPERIMENTS)} or all", name)
    spec = EXPERIMENTS[name]
    return spec.quick() if quick else spec.full()


def units_of_work(config: ExperimentConfig) -> int:
    """How many progress steps :func:`run_experiment` will report."""
    if isinstance(config, SweepConfig):
        per = len(config.methods) + (1 if config.milp_check else 0)
        return len(config.values) * config.seeds * per
    if isinstance(config, MicroBatchConfig):
        return config.seeds + (1 if config.scenario else 0)
    if isinstance(config, RobustnessConfig):
        return config.seeds * len(config.fluctuations) * config.rounds
    if isinstance(config, AdaptationConfig):
        return adaptation_units(config)
    if isinstance(config, OwnersConfig):
        return owners_units(config)
    steps = 0
    points = ([(n, _model_layers(config.instance.model)) for n in config.nodes]
              + [(config.layers_nodes, n) for n in config.layers])
    for nodes, layers in points:
        steps += 3
        steps += nodes <= config.basp_max_nodes and layers <= config.basp_max_layers
        steps += nodes <= config.milp_max_nodes and layers <= config.milp_max_layers
    return steps * config.seeds


def _model_layers(name: str) -> int:
    from pipesl.experiments.instances import _model

    return _model(name).num_layers


def run_experiment(config: ExperimentConfig, progress: Progress | None = None
                   ) -> ExperimentResult:
    """Run an experiment of any kind."""
    if isinstance(config, SweepConfig):
        return run_sweep(config, progress)
    if isinstance(config, MicroBatchConfig):
        return run_microbatch(config, progress)
    if isinstance(config, RobustnessConfig):
        return run_robustness(config, progress)
    if isinstance(config, AdaptationConfig):
        return run_adaptation(config, progress)
    if isinstance(config, OwnersConfig):
        return run_owners(config, progress)
    return run_timing(config, progress)


def experiment_markdown(result: ExperimentResult) -> str:
    """The markdown tables of a result, its checks and notes."""
    body = {"sweep": sweep_markdown, "microbatch": microbatch_markdown,
            "robustness": robustness_markdown, "timing": timing_markdown,
            "adaptation": adaptation_markdown, "owners": owners_markdown}[result.kind](result)
    checks = ", ".join(f"{k} = {v}" for k, v in result.checks.items())
    notes = "".join(f"- {n}\n" for n in result.notes)
    return (body + f"\nChecks: {checks}. Wall time {result.seconds:.1f} s.\n"
            + (f"\n{notes}" if notes else ""))


def write_outputs(result: ExperimentResult, out: str | Path) -> list[Path]:
    """Write ``NAME.csv`` (tidy rows), ``NAME-summary.csv`` and ``NAME.md`` under ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [write_csv(result.rows, folder / f"{result.name}.csv"),
             write_csv(result.summary, folder / f"{result.name}-summary.csv")]
    md = folder / f"{result.name}.md"
    md.write_text(experiment_markdown(result))
    paths.append(md)
    return paths


def headline_table(results: list[ExperimentResult]) -> str:
    """T(baseline) / T(exact) for no_pipeline and two_tier over every sweep: mean, min, max
    over all instances of the sweep, and the share of instances where each is more than 1 %
    slower than exact."""
    rows = []
    for res in results:
        if res.kind != "sweep":
            continue
        for method in ("no_pipeline", "two_tier", "bottleneck_only", "alternating"):
            ratios = [r["ratio"] for r in res.rows if r["method"] == method
                      and r["ratio"] == r["ratio"]]
            if not ratios:
                continue
            rows.append({"sweep": res.name, "baseline": method, "instances": len(ratios),
                         "mean T/T*": sum(ratios) / len(ratios), "min": min(ratios),
                         "max": max(ratios),
                         "> 1 % slower": f"{sum(x > 1.01 for x in ratios)}/{len(ratios)}"})
    return markdown_table(rows)
