"""Options of a training run, as one validated dataclass (:class:`RunConfig`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from pipesl.exceptions import ProblemError
from pipesl.runtime.faults import parse_fault
from pipesl.schedules import get_schedule

__all__ = ["BACKENDS", "DATA_KINDS", "DTYPES", "EMULATE_PARTS", "RunConfig", "build_config",
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
class RunConfig:
    """How to train: steps, schedule, emulation, data, optimiser and process-group options.

    Build one with :func:`build_config`, which validates every field.
    """

    steps: int = 3
    """Training iterations (mini-batches); one optimiser step each."""
    schedule: str | None = None
    """``gpipe``, ``1f1b`` or ``1f1b-net``; None: the problem's ``training.schedule``."""
    emulate: bool = True
    """Pad every pass to its planned duration and pace every link to its bandwidth and latency
    (SPEC section 3), so that local processes behave like the problem's devices and network.
    Turn off on real devices and networks. :func:`build_config` also takes one of the
    :attr:`emulation` strings here (``"none"`` turns it off)."""
    emulation: str = "links,devices"
    """What :attr:`emulate` emulates: ``links,devices``, ``links`` or ``devices`` — e.g.
    ``devices`` when the kernel shapes real links (netem) and only the devices need their
    planned speed (:mod:`pipesl.runtime.emulator`)."""
    pace_links: bool = True
    """Under emulation, pace the links too. Turn off when the kernel's traffic shaper (the
    testbed, :mod:`pipesl.testbed`) or a real network enforces the bandwidth: passes are
    still padded, transfers leave as soon as they are ready, and the virtual clock is off.
    The same as :attr:`emulation` without ``links`` (:func:`build_config` keeps both
    in agreement)."""
    latency_padding: tuple[tuple[str, str, int], ...] = ()
    """``(u, v, bytes)``: every activation and gradient over the link u-v carries this many
    bytes of padding, so that a kernel-shaped link spends its per-transfer latency on the
    wire (the cost model's x = 8 * n * out_bytes / bandwidth + latency occupies the link)."""
    virtual_clock: bool = True
    """Under emulation, start every pass and transfer from the emulated time its input became
    available (carried by the message) instead of the moment the process got it, so that
    loopback delivery and thread scheduling on an oversubscribed host do not add to the
    emulated network's times wherever the next task can absorb them. Needs one clock for
    every process: used only when all ranks run on one host."""
    time_scale: float = 1.0
    """Multiplies every emulated duration (and the predicted times reported beside the
    measured ones). Raise it when the real compute of a pass does not fit in its planned
    duration on this machine."""
    backend: str = "gloo"
    """torch.distributed backend of the data plane: ``gloo`` (CPU) or ``nccl`` (CUDA)."""
    data: str = "synthetic"
    """``synthetic`` (random inputs and labels, seeded per iteration) or ``digits``
    (scikit-learn's bundled 8x8 digits). A Python ``Dataset`` can be passed to
    :func:`pipesl.runtime.train` instead."""
    model: str | None = None
    """Zoo name or ``package.module:factory``; None: the zoo model named like the problem's
    model profile."""
    seed: int = 0
    """Seeds the model's initial weights and the data order."""
    lr: float = 0.05
    """SGD learning rate."""
    momentum: float = 0.0
    """SGD momentum."""
    dtype: str = "float32"
    """Parameter and activation dtype (``float64`` for bit-for-bit comparisons)."""
    timeout_s: float = 120.0
    """Longest wait for any message or collective before the run fails."""
    host: str = "127.0.0.1"
    """Address of the local rendezvous; the default binds every socket to loopback."""
    return_state: bool = False
    """Collect the trained parameters of every stage into the result (tests, checkpoints)."""
    hang_timeout_s: float = 15.0
    """Local runs: the launcher stops the job when a worker has been busy on one task (a
    pass, an optimiser step, a checkpoint) this long, or when every worker has been waiting
    without any progress this long (see :mod:`pipesl.runtime.liveness`). Under torchrun each
    rank applies the first rule to itself. Must exceed the longest emulated pass or
    transfer."""
    checkpoint_dir: str | None = None
    """Save every stage's units and optimiser state here (see
    :mod:`pipesl.runtime.checkpoint`); None: no checkpoints."""
    checkpoint_every: int = 10
    """Save after every this many iterations (and after the last one)."""
    resume: bool = False
    """Start from the newest complete checkpoint in ``checkpoint_dir`` (any plan)."""
    audit: str | None = None
    """Test mode: record every tensor that crosses a hop into this JSON-lines file and check
    that raw inputs (and, with ``labels_at``, labels) never leave their node (see
    :mod:`pipesl.runtime.audit`)."""
    fault: str | None = None
    """Test mode: make a worker fail, e.g. ``kill:node=a,iteration=2,phase=F`` (see
    :mod:`pipesl.runtime.faults`); None: the ``PIPESL_FAULT`` environment variable, if set."""

    @property
    def emulated(self) -> frozenset[str]:
        """The emulated parts: ``links``, ``devices``, both or none."""
        return parse_emulate(self.emulation) if self.emulate else frozenset()

    def padding_of(self, node: str) -> dict[str, int]:
        """``{neighbour: bytes}`` of :attr:`latency_padding` on the links of ``node``."""
        out: dict[str, int] = {}
        for u, v, size in self.latency_padding:
            if node in (u, v):
                out[v if node == u else u] = size
        return out

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready mapping."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_options(self, **changes: Any) -> RunConfig:
        """A validated copy with some fields changed."""
        return build_config(replace(self, **changes))


def build_config(config: RunConfig | None = None, **options: Any) -> RunConfig:
    """Validate (and optionally override) a :class:`RunConfig`.

    Raises
    ------
    ProblemError
        Naming the option, its value and the rule.
    """
    cfg = replace(config or RunConfig(), **options)
    if isinstance(cfg.emulate, str):
        cfg = replace(cfg, emulate=cfg.emulate.strip() != "none",
                      emulation=cfg.emulation if cfg.emulate.strip() == "none"
                      else cfg.emulate)
    try:
        parts = parse_emulate(cfg.emulation)
    except ValueError:
        raise ProblemError("emulate", "must be links,devices, links, devices or none",
                           cfg.emulation) from None
    if not isinstance(cfg.emulate, bool):
        raise ProblemError("emulate", "must be true, false or links,devices, links, devices, "
                           "none", cfg.emulate)
    if not isinstance(cfg.pace_links, bool):
        raise ProblemError("pace_links", "must be true or false", cfg.pace_links)
    if not cfg.pace_links:  # the testbed's switch: the kernel shapes the links
        parts = parts - {"links"}
    if not parts:
        cfg = replace(cfg, emulate=False, emulation="links,devices")
    else:
        cfg = replace(cfg, emulation=",".join(p for p in EMULATE_PARTS if p in parts),
                      pace_links="links" in parts)
    if isinstance(cfg.steps, bool) or not isinstance(cfg.steps, int) or cfg.steps < 1:
        raise ProblemError("steps", "must be an integer >= 1", cfg.steps)
    if cfg.schedule is not None:
        cfg = replace(cfg, schedule=get_schedule(cfg.schedule).name)
    for name in ("time_scale", "lr", "timeout_s", "hang_timeout_s"):
        value = getattr(cfg, name)
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ProblemError(name, "must be a positive finite number", value)
    if not isinstance(cfg.momentum, int | float) or not 0 <= cfg.momentum < 1:
        raise ProblemError("momentum", "must be in [0, 1)", cfg.momentum)
    if cfg.backend not in BACKENDS:
        raise ProblemError("backend", f"must be one of {', '.join(BACKENDS)}", cfg.backend)
    if cfg.data not in DATA_KINDS:
        raise ProblemError("data", f"must be one of {', '.join(DATA_KINDS)}", cfg.data)
    if cfg.dtype not in DTYPES:
        raise ProblemError("dtype", f"must be one of {', '.join(DTYPES)}", cfg.dtype)
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool) or cfg.seed < 0:
        raise ProblemError("seed", "must be a non-negative integer", cfg.seed)
    if not cfg.host or not isinstance(cfg.host, str):
        raise ProblemError("host", "must be a host name or address", cfg.host)
    every = cfg.checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ProblemError("checkpoint_every", "must be an integer >= 1", every)
    if cfg.resume and not cfg.checkpoint_dir:
        raise ProblemError("resume", "needs a checkpoint folder (--checkpoint-dir)")
    for name in ("checkpoint_dir", "audit"):
        value = getattr(cfg, name)
        if value is not None:
            path = Path(value)
            if name == "checkpoint_dir":
                bad = (path.exists() and not path.is_dir()) or not path.parent.is_dir()
            else:
                bad = path.is_dir() or not path.parent.is_dir()
            if bad:
                what = "a folder" if name == "checkpoint_dir" else "a file"
                raise ProblemError(name, f"must be {what} in an existing folder", value)
            cfg = replace(cfg, **{name: str(path)})
    padding = []
    for entry in cfg.latency_padding:
        if (not isinstance(entry, tuple | list) or len(entry) != 3
                or not all(isinstance(e, str) and e for e in entry[:2])
                or isinstance(entry[2], bool) or not isinstance(entry[2], int) or entry[2] < 0):
            raise ProblemError("latency_padding", "must list (node, node, bytes >= 0) triples",
                               entry)
        padding.append((entry[0], entry[1], entry[2]))
    cfg = replace(cfg, latency_padding=tuple(padding))
    if cfg.fault is not None:
        parse_fault(cfg.fault)
    return cfg
