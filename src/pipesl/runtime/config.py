"""Options of a training run: one :class:`RunConfig` of nested, frozen sections by concept.

In the spirit of torchtitan's nested job config, the options are grouped by what they are
about, each section its own frozen dataclass:

=================  ==================================================================
``job``            what is trained: the model, the data, the seed, the dtype
``training``       how: steps, schedule, learning rate, momentum
``emulation``      the emulator: on or off, which parts, link pacing, the virtual clock,
                   the time scale, the testbed's latency padding
``transport``      the data plane: backend, rendezvous host, timeout, receive posting
``liveness``       failure handling: the hang timeout, the fault to inject (test mode)
``checkpoint``     the checkpoint folder, how often, resuming
``outputs``        what the run hands back beyond the report: the trained parameters, the
                   transport audit
=================  ==================================================================

Read them nested (``cfg.training.steps``, ``cfg.emulation.time_scale``). Build and change
them with :func:`build_config` / :meth:`RunConfig.with_options`, which take a section (a
section object or a mapping of its fields, ``emulation={"time_scale": 2.0}``) or the flat
option names of the command line (``steps=10``, ``time_scale=2.0``,
``checkpoint_dir="ckpt"``: :data:`FLAT_OPTIONS`), and validate every field: a bad value
raises a :class:`~pipesl.exceptions.ProblemError` naming it by its dotted path
(``emulation.time_scale: 0.0 must be a positive finite number``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.runtime.faults import parse_fault
from pipesl.schedules import get_schedule

__all__ = ["BACKENDS", "DATA_KINDS", "DTYPES", "EMULATE_PARTS", "FLAT_OPTIONS",
           "CheckpointConfig", "EmulationConfig", "JobConfig", "LivenessConfig",
           "OutputConfig", "RunConfig", "TrainingConfig", "TransportConfig", "build_config",
           "parse_emulate"]

BACKENDS = ("gloo", "nccl")
DATA_KINDS = ("synthetic", "digits")
DTYPES = ("float32", "float64")
EMULATE_PARTS = ("links", "devices")


def parse_emulate(value: str | bool) -> frozenset[str]:
    """``links,devices`` / ``links`` / ``devices`` / ``none`` (True: both, False: none).

    Raises
    ------
    ValueError
        Naming the unknown part.
    """
    if isinstance(value, bool):
        return frozenset(EMULATE_PARTS) if value else frozenset()
    parts = {p.strip() for p in str(value).split(",") if p.strip()}
    if parts == {"none"}:
        return frozenset()
    bad = parts - set(EMULATE_PARTS)
    if bad or not parts:
        raise ValueError(", ".join(sorted(bad)) or "empty")
    return frozenset(parts)


@dataclass(frozen=True)
class JobConfig:
    """What is trained."""

    model: str | None = None
    """Zoo name or ``package.module:factory``; None: the zoo model named like the problem's
    model profile."""
    data: str = "synthetic"
    """``synthetic`` (random inputs and labels, seeded per iteration) or ``digits``
    (scikit-learn's bundled 8x8 digits). A Python ``Dataset`` can be passed to
    :func:`pipesl.runtime.train` instead."""
    seed: int = 0
    """Seeds the model's initial weights and the data order."""
    dtype: str = "float32"
    """Parameter and activation dtype (``float64`` for bit-for-bit comparisons)."""


@dataclass(frozen=True)
class TrainingConfig:
    """How it is trained: the iterations, the schedule and the optimiser."""

    steps: int = 3
    """Training iterations (mini-batches); one optimiser step each."""
    schedule: str | None = None
    """``gpipe``, ``1f1b`` or ``1f1b-net``; None: the problem's ``training.schedule``."""
    lr: float = 0.05
    """SGD learning rate."""
    momentum: float = 0.0
    """SGD momentum."""


@dataclass(frozen=True)
class EmulationConfig:
    """What the emulator (:mod:`pipesl.runtime.emulator`) does."""

    enabled: bool = True
    """Pad every pass to its planned duration and pace every link to its bandwidth and
    latency (SPEC section 3), so that local processes behave like the problem's devices and
    network. Turn off on real devices and networks. The flat option ``emulate`` also takes
    one of the :attr:`parts` strings (``"none"`` turns it off)."""
    parts: str = "links,devices"
    """What is emulated: ``links,devices``, ``links`` or ``devices`` — e.g. ``devices`` when
    the kernel shapes real links (netem) and only the devices need their planned speed."""
    pace_links: bool = True
    """Pace the links too. Turn off when the kernel's traffic shaper (the testbed,
    :mod:`pipesl.testbed`) or a real network enforces the bandwidth: passes are still padded,
    transfers leave as soon as they are ready, and the virtual clock is off. The same as
    :attr:`parts` without ``links`` (:func:`build_config` keeps both in agreement)."""
    virtual_clock: bool = True
    """Start every pass and transfer from the emulated time its input became available
    (carried by the message) instead of the moment the process got it, so that loopback
    delivery and thread scheduling on an oversubscribed host do not add to the emulated
    network's times wherever the next task can absorb them. Needs one clock for every
    process: used only when all ranks run on one host."""
    time_scale: float = 1.0
    """Multiplies every emulated duration (and the predicted times reported beside the
    measured ones). Raise it when the real compute of a pass does not fit in its planned
    duration on this machine."""
    latency_padding: tuple[tuple[str, str, int], ...] = ()
    """``(u, v, bytes)``: every activation and gradient over the link u-v carries this many
    bytes of padding, so that a kernel-shaped link spends its per-transfer latency on the
    wire (the cost model's x = 8 * n * out_bytes / bandwidth + latency occupies the link)."""

    @property
    def emulated(self) -> frozenset[str]:
        """The emulated parts: ``links``, ``devices``, both or none."""
        return parse_emulate(self.parts) if self.enabled else frozenset()


@dataclass(frozen=True)
class TransportConfig:
    """The data plane (:mod:`pipesl.runtime.transport`)."""

    backend: str = "gloo"
    """torch.distributed backend of the data plane: ``gloo`` (CPU) or ``nccl`` (CUDA)."""
    host: str = "127.0.0.1"
    """Address of the local rendezvous; the default binds every socket to loopback."""
    timeout_s: float = 120.0
    """Longest wait for any message or collective before the run fails."""
    post_ahead: bool | None = None
    """True: post each stream's next receive as soon as the previous one is taken, so a
    message can land while the receiver computes; False: post each receive when the program
    needs it, as ``torch.distributed.pipelining`` does; None (default): ahead, except a
    stage's own receives under a schedule that interleaves forward and backward passes
    (1F1B) with real (unpadded) passes (:func:`pipesl.runtime.program.posted_ahead`;
    measured in docs/runtime.md)."""


@dataclass(frozen=True)
class LivenessConfig:
    """Failure handling (:mod:`pipesl.runtime.liveness`, :mod:`pipesl.runtime.faults`)."""

    hang_timeout_s: float = 15.0
    """Local runs: the launcher stops the job when a worker has been busy on one task (a
    pass, an optimiser step, a checkpoint) this long, or when every worker has been waiting
    without any progress this long. Under torchrun each rank applies the first rule to
    itself. Must exceed the longest emulated pass or transfer."""
    fault: str | None = None
    """Test mode: make a worker fail, e.g. ``kill:node=a,iteration=2,phase=F``; None: the
    ``PIPESL_FAULT`` environment variable, if set."""


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints (:mod:`pipesl.runtime.checkpoint`)."""

    folder: str | None = None
    """Save every stage's units and optimiser state here; None: no checkpoints."""
    every: int = 10
    """Save after every this many iterations (and after the last one)."""
    resume: bool = False
    """Start from the newest complete checkpoint in :attr:`folder` (any plan)."""


@dataclass(frozen=True)
class OutputConfig:
    """What the run hands back beyond its report."""

    return_state: bool = False
    """Collect the trained parameters of every stage into the result (tests, checkpoints)."""
    audit: str | None = None
    """Test mode: record every tensor that crosses a hop into this JSON-lines file and check
    that raw inputs (and, with ``labels_at``, labels) never leave their node (see
    :mod:`pipesl.runtime.audit`)."""


_SECTIONS: dict[str, type] = {
    "job": JobConfig, "training": TrainingConfig, "emulation": EmulationConfig,
    "transport": TransportConfig, "liveness": LivenessConfig,
    "checkpoint": CheckpointConfig, "outputs": OutputConfig,
}

FLAT_OPTIONS: dict[str, tuple[str, str]] = {
    "model": ("job", "model"), "data": ("job", "data"), "seed": ("job", "seed"),
    "dtype": ("job", "dtype"),
    "steps": ("training", "steps"), "schedule": ("training", "schedule"),
    "lr": ("training", "lr"), "momentum": ("training", "momentum"),
    "emulate": ("emulation", "enabled"), "pace_links": ("emulation", "pace_links"),
    "virtual_clock": ("emulation", "virtual_clock"), "time_scale": ("emulation", "time_scale"),
    "latency_padding": ("emulation", "latency_padding"),
    "backend": ("transport", "backend"), "host": ("transport", "host"),
    "timeout_s": ("transport", "timeout_s"), "post_ahead": ("transport", "post_ahead"),
    "hang_timeout_s": ("liveness", "hang_timeout_s"), "fault": ("liveness", "fault"),
    "checkpoint_dir": ("checkpoint", "folder"), "checkpoint_every": ("checkpoint", "every"),
    "resume": ("checkpoint", "resume"),
    "return_state": ("outputs", "return_state"), "audit": ("outputs", "audit"),
}
"""The flat option names (those of ``pipesl train``'s flags) and the (section, field) each
sets."""


@dataclass(frozen=True)
class RunConfig:
    """How to train, by concept: one frozen section per concern (see the module).

    Build one with :func:`build_config`, which validates every field.
    """

    job: JobConfig = field(default_factory=JobConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    emulation: EmulationConfig = field(default_factory=EmulationConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)

    @property
    def emulated(self) -> frozenset[str]:
        """The emulated parts: ``links``, ``devices``, both or none."""
        return self.emulation.emulated

    @property
    def scale(self) -> float:
        """The time scale in force: the emulation's, 1 when nothing is emulated."""
        return self.emulation.time_scale if self.emulation.enabled else 1.0

    def padding_of(self, node: str) -> dict[str, int]:
        """``{neighbour: bytes}`` of the latency padding on the links of ``node``."""
        out: dict[str, int] = {}
        for u, v, size in self.emulation.latency_padding:
            if node in (u, v):
                out[v if node == u else u] = size
        return out

    def to_dict(self) -> dict[str, Any]:
        """The options by their flat names (:data:`FLAT_OPTIONS`, plus ``emulation``: the
        emulated parts), JSON-ready: what ``pipesl train --adapt --json`` prints."""
        out = {name: getattr(getattr(self, section), key)
               for name, (section, key) in FLAT_OPTIONS.items()}
        out["emulation"] = self.emulation.parts
        return out

    def sections(self) -> dict[str, dict[str, Any]]:
        """The options as a JSON-ready mapping, one object per section."""
        return {f.name: asdict(getattr(self, f.name)) for f in fields(self)}

    def with_options(self, **options: Any) -> RunConfig:
        """A validated copy with some options changed (sections or flat names, as
        :func:`build_config`)."""
        return build_config(self, **options)


def _apply(config: RunConfig, options: Mapping[str, Any]) -> RunConfig:
    """``config`` with ``options`` (sections or flat names) set, unvalidated."""
    changes: dict[str, dict[str, Any]] = {}
    whole: dict[str, Any] = {}
    for name, value in options.items():
        if name in _SECTIONS:
            kind = _SECTIONS[name]
            if isinstance(value, kind):
                whole[name] = value
            elif isinstance(value, Mapping):
                known = {f.name for f in fields(kind)}
                for key, v in value.items():
                    if key not in known:
                        raise ProblemError(f"{name}.{key}", "is not an option")
                    changes.setdefault(name, {})[key] = v
            else:
                raise ProblemError(name, f"must be a {kind.__name__} or a mapping of its "
                                   "fields", type(value).__name__)
        elif name in FLAT_OPTIONS:
            section, key = FLAT_OPTIONS[name]
            changes.setdefault(section, {})[key] = value
        else:
            raise ProblemError(name, "is not an option")
    sections = {name: whole.get(name, getattr(config, name)) for name in _SECTIONS}
    for name, change in changes.items():
        sections[name] = replace(sections[name], **change)
    return RunConfig(**sections)


def _within(section: str, exc: ProblemError) -> ProblemError:
    """``exc`` with its field under ``section``."""
    if exc.value is ProblemError._MISSING:
        return ProblemError(f"{section}.{exc.field}", exc.rule)
    return ProblemError(f"{section}.{exc.field}", exc.rule, exc.value)


def _positive(section: str, obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value <= 0):
            raise ProblemError(f"{section}.{name}", "must be a positive finite number", value)


def _flag(section: str, obj: Any, *names: str) -> None:
    for name in names:
        if not isinstance(getattr(obj, name), bool):
            raise ProblemError(f"{section}.{name}", "must be true or false", getattr(obj, name))


def _count(where: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ProblemError(where, f"must be an integer >= {least}", value)


def _job(job: JobConfig) -> JobConfig:
    if job.data not in DATA_KINDS:
        raise ProblemError("job.data", f"must be one of {', '.join(DATA_KINDS)}", job.data)
    if job.dtype not in DTYPES:
        raise ProblemError("job.dtype", f"must be one of {', '.join(DTYPES)}", job.dtype)
    _count("job.seed", job.seed, 0)
    if job.model is not None and (not isinstance(job.model, str) or not job.model):
        raise ProblemError("job.model", "must be a zoo name or package.module:factory",
                           job.model)
    return job


def _training(tr: TrainingConfig) -> TrainingConfig:
    _count("training.steps", tr.steps, 1)
    if tr.schedule is not None:
        try:
            tr = replace(tr, schedule=get_schedule(tr.schedule).name)
        except ProblemError as exc:
            raise _within("training", exc) from None
    _positive("training", tr, "lr")
    if (isinstance(tr.momentum, bool) or not isinstance(tr.momentum, int | float)
            or not 0 <= tr.momentum < 1):
        raise ProblemError("training.momentum", "must be in [0, 1)", tr.momentum)
    return tr


def _emulation(em: EmulationConfig) -> EmulationConfig:
    if isinstance(em.enabled, str):  # the flat option `emulate` takes the parts too
        text = em.enabled.strip()
        em = replace(em, enabled=text != "none", parts=em.parts if text == "none" else text)
    try:
        parts = parse_emulate(em.parts)
    except ValueError:
        raise ProblemError("emulation.parts", "must be links,devices, links, devices or none",
                           em.parts) from None
    if not isinstance(em.enabled, bool):
        raise ProblemError("emulation.enabled", "must be true, false or links,devices, "
                           "links, devices, none", em.enabled)
    _flag("emulation", em, "pace_links", "virtual_clock")
    if not em.pace_links:  # the testbed's switch: the kernel shapes the links
        parts = parts - {"links"}
    if not parts:
        em = replace(em, enabled=False, parts="links,devices")
    else:
        em = replace(em, parts=",".join(p for p in EMULATE_PARTS if p in parts),
                     pace_links="links" in parts)
    _positive("emulation", em, "time_scale")
    padding = []
    for entry in em.latency_padding:
        if (not isinstance(entry, tuple | list) or len(entry) != 3
                or not all(isinstance(e, str) and e for e in entry[:2])
                or isinstance(entry[2], bool) or not isinstance(entry[2], int) or entry[2] < 0):
            raise ProblemError("emulation.latency_padding",
                               "must list (node, node, bytes >= 0) triples", entry)
        padding.append((entry[0], entry[1], entry[2]))
    return replace(em, latency_padding=tuple(padding))


def _transport(tp: TransportConfig) -> TransportConfig:
    if tp.backend not in BACKENDS:
        raise ProblemError("transport.backend", f"must be one of {', '.join(BACKENDS)}",
                           tp.backend)
    if not tp.host or not isinstance(tp.host, str):
        raise ProblemError("transport.host", "must be a host name or address", tp.host)
    _positive("transport", tp, "timeout_s")
    if tp.post_ahead is not None:
        _flag("transport", tp, "post_ahead")
    return tp


def _liveness(lv: LivenessConfig) -> LivenessConfig:
    _positive("liveness", lv, "hang_timeout_s")
    if lv.fault is not None:
        try:
            parse_fault(lv.fault)
        except ProblemError as exc:
            raise _within("liveness", exc) from None
    return lv


def _file_option(where: str, value: str | None, folder: bool) -> str | None:
    if value is None:
        return None
    path = Path(value)
    if folder:
        bad = (path.exists() and not path.is_dir()) or not path.parent.is_dir()
    else:
        bad = path.is_dir() or not path.parent.is_dir()
    if bad:
        what = "a folder" if folder else "a file"
        raise ProblemError(where, f"must be {what} in an existing folder", value)
    return str(path)


def _checkpoint(ck: CheckpointConfig) -> CheckpointConfig:
    _count("checkpoint.every", ck.every, 1)
    _flag("checkpoint", ck, "resume")
    if ck.resume and not ck.folder:
        raise ProblemError("checkpoint.resume", "needs a checkpoint folder (--checkpoint-dir)")
    return replace(ck, folder=_file_option("checkpoint.folder", ck.folder, True))


def _outputs(out: OutputConfig) -> OutputConfig:
    _flag("outputs", out, "return_state")
    return replace(out, audit=_file_option("outputs.audit", out.audit, False))


def build_config(config: RunConfig | None = None, **options: Any) -> RunConfig:
    """Validate (and optionally override) a :class:`RunConfig`.

    Parameters
    ----------
    config : RunConfig, optional
        The starting point (the defaults when None).
    **options
        Sections (``emulation=EmulationConfig(...)`` or ``emulation={"time_scale": 2.0}``)
        or flat option names (:data:`FLAT_OPTIONS`: ``steps=10``, ``time_scale=2.0``).

    Raises
    ------
    ProblemError
        Naming the field by its dotted path, its value and the rule.
    """
    cfg = _apply(config or RunConfig(), options)
    return RunConfig(job=_job(cfg.job), training=_training(cfg.training),
                     emulation=_emulation(cfg.emulation), transport=_transport(cfg.transport),
                     liveness=_liveness(cfg.liveness), checkpoint=_checkpoint(cfg.checkpoint),
                     outputs=_outputs(cfg.outputs))
