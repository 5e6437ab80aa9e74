"""Seeded experiment instances: the fields an experiment varies do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipesl.exceptions import ProblemError
from pipesl.experiments.config import InstanceConfig
from pipesl.experiments.instances import GiB, make_instance, with_field
from pipesl.problem import load_network

ROOT = Path(__file__).resolve().parents[2]


def test_same_seed_same_instance_and_seeds_differ() -> None:
    cfg = InstanceConfig(n_nodes=12)
    assert make_instance(cfg, 3) == make_instance(cfg, 3)
    assert make_instance(cfg, 3) != make_instance(cfg, 4)


@pytest.mark.parametrize("servers", [1, 4, 9])
def test_number_of_servers(servers: int) -> None:
    p = make_instance(InstanceConfig(n_nodes=12, servers=servers), 0)
    assert len(p.network.compute_nodes) == servers + 1  # plus the source


def test_scales_apply_to_servers_and_links_only() -> None:
    base = make_instance(InstanceConfig(n_nodes=10), 1)
    cfg = InstanceConfig(n_nodes=10, bandwidth_scale=0.5, server_flops_scale=3.0,
                         server_memory_gib=2.0)
    p = make_instance(cfg, 1)
    for a, b in zip(base.network.nodes, p.network.nodes, strict=True):
        if a.can_compute and a.id != "dev0":
            assert b.flops == pytest.approx(3 * a.flops) and b.memory == 2 * GiB
        else:
            assert b == a
    for a, b in zip(base.network.links, p.network.links, strict=True):
        assert b.bandwidth == pytest.approx(0.5 * a.bandwidth)


def test_loaded_network_picks_its_device_and_perturbs_per_seed() -> None:
    cfg = InstanceConfig(topology="metro-campus")
    p0, p1 = make_instance(cfg, 0), make_instance(cfg, 1)
    assert p0.training.source == "lab-jetson"
    assert p0.network != p1.network
    nominal = load_network("metro-campus")
    for a, b in zip(nominal.links, p0.network.links, strict=True):
        assert 0.8 * a.bandwidth <= b.bandwidth <= 1.2 * a.bandwidth
    exact = make_instance(InstanceConfig(network="metro-campus", perturb=0.0), 5)
    assert exact.network.links == nominal.links


def test_examples_graphml_is_the_builtin_network() -> None:
    from pipesl.problem.scenarios import builtin_path

    shipped = builtin_path("network", "metro-campus").read_text()
    assert (ROOT / "examples" / "metro-campus.graphml").read_text() == shipped
    assert "Provenance" in shipped


def test_synthetic_models_and_errors() -> None:
    p = make_instance(InstanceConfig(n_nodes=6, model="synthetic-cnn:12"), 0)
    assert p.model.num_layers == 12
    with pytest.raises(ProblemError, match="synthetic"):
        make_instance(InstanceConfig(model="synthetic-rnn:4"), 0)
    with pytest.raises(ProblemError, match="servers"):
        make_instance(InstanceConfig(n_nodes=5, servers=9), 0)
    with pytest.raises(ProblemError, match="vary"):
        with_field(InstanceConfig(), "colour", 1)
