"""Speed calibration: time a model on this machine and fit the SPEC node figures.

For every batch size b, the forward + backward pass of each unit (on its real input, as in a
pipeline stage) and of the whole model is timed: ``warmup`` untimed runs, then the median of
``repeats`` timed runs; the repeats cycle through all batch sizes so that a burst of load on
a shared machine spreads over the whole fit. A least-squares line ``t = alpha * b + beta`` is
fitted per unit and overall, and read in the SPEC cost model's terms (a stage takes
``b * flops_per_sample / F + 2 * o``):

* sustained FLOP/s  ``F = (fwd + bwd FLOPs per sample) / alpha``,
* per-pass overhead ``o = beta / 2`` (one forward and one backward pass per micro-batch).

The node entry uses the whole-model fit. Timings use torch's current thread count
(:func:`torch.set_num_threads`), which is reported.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pipesl.cost import flops_from_alpha, overhead_from_beta, training_flops
from pipesl.exceptions import ProblemError, RuntimeSetupError
from pipesl.models.chain import chain_units
from pipesl.profiling.profile import in_dtype, parse_dtype, profile_model

__all__ = ["AffineFit", "Calibration", "UnitTiming", "calibrate", "fit_affine",
           "physical_memory"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""``progress(done, total, what)``, called after each timed step."""


@dataclass(frozen=True)
class AffineFit:
    """A least-squares line ``t = alpha * b + beta`` and how well it fits."""

    alpha: float
    """Seconds per sample (slope)."""
    beta: float
    """Seconds per batch independent of its size (intercept)."""
    r2: float
    """Coefficient of determination (1 = perfect)."""
    max_rel_residual: float
    """Largest ``|t - fit| / t`` over the measured points."""

    def predict(self, b: float) -> float:
        """Fitted time of a batch of ``b`` samples."""
        return self.alpha * b + self.beta


def fit_affine(batch_sizes: Sequence[float], seconds: Sequence[float]) -> AffineFit:
    """Fit ``seconds = alpha * batch_size + beta`` by least squares (numpy).

    Examples
    --------
    >>> fit = fit_affine([1, 2, 4], [0.3, 0.5, 0.9])
    >>> round(fit.alpha, 6), round(fit.beta, 6), round(fit.r2, 6)
    (0.2, 0.1, 1.0)
    """
    b = np.asarray(batch_sizes, dtype=float)
    t = np.asarray(seconds, dtype=float)
    if b.shape != t.shape or len(set(b.tolist())) < 2:
        raise ProblemError("batch_sizes", "need at least two different batch sizes to fit "
                           "t = alpha * b + beta", list(batch_sizes))
    design = np.column_stack([b, np.ones_like(b)])
    (alpha, beta), *_ = np.linalg.lstsq(design, t, rcond=None)
    residual = t - (alpha * b + beta)
    ss_res = float(residual @ residual)
    ss_tot = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)
    rel = np.abs(residual) / np.where(t > 0, t, np.inf)
    return AffineFit(float(alpha), float(beta), r2, float(rel.max()))


@dataclass(frozen=True)
class UnitTiming:
    """Timings of one unit (or of the whole model) and their fit."""

    name: str
    flops: float
    """Forward + backward FLOPs per sample (from the profiler)."""
    seconds: tuple[float, ...]
    """Median forward + backward seconds at each batch size."""
    fit: AffineFit

    @property
    def flops_per_s(self) -> float | None:
        """Sustained FLOP/s ``flops / alpha``; None when the slope is not positive."""
        return flops_from_alpha(self.flops, self.fit.alpha) if self.fit.alpha > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"name": self.name, "flops": self.flops, "seconds": list(self.seconds),
                "alpha_s": self.fit.alpha, "beta_s": self.fit.beta,
                "flops_per_s": self.flops_per_s, "r2": self.fit.r2,
                "max_rel_residual": self.fit.max_rel_residual}


@dataclass(frozen=True)
class Calibration:
    """The result of :func:`calibrate`: a SPEC node entry and the measurements behind it."""

    node_id: str
    model: str
    batch_sizes: tuple[int, ...]
    repeats: int
    threads: int
    memory: float | None
    """Physical memory of this machine in bytes (None when unknown)."""
    total: UnitTiming
    """The whole model's forward + backward."""
    units: tuple[UnitTiming, ...]

    @property
    def flops(self) -> float:
        """Sustained training FLOP/s of this machine (whole-model fit)."""
        return flops_from_alpha(self.total.flops, self.total.fit.alpha)

    @property
    def overhead(self) -> float:
        """Seconds of fixed cost per forward and per backward pass (``beta / 2``, >= 0)."""
        return overhead_from_beta(self.total.fit.beta)

    def node_entry(self) -> dict[str, Any]:
        """The SPEC node entry (``id``, ``flops``, ``memory``, ``overhead``, ``compute``)."""
        entry: dict[str, Any] = {"id": self.node_id, "flops": self.flops}
        if self.memory is not None:
            entry["memory"] = self.memory
        entry.update(overhead=self.overhead, compute=True)
        return entry

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: the node entry, the settings and every fit."""
        return {"node": self.node_entry(), "model": self.model,
                "batch_sizes": list(self.batch_sizes), "repeats": self.repeats,
                "threads": self.threads, "total": self.total.to_dict(),
                "units": [u.to_dict() for u in self.units]}


def physical_memory() -> float | None:
    """Bytes of physical memory (``os.sysconf``, else ``/proc/meminfo``), or None."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return None


def _timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _fwd_bwd(module: nn.Module, x: torch.Tensor, needs_grad: bool) -> Callable[[], None]:
    def step() -> None:
        y = module(x.detach().requires_grad_(needs_grad))
        if y.requires_grad:
            y.backward(torch.ones_like(y))
    return step


def calibrate(model: nn.Sequential, sample: torch.Tensor, *, name: str,
              batch_sizes: Sequence[int] = (1, 2, 4, 8, 16), repeats: int = 5,
              warmup: int = 1, granularity: str = "block",
              dtype: torch.dtype | str = torch.float32, node_id: str | None = None,
              progress: Progress | None = None) -> Calibration:
    """Time ``model`` on this machine and fit the SPEC node figures.

    Parameters
    ----------
    model : torch.nn.Sequential
        The chain to time (put in training mode, restored afterwards; a converted copy is
        timed when its parameters are not ``dtype``).
    sample : torch.Tensor
        One input sample without the batch dimension.
    name : str
        Model name for the report.
    batch_sizes : sequence of int
        At least two different sizes.
    repeats, warmup : int
        Timed runs (the median is kept) and untimed runs before them.
    granularity : {"block", "layer"}
        Which units are timed one by one.
    dtype : torch.dtype or str
        Parameter and input dtype.
    node_id : str, optional
        Id of the node entry; default the host name.
    progress : callable, optional
        ``progress(done, total, what)`` after each timed step (the CLI draws a bar with it).

    Returns
    -------
    Calibration

    Raises
    ------
    RuntimeSetupError
        The whole-model time did not grow with the batch size, so no FLOP/s can be derived.
    """
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes or min(sizes) < 1:
        raise ProblemError("batch_sizes", "must be positive integers", list(batch_sizes))
    if repeats < 1 or warmup < 0:
        raise ProblemError("repeats", "must be >= 1 (and warmup >= 0)", repeats)
    dt = parse_dtype(dtype)
    model = in_dtype(model, dt)
    profiled = profile_model(model, sample, name=name, dtype=dt, granularity=granularity)
    units = chain_units(model, granularity)
    # steps[k][j]: the step of unit j (j = len(units): the whole model) at batch size k.
    steps: list[list[Callable[[], None]]] = []
    with torch.no_grad():
        for b in sizes:
            x0 = sample.unsqueeze(0).expand(b, *sample.shape).contiguous()
            x = x0 = x0.to(dt) if x0.is_floating_point() else x0
            row = []
            for i, (_, unit) in enumerate(units):
                row.append(_fwd_bwd(unit, x, i > 0 and x.is_floating_point()))
                x = unit(x)
            steps.append([*row, _fwd_bwd(model, x0, False)])
    samples = [[[0.0] * repeats for _ in row] for row in steps]
    total_steps, done = repeats * len(sizes) * (len(units) + 1), 0
    was_training = model.training
    model.train()
    try:
        for row in steps:
            for step in row:
                for _ in range(warmup):
                    step()
        # Repeats go round all batch sizes, so that a burst of load on a shared machine
        # spreads over the whole fit instead of shifting one point.
        for r in range(repeats):
            for k, row in enumerate(steps):
                for j, step in enumerate(row):
                    samples[k][j][r] = _timed(step)
                    done += 1
                    if progress:
                        what = units[j][0] if j < len(units) else "whole model"
                        progress(done, total_steps, f"repeat {r + 1}: b={sizes[k]} {what}")
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    medians = [[statistics.median(samples[k][j]) for k in range(len(sizes))]
               for j in range(len(units) + 1)]
    per_unit, whole = medians[:-1], medians[-1]
    timings = tuple(
        UnitTiming(layer.name, training_flops([layer]), tuple(secs),
                   fit_affine(sizes, secs))
        for layer, secs in zip(profiled.layers, per_unit, strict=True))
    flops = sum(t.flops for t in timings)
    total = UnitTiming("total", flops, tuple(whole), fit_affine(sizes, whole))
    if total.fit.alpha <= 0 or not math.isfinite(total.fit.alpha):
        raise RuntimeSetupError(
            f"calibration of {name}: the time did not grow with the batch size (slope "
            f"{total.fit.alpha:.3g} s/sample); use larger batch sizes or a larger model")
    result = Calibration(node_id or socket.gethostname(), name, sizes, repeats,
                         torch.get_num_threads(), physical_memory(), total, timings)
    logger.info("calibrated %s: %.3g FLOP/s, overhead %.3g s, R^2 %.4f", name, result.flops,
                result.overhead, total.fit.r2)
    return result
