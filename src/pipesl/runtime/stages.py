"""The model side of the runtime: which model, its units, a stage's slice and the loss.

The plan's 1-based layer ranges index the model's *units* (the children of the zoo's or the
user's ``nn.Sequential``, see :mod:`pipesl.models`); so the model must have exactly as many
units as the problem's profile has layers.

Initial weights: every compute process seeds torch's generator with the run's seed, builds the
chain on the CPU and keeps only its own units (the others are freed before training). Building
the whole chain once is what makes a stage's initial weights identical to those of the same
units in a single-process run with the same seed, which :mod:`pipesl.runtime.reference` and the
equivalence tests rely on; the model is never *held* anywhere but in its stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from pipesl.exceptions import ProblemError
from pipesl.models import LossKind, as_chain, loss_fn, model_spec, resolve_model
from pipesl.problem.types import Problem

__all__ = [
    "ModelInfo",
    "Stage",
    "build_chain",
    "default_model_ref",
    "inspect_model",
    "micro_batch_loss",
    "stage_module",
]


def default_model_ref(problem: Problem, model: str | None) -> str:
    """``model`` when given, else the zoo model named like the problem's profile.

    Raises
    ------
    ProblemError
        When no model is given and the profile's name is not in the zoo.
    """
    if model:
        return model
    name = problem.model.name
    try:
        return model_spec(name).name
    except ProblemError:
        raise ProblemError("--model", f"is required: the problem's model {name!r} is not a zoo "
                           "model (see `pipesl models`); give a zoo name or "
                           "'package.module:factory'") from None


@dataclass(frozen=True)
class ModelInfo:
    """What the launcher learns about a model before spawning any worker."""

    ref: str
    """The reference every worker resolves again (zoo name or module:factory)."""
    num_units: int
    sample_shape: tuple[int, ...]
    """Per-sample input shape."""
    num_classes: int
    """Output classes (the vocabulary of a language model)."""
    loss: LossKind
    zoo_name: str | None
    """Zoo name when the model is from the zoo."""
    unit_shapes: tuple[tuple[int, ...], ...] = ()
    """Per-sample output shape of every unit (``unit_shapes[i]``: unit i's, 1-based; index 0
    is the input's): the shape of every activation and gradient that crosses a hop, so that
    messages need no header."""


def _cut(chain: nn.Sequential, num_layers: int | None) -> nn.Sequential:
    """``chain`` at the granularity whose unit count is ``num_layers`` (block, then layer)."""
    if num_layers is None or len(chain) == num_layers:
        return chain
    finer = as_chain(chain, "layer")
    return finer if len(finer) == num_layers else chain


def build_chain(ref: str, seed: int, dtype: torch.dtype = torch.float32,
                num_layers: int | None = None) -> nn.Sequential:
    """The model's chain, initialised under ``torch.manual_seed(seed)``, in ``dtype``.

    The units are the model's children (the profiler's ``block`` granularity) or, when that
    does not give ``num_layers`` units but opening nested ``nn.Sequential`` children does,
    those (``layer`` granularity).
    """
    torch.manual_seed(seed)
    chain = _cut(resolve_model(ref).model, num_layers)
    return chain.to(dtype)


def stage_module(chain: nn.Sequential, first_layer: int, last_layer: int) -> nn.Sequential:
    """Units ``first_layer..last_layer`` (1-based, inclusive) of ``chain``; names are kept,
    so a stage's ``state_dict`` keys are the full model's."""
    stage = chain[first_layer - 1:last_layer]
    assert isinstance(stage, nn.Sequential)
    return stage


def inspect_model(problem: Problem, ref: str | None) -> ModelInfo:
    """Resolve the model once and check that its units match the problem's layers.

    Raises
    ------
    ProblemError
        Unknown model, a user factory that fails, or a unit count that differs from the
        profile's number of layers.
    """
    ref = default_model_ref(problem, ref)
    zoo: str | None = None
    if ":" not in ref:
        spec = model_spec(ref)
        zoo = spec.name
    resolved = resolve_model(ref)
    layers = problem.model.num_layers
    chain = _cut(resolved.model, layers)
    n = len(chain)
    if n != layers:
        raise ProblemError("model", f"has {n} units but the problem's profile "
                           f"{problem.model.name!r} has {layers} layers; the plan's layer "
                           "ranges index the units, so they must match (profile the model with "
                           "`pipesl profile`)", ref)
    sample = resolved.sample
    was = chain.training
    chain.eval()
    shapes = [tuple(sample.shape)]
    with torch.no_grad():
        out = sample.unsqueeze(0)
        for unit in chain:
            out = unit(out)
            shapes.append(tuple(out.shape[1:]))
    chain.train(was)
    if zoo is not None and model_spec(zoo).loss == "lm":
        classes = model_spec(zoo).num_classes
    else:
        if out.ndim != 2:
            raise ProblemError("model", f"outputs shape {tuple(out.shape)} per batch; the "
                               "runtime trains classifiers (batch, classes) and the zoo's "
                               "language models", ref)
        classes = int(out.shape[1])
    return ModelInfo(ref, n, tuple(sample.shape), classes, resolved.loss, zoo, tuple(shapes))


def micro_batch_loss(kind: LossKind, batch_size: int
                     ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of one micro-batch, scaled so that the micro-batches sum to the batch mean.

    ``loss_fn`` is a mean over the micro-batch's n samples; multiplying by ``n / B`` makes the
    sum over micro-batches the mean over the mini-batch, so gradients accumulated over the
    micro-batches equal the full-batch gradient.
    """
    base = loss_fn(kind)

    def scaled(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return base(output, target) * (output.shape[0] / batch_size)

    return scaled


class Stage:
    """A compute stage: its piece of the model, its forward and backward passes, its
    optimiser (SGD) and, on the last stage when the labels stay on it, the loss.

    Parameters
    ----------
    module : nn.Module
        Units ``first_layer..last_layer`` of the chain (:func:`stage_module`).
    lr, momentum : float
        SGD's.
    loss : callable, optional
        ``loss(output, labels)`` of one micro-batch (:func:`micro_batch_loss`) when the
        stage's forward pass ends in the loss.
    input_grad : bool
        Compute the gradient of the stage's input (every stage but the first).
    """

    def __init__(self, module: nn.Module, lr: float, momentum: float,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 input_grad: bool = True) -> None:
        self.module = module
        self.input_grad = input_grad
        self.module.train()
        params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = (torch.optim.SGD(params, lr=lr, momentum=momentum)
                          if params else None)
        self.loss = loss
        self._saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, m: int, x: torch.Tensor, labels: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Micro-batch ``m``'s forward pass: its output (the loss when ``labels`` is given),
        kept with the input for the backward pass."""
        if self.input_grad:
            x.requires_grad_(True)
        out = self.module(x)
        if labels is not None:
            assert self.loss is not None
            out = self.loss(out, labels)
        self._saved[m] = (x, out)
        return out

    def backward(self, m: int, grad: torch.Tensor | None) -> torch.Tensor | None:
        """Micro-batch ``m``'s backward pass from the gradient of its output (None: its
        output is the loss); returns the gradient of its input (None on a first stage)."""
        x, out = self._saved.pop(m)
        if out.requires_grad:  # a first stage without parameters has no graph
            out.backward(grad)
        return x.grad

    def zero_grad(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """One optimiser step over the gradients accumulated on every micro-batch."""
        if self.optimizer is not None:
            self.optimizer.step()
