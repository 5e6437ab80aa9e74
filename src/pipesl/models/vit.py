"""ViT-B/16 (Dosovitskiy et al., 2021) as a chain: embedding, 12 encoder blocks, head.

Units: ``embed`` (16x16/16 patch convolution, class token, learned position embedding),
``block1`` ... ``block12`` (:class:`~pipesl.models.transformer.TransformerBlock`), ``head``
(LayerNorm, the class token, Linear). Layout and parameter count (86.6 M) as torchvision's
``vit_b_16``; dropout defaults to 0 as there.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from pipesl.models.transformer import TransformerBlock

__all__ = ["ClassToken", "PatchEmbedding", "vit"]


class PatchEmbedding(nn.Module):
    """Image -> token sequence: patch convolution, prepended class token, position embedding."""

    def __init__(self, image_size: int, patch: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of patch {patch}")
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, (image_size // patch) ** 2 + 1, dim))
        nn.init.normal_(self.pos_embedding, std=0.02)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) -> (batch, 1 + HW/p^2, dim)."""
        x = self.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.drop(torch.cat([cls, x], dim=1) + self.pos_embedding)


class ClassToken(nn.Module):
    """Select the class token: (batch, seq, dim) -> (batch, dim)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x[:, 0]``."""
        return x[:, 0]


def vit(*, image_size: int = 224, patch: int = 16, dim: int = 768, depth: int = 12,
        heads: int = 12, num_classes: int = 1000, dropout: float = 0.0) -> nn.Sequential:
    """Build a ViT as an ``nn.Sequential`` of named units (defaults: ViT-B/16).

    Parameters
    ----------
    image_size, patch : int
        Input side and patch side (the position embedding is sized for this input).
    dim, depth, heads : int
        Width, number of encoder blocks, attention heads.
    num_classes : int
        Classifier outputs.
    dropout : float
        Dropout on embeddings, attention and residual branches.

    Returns
    -------
    torch.nn.Sequential
        Units ``embed, block1, ..., block<depth>, head``.
    """
    units: list[tuple[str, nn.Module]] = [("embed", PatchEmbedding(image_size, patch, dim,
                                                                   dropout))]
    for i in range(1, depth + 1):
        units.append((f"block{i}", TransformerBlock(dim, heads, causal=False, eps=1e-6,
                                                    gelu="none", dropout=dropout)))
    units.append(("head", nn.Sequential(OrderedDict([
        ("ln", nn.LayerNorm(dim, eps=1e-6)), ("cls", ClassToken()),
        ("fc", nn.Linear(dim, num_classes))]))))
    return nn.Sequential(OrderedDict(units))
