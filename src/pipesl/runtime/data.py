"""Training data for the runtime: deterministic mini-batches, indexed by iteration.

Every process that needs data (the source for inputs, the loss node for labels when they stay
there) builds the same :class:`BatchSource` from a picklable :class:`DataSpec` and asks for
batch ``i`` of iteration ``i``: the source uses only the inputs, a label-holding node only the
labels, so neither ever receives the other's part over the network.

Three kinds: ``synthetic`` (seeded random inputs and labels, per iteration), ``digits``
(scikit-learn's bundled 8x8 digits, 1797 samples, standardised), and ``dataset`` (a user's
``torch.utils.data.Dataset`` of ``(input, label)`` pairs, passed through the Python API).
Real data sets are shuffled once per epoch with a seeded permutation and read in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pipesl.exceptions import ProblemError

__all__ = ["BatchSource", "DataSpec", "make_batches"]


@dataclass(frozen=True)
class DataSpec:
    """What data to train on; picklable, so that spawned workers can rebuild the batches."""

    kind: str
    """``synthetic``, ``digits`` or ``dataset``."""
    batch_size: int
    """B, samples per iteration."""
    sample_shape: tuple[int, ...]
    """Per-sample input shape of the model."""
    num_classes: int
    """Classes (the vocabulary for a language model)."""
    tokens: bool = False
    """Inputs are token ids and labels are next tokens (language models)."""
    zoo_name: str | None = None
    """Zoo model name: synthetic batches then come from :func:`pipesl.models.example_batch`."""
    seed: int = 0
    dtype: str = "float32"
    """Dtype of float inputs."""
    dataset: Any = None
    """The user's ``Dataset`` (kind ``dataset`` only)."""


class BatchSource:
    """Mini-batch ``i`` of the run, the same in every process.

    Parameters
    ----------
    spec : DataSpec
    """

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec
        self._dtype = getattr(torch, spec.dtype)
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None
        self._get: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
        if spec.kind == "digits":
            self._x, self._y = _digits(spec)
        elif spec.kind == "dataset":
            self._get = _dataset_getter(spec.dataset)
        elif spec.kind != "synthetic":
            raise ProblemError("data", "must be synthetic, digits or a Dataset", spec.kind)

    @property
    def num_samples(self) -> int | None:
        """Samples in the data set (None for synthetic data)."""
        if self._x is not None:
            return int(self._x.shape[0])
        if self.spec.kind == "dataset":
            return len(self.spec.dataset)
        return None

    def _indices(self, iteration: int) -> torch.Tensor:
        n = self.num_samples
        assert n is not None
        b = self.spec.batch_size
        positions = torch.arange(iteration * b, (iteration + 1) * b)
        epochs = positions // n
        out = torch.empty(b, dtype=torch.long)
        for e in torch.unique(epochs).tolist():
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(
                self.spec.seed * 1_000_003 + e))
            sel = epochs == e
            out[sel] = perm[positions[sel] % n]
        return out

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(inputs, labels)`` of iteration ``iteration`` (0-based), B samples each."""
        spec = self.spec
        if spec.kind == "synthetic":
            return self._synthetic(iteration)
        idx = self._indices(iteration)
        if self._x is not None and self._y is not None:
            return self._x[idx], self._y[idx]
        assert self._get is not None
        pairs = [self._get(i) for i in idx.tolist()]
        x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        y = torch.stack([torch.as_tensor(p[1]) for p in pairs])
        if x.is_floating_point():
            x = x.to(self._dtype)
        return x, y

    def inputs(self, iteration: int) -> torch.Tensor:
        """The inputs of batch ``iteration`` (what the source computes on)."""
        return self.batch(iteration)[0]

    def labels(self, iteration: int) -> torch.Tensor:
        """The labels of batch ``iteration`` (what the loss node compares with)."""
        return self.batch(iteration)[1]

    def _synthetic(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.spec
        seed = spec.seed * 1_000_003 + iteration
        if spec.zoo_name is not None:
            from pipesl.models import example_batch

            return example_batch(spec.zoo_name, spec.batch_size, input_shape=spec.sample_shape,
                                 num_classes=spec.num_classes, seed=seed, dtype=self._dtype)
        gen = torch.Generator().manual_seed(seed)
        if spec.tokens:
            t = torch.randint(spec.num_classes, (spec.batch_size, spec.sample_shape[0] + 1),
                              generator=gen)
            return t[:, :-1].contiguous(), t[:, 1:].contiguous()
        x = torch.randn((spec.batch_size, *spec.sample_shape), generator=gen, dtype=self._dtype)
        return x, torch.randint(spec.num_classes, (spec.batch_size,), generator=gen)


def _digits(spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    if spec.tokens:
        raise ProblemError("data", "digits are images; the model takes token ids", "digits")
    if math.prod(spec.sample_shape) != 64:
        raise ProblemError("data", f"digits are 64 pixels (8x8) per sample; the model takes "
                           f"inputs of shape {spec.sample_shape}", "digits")
    if spec.num_classes < 10:
        raise ProblemError("data", f"digits have 10 classes; the model outputs "
                           f"{spec.num_classes}", "digits")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is in the torch extra
        raise ProblemError("data", "needs scikit-learn (pip install 'pipesl[torch]')",
                           "digits") from exc
    d = load_digits()
    pixels = d.data / 16.0
    pixels = (pixels - pixels.mean()) / pixels.std()  # zero mean, unit variance overall
    x = torch.as_tensor(pixels, dtype=getattr(torch, spec.dtype))
    return x.reshape(-1, *spec.sample_shape), torch.as_tensor(d.target, dtype=torch.long)


def _dataset_getter(dataset: Any) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise ProblemError("dataset", "must be a map-style torch Dataset with __len__ and "
                           "__getitem__ returning (input, label)", type(dataset).__name__)
    if len(dataset) < 1:
        raise ProblemError("dataset", "is empty")

    def get(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise ProblemError("dataset", f"item {i} is not an (input, label) pair",
                               type(item).__name__)
        return item[0], item[1]

    return get


def make_batches(spec: DataSpec) -> BatchSource:
    """The :class:`BatchSource` of ``spec`` (validates it)."""
    return BatchSource(spec)
