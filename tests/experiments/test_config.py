"""Experiment configs: typed frozen dataclasses that round-trip through YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipesl.exceptions import ProblemError
from pipesl.experiments.config import (
    InstanceConfig,
    SweepConfig,
    TimingConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)
from pipesl.experiments.suite import EXPERIMENTS, config_class, default_config


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_default_configs_round_trip_through_yaml(name: str, quick: bool, tmp_path: Path) -> None:
    cfg = default_config(name, quick)
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "other"  # type: ignore[misc]
    path = tmp_path / f"{name}.yaml"
    dump_config(cfg, path)
    back = load_config(path, config_class(name))
    assert back == cfg
    assert type(back) is type(cfg)


def test_partial_yaml_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("name: bw\nvary: bandwidth_scale\nvalues: [0.5, 2]\nseeds: 2\n"
                    "instance: {n_nodes: 8, servers: 3, server_memory_gib: 4}\n")
    cfg = load_config(path, SweepConfig)
    assert cfg.values == (0.5, 2)
    assert cfg.instance == InstanceConfig(n_nodes=8, servers=3, server_memory_gib=4.0)
    assert cfg.methods[0] == "exact"


@pytest.mark.parametrize(("doc", "field"), [
    ({"name": "x", "vary": "batch_size", "values": [1], "sead": 3}, "sead"),
    ({"name": "x", "vary": "batch_size", "values": [1], "seeds": "many"}, "seeds"),
    ({"name": "x", "vary": "batch_size", "values": 4}, "values"),
    ({"name": "x", "vary": "batch_size", "values": [1], "instance": {"n_nodes": 2.5}},
     "instance.n_nodes"),
    ({"name": "x", "vary": "batch_size", "values": [1], "instance": {"colour": 1}},
     "instance.colour"),
    ({"name": "x", "values": [1]}, "SweepConfig"),
])
def test_bad_config_names_the_field(doc: dict, field: str) -> None:
    with pytest.raises(ProblemError) as info:
        config_from_dict(SweepConfig, doc)
    assert field in str(info.value)


def test_bad_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ProblemError, match="YAML"):
        load_config(path, TimingConfig)
    with pytest.raises(ProblemError, match="cannot be read"):
        load_config(tmp_path / "missing.yaml", TimingConfig)


def test_to_dict_is_plain_data() -> None:
    doc = config_to_dict(default_config("timing"))
    assert isinstance(doc["nodes"], list) and isinstance(doc["instance"], dict)


def test_unknown_experiment_lists_the_names() -> None:
    with pytest.raises(ProblemError, match="bandwidth"):
        default_config("nope")
