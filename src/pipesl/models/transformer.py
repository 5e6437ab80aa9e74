"""Pre-norm transformer blocks shared by ViT-B/16 and GPT-2 small.

A block is one chain unit (``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``): its residual
connections mean it cannot be cut inside. Attention uses
:func:`torch.nn.functional.scaled_dot_product_attention`; the profiler adds a FLOP formula for
its CPU kernel, which :class:`torch.utils.flop_counter.FlopCounterMode` otherwise counts as 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "SelfAttention", "TransformerBlock"]


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (GPT-2 and ViT layout).

    Parameters
    ----------
    dim : int
        Model width d.
    heads : int
        Number of heads h (``dim`` must be a multiple of ``heads``).
    causal : bool
        Mask future positions (GPT-2) or not (ViT).
    dropout : float
        Dropout on the attention weights and on the output projection.
    """

    def __init__(self, dim: int, heads: int, *, causal: bool, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq, dim) -> (batch, seq, dim)."""
        b, s, d = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, s, d)))


class MLP(nn.Module):
    """The position-wise feed-forward network: ``fc`` (d -> 4d), GELU, ``proj`` (4d -> d)."""

    def __init__(self, dim: int, hidden: int, *, gelu: str = "none", dropout: float = 0.0) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=gelu)
        self.proj = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        return self.drop(self.proj(self.act(self.fc(x))))


class TransformerBlock(nn.Module):
    """A pre-norm transformer block, one chain unit.

    Parameters
    ----------
    dim, heads : int
        Width d and number of heads.
    causal : bool
        Causal self-attention (GPT-2) or bidirectional (ViT).
    eps : float
        LayerNorm epsilon (GPT-2 1e-5, ViT 1e-6).
    gelu : str
        ``"tanh"`` for GPT-2's approximate GELU, ``"none"`` for the exact one (ViT).
    dropout : float
        Dropout probability on attention weights and both residual branches.
    """

    def __init__(self, dim: int, heads: int, *, causal: bool, eps: float, gelu: str,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, heads, causal=causal, dropout=dropout)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, 4 * dim, gelu=gelu, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, seq, dim) -> (batch, seq, dim)."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))
