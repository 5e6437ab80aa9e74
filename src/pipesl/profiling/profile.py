"""Profile a chain of torch modules into the SPEC ``model`` section (per sample).

For each unit, :func:`profile_model` runs the unit's forward and backward once on a batch (on
the CPU, in training mode) and records

* ``fwd_flops`` / ``bwd_flops``: :class:`torch.utils.flop_counter.FlopCounterMode` counts of
  matrix multiplications, convolutions and attention, FLOPs = 2 x multiply-accumulates.
  Element-wise work (BN, ReLU, softmax, pooling, adds) counts 0, the convention of the published
  MAC figures. The CPU attention kernel, which the counter does not know, gets torch's own
  scaled-dot-product formula (dense, as if unmasked), and a grouped convolution's backward is
  counted as twice its forward (torch 2.13 overcounts it). The first unit computes no input
  gradient, exactly as in training;
* ``out_bytes``: the unit's output; ``param_bytes``: its parameters (a parameter shared by two
  units, like GPT-2's tied embedding, counts in each, since each stage must hold it);
* ``act_bytes``: the storages a unit *holds* until its backward: its input (a stage keeps
  what it receives) and what it saves for backward
  (:func:`torch.autograd.graph.saved_tensors_hooks`), excluding parameters and buffers. Each
  storage counts once in the whole chain, in the *last* unit that holds it: a ReLU's output
  that the next unit's convolution saves counts in the next unit. This is the convention of
  ``tools/analytic_profiles.py``; summed over a stage it counts the stage's input, not the
  copy of its output that its last unit may also save.

Everything is divided by the batch size, per-batch constants too (BN's per-channel statistics
count whole at batch 1: up to 2 % of a deep ResNet block). ``input_bytes`` is one input sample.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.flop_counter import (
    FlopCounterMode,
    conv_flop_count,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

from pipesl.exceptions import ProblemError
from pipesl.models.chain import chain_units
from pipesl.models.loader import resolve_model
from pipesl.problem.types import ChainModel, Layer

__all__ = ["DTYPES", "flop_counter", "in_dtype", "parse_dtype", "profile", "profile_document",
           "profile_model"]

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
"""Dtype names accepted by :func:`parse_dtype` (``--dtype``)."""


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A ``torch.dtype`` from its name (``float32``, ``bfloat16``, ...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ProblemError("dtype", f"must be one of {', '.join(DTYPES)}", dtype) from None


def in_dtype(model: nn.Module, dtype: torch.dtype) -> Any:
    """``model`` itself when its float parameters are ``dtype``, else a converted copy."""
    if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
        return copy.deepcopy(model).to(dtype)
    return model


def _sdpa_cpu(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None,
              **kwargs: Any) -> int:
    return int(sdpa_flop_count(query, key, value))


def _sdpa_cpu_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any,
                       out_shape: Any = None, **kwargs: Any) -> int:
    return int(sdpa_backward_flop_count(grad_out, query, key, value))


def _conv_backward(grad_out: Any, x: Any, w: Any, _bias: Any, _stride: Any, _padding: Any,
                   _dilation: Any, transposed: bool, _output_padding: Any, _groups: int,
                   output_mask: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    # Each of grad_input and grad_weight costs as many MACs as the forward convolution. torch
    # 2.13's formula forgets the groups in grad_weight (G times too much for a grouped or
    # depthwise convolution; fixed upstream in pytorch/pytorch#183405).
    fwd = conv_flop_count(list(x), list(w), list(grad_out), transposed=transposed)
    return int(fwd * (bool(output_mask[0]) + bool(output_mask[1])))


_aten = torch.ops.aten
_CUSTOM_FLOPS: dict[Any, Callable[..., int]] = {_aten.convolution_backward: _conv_backward}
if hasattr(_aten, "_scaled_dot_product_flash_attention_for_cpu"):
    _CUSTOM_FLOPS[_aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu
if hasattr(_aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
    _CUSTOM_FLOPS[_aten._scaled_dot_product_flash_attention_for_cpu_backward] = \
        _sdpa_cpu_backward


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts the CPU scaled-dot-product attention.

    It also corrects the backward of grouped convolutions (see ``_conv_backward``).
    """
    return FlopCounterMode(display=False, custom_mapping=_CUSTOM_FLOPS)


def _storage_key(t: torch.Tensor) -> tuple[int, int] | None:
    try:
        storage = t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # tensor subclasses without storage
        return None
    return storage.data_ptr(), storage.nbytes()


class _HeldStorages:
    """Charges each storage a unit holds (its input, what it saves) to the last such unit."""

    def __init__(self, excluded: set[int]) -> None:
        self.excluded = excluded
        self.owner: dict[int, tuple[int, int]] = {}  # data_ptr -> (unit index, nbytes)
        self.keep: list[torch.Tensor] = []  # keep storages alive so addresses stay unique
        self.unit = 0

    def hold(self, t: torch.Tensor) -> torch.Tensor:
        """Charge ``t``'s storage to the current unit (also the pack hook)."""
        key = _storage_key(t)
        if key is not None and key[0] not in self.excluded and key[1] > 0:
            if key[0] not in self.owner:
                self.keep.append(t)
            self.owner[key[0]] = (self.unit, key[1])
        return t

    def bytes_per_unit(self, units: int) -> list[int]:
        """Bytes charged to each unit."""
        total = [0] * units
        for unit, nbytes in self.owner.values():
            total[unit] += nbytes
        return total


def _run_unit(name: str, unit: nn.Module, x: torch.Tensor, held: _HeldStorages,
              ) -> tuple[torch.Tensor, int, int]:
    """Forward and backward of one unit; returns (output, fwd FLOPs, bwd FLOPs)."""
    try:
        with saved_tensors_hooks(held.hold, lambda t: t), flop_counter() as fwd:
            y = unit(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProblemError(f"unit {name!r}", f"failed on an input of shape "
                           f"{tuple(x.shape)}: {first}") from exc
    if not isinstance(y, torch.Tensor):
        raise ProblemError(f"unit {name!r}", f"returned a {type(y).__name__}; every unit of a "
                           "chain must return one tensor")
    bwd_flops = 0
    if y.requires_grad:
        with flop_counter() as bwd:
            y.backward(torch.ones_like(y))
        bwd_flops = bwd.get_total_flops()
    return y.detach(), fwd.get_total_flops(), bwd_flops


def profile_model(model: nn.Sequential, example_input: torch.Tensor, *, name: str,
                  batch: int = 1, dtype: torch.dtype | str = torch.float32,
                  granularity: str = "block") -> ChainModel:
    """Profile ``model`` unit by unit into a :class:`~pipesl.problem.ChainModel`.

    Parameters
    ----------
    model : torch.nn.Sequential
        The chain; it is put in training mode and restored afterwards. When its float
        parameters are not ``dtype``, a converted copy is profiled.
    example_input : torch.Tensor
        ONE sample, without the batch dimension (e.g. ``(3, 224, 224)``, or ``(seq,)`` int64
        token ids); it is repeated ``batch`` times.
    name : str
        Model name written into the profile.
    batch : int
        Samples per measured batch; every figure is divided by it.
    dtype : torch.dtype or str
        Dtype of parameters and float inputs.
    granularity : {"block", "layer"}
        Units: the model's children, or plain ``nn.Sequential`` children opened into their
        layers (see :mod:`pipesl.models.chain`).

    Returns
    -------
    ChainModel
        Per-sample figures; layer names are the units' qualified names.

    Raises
    ------
    ProblemError
        A unit fails on its input (wrong input shape), or returns something else than one
        tensor; bad ``batch``, ``dtype`` or ``granularity``.

    Examples
    --------
    >>> import torch
    >>> from pipesl.models import get_model
    >>> m = profile_model(get_model("mlp-digits"), torch.zeros(64), name="mlp")
    >>> [layer.name for layer in m.layers], m.layers[0].fwd_flops
    (['fc1', 'fc2', 'fc3', 'head'], 16384.0)
    """
    if batch < 1:
        raise ProblemError("batch", "must be >= 1", batch)
    dt = parse_dtype(dtype)
    model = in_dtype(model, dt)
    units = chain_units(model, granularity)
    x = example_input.detach().unsqueeze(0).expand(batch, *example_input.shape)
    x = x.to(dt) if x.is_floating_point() else x
    x = x.contiguous()
    excluded = {t.untyped_storage().data_ptr()
                for t in (*model.parameters(), *model.buffers())}
    held = _HeldStorages(excluded)
    was_training = model.training
    model.train()
    rows: list[tuple[str, float, float, float, float]] = []
    try:
        for i, (unit_name, unit) in enumerate(units):
            held.unit = i
            xin = held.hold(x.detach().requires_grad_(i > 0 and x.is_floating_point()))
            y, fwd, bwd = _run_unit(unit_name, unit, xin, held)
            params = {id(p): p.numel() * p.element_size() for p in unit.parameters()}
            rows.append((unit_name, fwd, bwd, y.numel() * y.element_size(),
                         sum(params.values())))
            x = y
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    act = held.bytes_per_unit(len(units))
    layers = tuple(Layer(name=n, fwd_flops=fwd / batch, bwd_flops=bwd / batch,
                         out_bytes=out / batch, param_bytes=float(par), act_bytes=a / batch)
                   for (n, fwd, bwd, out, par), a in zip(rows, act, strict=True))
    input_bytes = example_input.numel() * (dt.itemsize if example_input.is_floating_point()
                                           else example_input.element_size())
    logger.info("profiled %s: %d units, %.3g fwd FLOPs per sample", name, len(layers),
                sum(layer.fwd_flops for layer in layers))
    return ChainModel(name=name, input_bytes=float(input_bytes), layers=layers)


def profile(ref: str, *, input_shape: tuple[int, ...] | None = None, batch: int = 1,
            dtype: torch.dtype | str = torch.float32, granularity: str = "block",
            **kwargs: Any) -> ChainModel:
    """Profile a zoo model or a user's ``package.module:factory`` by reference.

    Parameters
    ----------
    ref : str
        See :func:`pipesl.models.resolve_model`.
    input_shape : tuple of int, optional
        Per-sample input shape (default: the zoo entry's).
    batch, dtype, granularity
        As in :func:`profile_model`.
    **kwargs
        Passed to the zoo factory.

    Returns
    -------
    ChainModel
    """
    resolved = resolve_model(ref, input_shape=input_shape, **kwargs)
    return profile_model(resolved.model, resolved.sample, name=resolved.name, batch=batch,
                         dtype=dtype, granularity=granularity)


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def profile_document(model: ChainModel, *, description: str = "",
                     source: str = "") -> dict[str, Any]:
    """The SPEC ``model`` section of a profile, with integral figures written as integers.

    ``description`` and ``source`` (how to regenerate it) are optional provenance fields that
    :func:`pipesl.problem.parse.model_from_dict` accepts and the planner ignores.
    """
    doc: dict[str, Any] = {"name": model.name}
    if description:
        doc["description"] = description
    if source:
        doc["source"] = source
    doc["input_bytes"] = _plain(model.input_bytes)
    doc["layers"] = [{"name": x.name, "fwd_flops": _plain(x.fwd_flops),
                      "bwd_flops": _plain(x.bwd_flops), "out_bytes": _plain(x.out_bytes),
                      "param_bytes": _plain(x.param_bytes), "act_bytes": _plain(x.act_bytes)}
                     for x in model.layers]
    return doc
