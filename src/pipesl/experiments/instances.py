"""Seeded problem instances for the experiments, built from an :class:`InstanceConfig`."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np

from pipesl.exceptions import ProblemError
from pipesl.experiments.config import InstanceConfig
from pipesl.experiments.generators import TOPOLOGIES, edge_network, synthetic_model
from pipesl.problem import (
    ChainModel,
    Network,
    Problem,
    TrainingSpec,
    load_model,
    load_network,
    validate_problem,
)

__all__ = ["GiB", "fluctuate", "make_instance", "with_field"]

GiB = 2.0**30


@functools.lru_cache(maxsize=32)
def _model(name: str) -> ChainModel:
    """A model file or built-in profile; ``synthetic-cnn:L`` / ``synthetic-transformer:L`` is
    :func:`~pipesl.experiments.generators.synthetic_model` with L layers."""
    if name.startswith("synthetic-"):
        kind, _, layers = name.removeprefix("synthetic-").partition(":")
        if kind not in ("cnn", "transformer") or not layers.isdigit() or int(layers) < 2:
            raise ProblemError("instance.model", "a synthetic model is written "
                               "synthetic-cnn:L or synthetic-transformer:L with L >= 2", name)
        return synthetic_model(int(layers), kind)  # type: ignore[arg-type]
    return load_model(name)


@functools.lru_cache(maxsize=16)
def _network(name: str) -> Network:
    return load_network(name)


def with_field(config: InstanceConfig, name: str, value: object) -> InstanceConfig:
    """``config`` with one field replaced (the field an experiment varies).

    Raises
    ------
    ProblemError
        When ``name`` is not a field of :class:`InstanceConfig`.
    """
    if name not in InstanceConfig.__dataclass_fields__:
        raise ProblemError("vary", f"is not an instance field; choose one of "
                           f"{', '.join(InstanceConfig.__dataclass_fields__)}", name)
    changes: dict[str, Any] = {name: value}
    return replace(config, **changes)


def _scale(rng: np.random.Generator, x: float) -> float:
    return float(rng.uniform(1 - x, 1 + x)) if x > 0 else 1.0


def fluctuate(network: Network, amount: float, rng: np.random.Generator,
              source: str | None = None) -> Network:
    """Every bandwidth and every FLOP/s times an independent uniform [1 - x, 1 + x].

    ``source`` (when given) keeps its FLOP/s: the data owner's device is measured locally.
    """
    nodes = tuple(n if not n.can_compute or n.id == source
                  else replace(n, flops=n.flops * _scale(rng, amount)) for n in network.nodes)
    links = tuple(replace(e, bandwidth=e.bandwidth * _scale(rng, amount))
                  for e in network.links)
    return Network(nodes, links)


def make_instance(config: InstanceConfig, seed: int) -> Problem:
    """The problem of ``config`` for seed ``seed`` (validated).

    Raises
    ------
    ProblemError
        A bad field (unknown model, network or schedule).
    """
    source = config.source
    if config.network == "generated" and config.topology in TOPOLOGIES:
        fraction = 0.35 if config.servers is None else config.servers / (config.n_nodes - 1)
        if config.servers is not None and not 1 <= config.servers <= config.n_nodes - 1 - (
                config.topology == "star"):
            raise ProblemError("instance.servers", f"must be in 1..{config.n_nodes - 1} "
                               f"(n_nodes - 1, minus the hub of a star)", config.servers)
        net = edge_network(config.n_nodes, config.topology, seed=seed,
                           compute_fraction=fraction)
        source = "dev0"
    else:
        name = config.network if config.network != "generated" else config.topology
        net = _network(name)
        if source not in net.node_index:
            devices = [n.id for n in net.nodes if n.kind == "device"]
            if not devices:
                raise ProblemError("instance.source", f"is not a node of {name!r}, which has no"
                                   " node of kind 'device' either", source)
            source = devices[0]
        net = fluctuate(net, config.perturb, np.random.default_rng(seed), source)
    nodes = []
    for n in net.nodes:
        if n.can_compute and n.id != source:
            n = replace(n, flops=n.flops * config.server_flops_scale)
            if config.server_memory_gib is not None:
                n = replace(n, memory=config.server_memory_gib * GiB)
        nodes.append(n)
    links = tuple(replace(e, bandwidth=e.bandwidth * config.bandwidth_scale) for e in net.links)
    if config.schedule not in ("gpipe", "1f1b", "1f1b-net"):
        raise ProblemError("instance.schedule", "must be gpipe, 1f1b or 1f1b-net",
                           config.schedule)
    training = TrainingSpec(source=source, batch_size=config.batch_size,
                            schedule=config.schedule)  # type: ignore[arg-type]
    label = config.network if config.network != "generated" else config.topology
    problem = Problem(Network(tuple(nodes), links), _model(config.model), training,
                      name=f"{label}-{config.model}-s{seed}",
                      meta={"seed": seed, "instance": label})
    return validate_problem(problem)
