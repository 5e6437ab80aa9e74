"""The zoo's registry: each model's name, default input, loss kind and synthetic batches.

Every zoo model is an ``nn.Sequential`` of named *units* (layers, or whole residual/transformer
blocks); a plan's 1-based layer ranges index these units, so ``len(get_model(name))`` equals the
number of layers of its profile (``granularity="block"``).

Examples
--------
>>> from pipesl.models import get_model, example_batch
>>> model = get_model("mlp-digits")
>>> [name for name, _ in model.named_children()]
['fc1', 'fc2', 'fc3', 'head']
>>> x, y = example_batch("mlp-digits", 4)
>>> tuple(model(x).shape), tuple(y.shape)
((4, 10), (4,))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pipesl.exceptions import ProblemError
from pipesl.models.gpt2 import gpt2
from pipesl.models.mobilenet import mobilenet_v2
from pipesl.models.resnet import resnet
from pipesl.models.small import cnn, mlp
from pipesl.models.vgg import vgg
from pipesl.models.vit import vit

__all__ = [
    "LossKind",
    "ModelSpec",
    "example_batch",
    "get_model",
    "list_models",
    "loss_fn",
    "model_spec",
]

LossKind = Literal["classification", "lm"]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry."""

    name: str
    """Registry name, e.g. ``resnet50-imagenet``."""
    factory: Callable[..., nn.Sequential]
    """Builds the model; keyword arguments are passed through :func:`get_model`."""
    input_shape: tuple[int, ...]
    """Default per-sample input shape: (C, H, W), (features,), or (seq,) of token ids."""
    loss: LossKind
    """``classification`` (targets: one class per sample) or ``lm`` (one token per position)."""
    num_classes: int
    """Output classes (the vocabulary for ``lm``)."""
    description: str
    """One line: architecture, dataset convention, reference."""
    aliases: tuple[str, ...] = field(default=())
    """Other names accepted by :func:`get_model`."""
    classes_arg: str = "num_classes"
    """The factory's keyword for the number of classes (``vocab_size`` for GPT-2)."""

    @property
    def takes_tokens(self) -> bool:
        """True when the input is integer token ids rather than floats."""
        return self.loss == "lm"


_IMAGENET = (3, 224, 224)
_CIFAR = (3, 32, 32)

_SPECS: tuple[ModelSpec, ...] = (
    *(ModelSpec(f"{d}-cifar", partial(vgg, d, cifar=True), _CIFAR, "classification", 10,
                f"{d.upper()} for CIFAR-10 (32x32), 512-512-10 classifier (chengyangfu)")
      for d in ("vgg11", "vgg16", "vgg19")),
    *(ModelSpec(f"{d}-imagenet", partial(vgg, d), _IMAGENET, "classification", 1000,
                f"{d.upper()} for ImageNet (224x224), torchvision layout (no BN)", (d,))
      for d in ("vgg11", "vgg16", "vgg19")),
    ModelSpec("resnet18-cifar", partial(resnet, 18, cifar=True), _CIFAR, "classification", 10,
              "ResNet-18, CIFAR stem (3x3/1 conv, no max-pool) for 32x32"),
    ModelSpec("resnet50-cifar", partial(resnet, 50, cifar=True), _CIFAR, "classification", 10,
              "ResNet-50 (v1.5 bottlenecks), CIFAR stem for 32x32"),
    ModelSpec("resnet18-imagenet", partial(resnet, 18), _IMAGENET, "classification", 1000,
              "ResNet-18, ImageNet stem (7x7/2 conv, max-pool), torchvision layout",
              ("resnet18",)),
    ModelSpec("resnet50-imagenet", partial(resnet, 50), _IMAGENET, "classification", 1000,
              "ResNet-50 v1.5 (stride on the 3x3 conv), torchvision layout", ("resnet50",)),
    ModelSpec("mobilenetv2-imagenet", mobilenet_v2, _IMAGENET, "classification", 1000,
              "MobileNetV2 (width 1.0) for ImageNet, torchvision layout",
              ("mobilenetv2", "mobilenet_v2")),
    ModelSpec("vit-b16-imagenet", vit, _IMAGENET, "classification", 1000,
              "ViT-B/16 for 224x224 ImageNet, torchvision layout", ("vit-b16", "vit_b_16")),
    ModelSpec("gpt2-small", gpt2, (128,), "lm", 50257,
              "GPT-2 small (124M, tied embeddings), causal LM; sample = one 128-token sequence",
              ("gpt2",), classes_arg="vocab_size"),
    ModelSpec("mlp-digits", mlp, (64,), "classification", 10,
              "4-unit MLP for scikit-learn's 8x8 digits (64 features, 10 classes)", ("mlp",)),
    ModelSpec("cnn-digits", cnn, (1, 8, 8), "classification", 10,
              "5-unit CNN for scikit-learn's 8x8 digits as 1x8x8 images", ("cnn",)),
)

_BY_NAME: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
_BY_NAME.update({alias: s for s in _SPECS for alias in s.aliases})


def list_models() -> list[ModelSpec]:
    """Every zoo entry, in registry order."""
    return list(_SPECS)


def model_spec(name: str) -> ModelSpec:
    """The zoo entry called ``name`` (or an alias of it).

    Raises
    ------
    ProblemError
        ``name`` is not in the zoo; the message lists the valid names.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        names = ", ".join(s.name for s in _SPECS)
        raise ProblemError("model", f"is not a zoo model (zoo: {names}; or give "
                           "'package.module:factory' for your own)", name) from None


def get_model(name: str, **kwargs: Any) -> nn.Sequential:
    """Build the zoo model ``name`` as an ``nn.Sequential`` of named units.

    Parameters
    ----------
    name : str
        A name or alias from :func:`list_models` (``pipesl models``).
    **kwargs
        Passed to the architecture's factory, e.g. ``num_classes=100`` for a classifier or
        ``depth=2, dim=64`` for a small GPT-2.

    Returns
    -------
    torch.nn.Sequential
        In training mode, on the current default device and dtype.
    """
    return model_spec(name).factory(**kwargs)


def example_batch(name: str, batch: int, *, input_shape: tuple[int, ...] | None = None,
                  num_classes: int | None = None, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A synthetic batch ``(inputs, targets)`` for the zoo model ``name``.

    Parameters
    ----------
    name : str
        Zoo name.
    batch : int
        Number of samples (the first dimension of both tensors).
    input_shape : tuple of int, optional
        Per-sample shape; default the model's (for ``lm``, ``(seq,)``).
    num_classes : int, optional
        Classes (vocabulary for ``lm``) to draw targets from; default the model's.
    seed : int
        Seed of a private generator (the global RNG is untouched).
    dtype : torch.dtype
        Dtype of float inputs (token ids are always int64).

    Returns
    -------
    inputs, targets : torch.Tensor
        Classification: ``(batch, *shape)`` floats and ``(batch,)`` class ids. LM: ``(batch, seq)``
        token ids and ``(batch, seq)`` next tokens.
    """
    spec = model_spec(name)
    shape = tuple(input_shape) if input_shape is not None else spec.input_shape
    classes = num_classes or spec.num_classes
    gen = torch.Generator().manual_seed(seed)
    if spec.takes_tokens:
        if len(shape) != 1:
            raise ProblemError("input_shape", f"must be (seq,) for the language model {name}",
                               shape)
        tokens = torch.randint(classes, (batch, shape[0] + 1), generator=gen)
        return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    inputs = torch.randn((batch, *shape), generator=gen, dtype=dtype)
    return inputs, torch.randint(classes, (batch,), generator=gen)


def loss_fn(kind: LossKind) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a loss kind: mean cross-entropy over samples (and positions)."""
    if kind == "lm":
        return lambda logits, targets: F.cross_entropy(logits.flatten(0, -2), targets.flatten())
    return F.cross_entropy
