"""Experiment configurations: typed frozen dataclasses, loadable from and dumpable to YAML.

Every experiment is described by one of :class:`SweepConfig`, :class:`MicroBatchConfig`,
:class:`RobustnessConfig` or :class:`TimingConfig`, each holding an :class:`InstanceConfig`
(the base problem that its points vary), or by :class:`AdaptationConfig` (a built-in
scenario trained in emulation while its network changes). A YAML file holds the same fields
(nested ``instance:`` mapping); :func:`config_from_dict` validates every field and names the
offending one.

>>> cfg = SweepConfig(name="bandwidth", vary="bandwidth_scale", values=(0.1, 1.0))
>>> config_from_dict(type(cfg), config_to_dict(cfg)) == cfg
True
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipesl.exceptions import ProblemError

__all__ = [
    "ADAPTATION_CASES",
    "BASELINES",
    "AdaptationConfig",
    "ExperimentConfig",
    "InstanceConfig",
    "MicroBatchConfig",
    "OwnersConfig",
    "RobustnessConfig",
    "SweepConfig",
    "TimingConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
]

BASELINES: tuple[str, ...] = ("exact", "alternating", "no_pipeline", "two_tier", "fixed_b",
                              "bottleneck_only", "even_split", "greedy", "random")
"""The planners every sweep compares (``exact`` first: ratios are taken against it)."""


@dataclass(frozen=True)
class InstanceConfig:
    """One family of seeded problem instances (the base that an experiment varies)."""

    network: str = "generated"
    """``generated`` (:func:`~pipesl.experiments.generators.edge_network`), or a network file
    or built-in network name (e.g. ``metro-campus``), perturbed per seed by ``perturb``."""
    topology: str = "geometric"
    """Generated networks: geometric, line, ring, star, grid or tree. Any other value is read
    as a network file or built-in name (so a topology sweep can include a real network)."""
    n_nodes: int = 20
    """Generated networks: number of nodes (device, relays and servers)."""
    servers: int | None = None
    """Generated networks: number of edge servers (None: 35 % of the non-source nodes)."""
    model: str = "vgg16-cifar"
    """A built-in model profile or a model file."""
    batch_size: int = 128
    """B."""
    schedule: str = "gpipe"
    """``gpipe``, ``1f1b`` or ``1f1b-net``."""
    source: str = "dev0"
    """The data owner; a loaded network without it uses its first node of kind ``device``."""
    bandwidth_scale: float = 1.0
    """Multiplies every link's bandwidth."""
    server_flops_scale: float = 1.0
    """Multiplies the FLOP/s of every compute node except the source."""
    server_memory_gib: float | None = None
    """Sets every server's memory (GiB); None keeps the network's."""
    perturb: float = 0.2
    """Loaded networks: per-seed uniform factor in [1 - x, 1 + x] on every bandwidth and
    every FLOP/s, so that seeds differ (generated networks differ by construction)."""


@dataclass(frozen=True)
class SweepConfig:
    """Latency of every planner as one instance field varies."""

    name: str
    """Experiment name (file names of its outputs)."""
    vary: str
    """The :class:`InstanceConfig` field that varies."""
    values: tuple[Any, ...]
    """Its values, one point each."""
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    seeds: int = 5
    """Seeded instances per point."""
    methods: tuple[str, ...] = BASELINES
    """Solver names; ``exact`` must be among them (ratios are taken against it)."""
    x_label: str = ""
    """Axis label of the varying field, with its unit."""
    log_x: bool = False
    """Logarithmic x axis."""
    time_limit: float | None = None
    """Seconds per solve (None: none)."""
    milp_check: bool = False
    """Also solve every instance with the MILP at the exact planner's b (must agree)."""
    milp_time_limit: float = 20.0
    """Seconds per MILP check."""


@dataclass(frozen=True)
class MicroBatchConfig:
    """T against the micro-batch size b: the U-curve, with the closed-form b marked."""

    name: str = "microbatch"
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    seeds: int = 5
    scenario: str | None = "edge-campus"
    """A built-in scenario shown on its own (None: none)."""
    all_sizes: bool = True
    """Every b in 1..B (True) or only b = ceil(B / M) (False, faster)."""


@dataclass(frozen=True)
class RobustnessConfig:
    """Per-round random fluctuation of bandwidth and compute: fresh plans against stale ones."""

    name: str = "robustness"
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    seeds: int = 3
    fluctuations: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5)
    """x: every round multiplies each bandwidth and each FLOP/s by a uniform [1 - x, 1 + x]."""
    rounds: int = 8
    """Training rounds (fresh fluctuations) per seed and x."""
    methods: tuple[str, ...] = ("no_pipeline", "two_tier", "bottleneck_only")
    """Baselines re-optimised every round (besides exact, fresh and stale)."""


@dataclass(frozen=True)
class TimingConfig:
    """Planner running time against problem size (nodes, then layers)."""

    name: str = "timing"
    instance: InstanceConfig = field(default_factory=lambda: InstanceConfig(batch_size=64))
    seeds: int = 3
    nodes: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64)
    """Network sizes (the instance's model)."""
    layers: tuple[int, ...] = (8, 16, 32, 64)
    """Model sizes: synthetic CNN chains of this many layers on ``layers_nodes`` nodes."""
    layers_nodes: int = 16
    micro_batch_size: int = 8
    """b for the fixed-b planners (exact at b, BASP, MILP)."""
    basp_max_nodes: int = 16
    """Largest network on which the explicit decision graph is built."""
    basp_max_layers: int = 32
    milp_max_nodes: int = 32
    milp_max_layers: int = 32
    time_limit: float = 30.0
    """Seconds per MILP solve."""


ADAPTATION_CASES: tuple[str, ...] = ("bandwidth-drop", "node-departure")
"""The network changes the adaptation experiment plays (see :class:`AdaptationConfig`)."""


@dataclass(frozen=True)
class AdaptationConfig:
    """Training in emulation while the network changes: static plan vs adapted vs the new
    optimum from the start (needs torch)."""

    name: str = "adaptation"
    scenario: str = "iot-dual"
    """A built-in scenario or a problem file (trainable: a model of the runtime's zoo)."""
    steps: int = 30
    """Training iterations of every run."""
    cases: tuple[str, ...] = ADAPTATION_CASES
    """``bandwidth-drop``: the most loaded link of the initial optimal plan keeps
    ``bandwidth_factor`` of its bandwidth from ``drop_iteration`` on. ``node-departure``: the
    most loaded compute node of the initial plan other than the source leaves at
    ``departure_iteration``."""
    drop_iteration: int = 5
    bandwidth_factor: float = 0.2
    departure_iteration: int = 8
    time_scale: float = 1.0
    """Multiplies every emulated duration (RunConfig.emulation.time_scale)."""
    data: str = "digits"
    """Training data: ``digits`` or ``synthetic`` (RunConfig.job.data)."""
    seed: int = 0
    """Seeds the model's initial weights and the data order (the same in every run)."""
    target: float = 0.9
    """Share of the new optimum's median post-event throughput that the adapted run must
    reach (and keep) ..."""
    within: int = 10
    """... within this many iterations of the event."""


@dataclass(frozen=True)
class OwnersConfig:
    """Iteration time against the number of data owners: joint planning vs each owner planned
    alone vs round-robin sequential split learning (issue 18)."""

    name: str = "owners"
    owners: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    """Numbers of data owners (each point: the scenario grown or cut to n owners)."""
    scenario: str = "campus-owners"
    """The built-in multi-owner scenario the instances grow from
    (:func:`pipesl.experiments.owners.campus_owners`)."""
    seeds: int = 2
    """Seed 0: the scenario as shipped; seed s > 0: bandwidths and FLOP/s perturbed +-20 %."""
    methods: tuple[str, ...] = ("joint", "independent", "sequential")
    """Planners compared (``joint`` first: ratios are taken against it)."""
    time_limit: float = 20.0
    """Seconds per solve (the joint search reports its gap when it stops)."""


ExperimentConfig = (SweepConfig | MicroBatchConfig | RobustnessConfig | TimingConfig
                    | AdaptationConfig | OwnersConfig)
C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (lists for tuples) of a config dataclass, ready for YAML."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    out = plain(config)
    assert isinstance(out, dict)
    return out


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return _coerce(value, a, name)
            except ProblemError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ProblemError(name, "must be a list", value)
        item = args[0] if args and args[0] is not Any else None
        return tuple(v if item is None else _coerce(v, item, f"{name}[{i}]")
                     for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProblemError(name, "must be a mapping of fields", value)
        return _from_dict(hint, value, name)
    if hint is bool:
        if not isinstance(value, bool):
            raise ProblemError(name, "must be true or false", value)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProblemError(name, "must be an integer", value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProblemError(name, "must be a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ProblemError(name, "must be a string", value)
        return value
    return value


def _from_dict(cls: Any, doc: dict[str, Any], name: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ProblemError(f"{name}.{unknown[0]}" if name else unknown[0],
                           f"is not a field of {cls.__name__}; valid fields: "
                           f"{', '.join(sorted(known))}")
    kwargs = {k: _coerce(v, hints[k], f"{name}.{k}" if name else k) for k, v in doc.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ProblemError(name or cls.__name__, str(exc)) from None


def config_from_dict(cls: type[C], doc: Any, name: str = "") -> C:
    """Build (and type-check) a config of class ``cls`` from plain data.

    Raises
    ------
    ProblemError
        Naming the first field that is unknown, missing or of the wrong type.
    """
    if not isinstance(doc, dict):
        raise ProblemError(name or cls.__name__, "must be a mapping of fields", doc)
    config: C = _from_dict(cls, doc, name)
    return config


def load_config(path: str | Path, cls: type[C]) -> C:
    """Read a YAML file into a config of class ``cls`` (see :func:`config_from_dict`)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ProblemError(str(p), f"cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProblemError(str(p), f"is not valid YAML: {exc}") from None
    return config_from_dict(cls, doc, str(p))


def dump_config(config: Any, path: str | Path) -> None:
    """Write a config as YAML (readable back by :func:`load_config`)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
