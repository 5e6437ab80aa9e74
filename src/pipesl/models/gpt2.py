"""GPT-2 small (Radford et al., 2019) as a chain: embedding, 12 causal blocks, LM head.

Units: ``embed`` (token + learned position embedding), ``block1`` ... ``block12``
(:class:`~pipesl.models.transformer.TransformerBlock` with causal attention), ``head``
(final LayerNorm ``ln_f`` and the bias-free ``lm_head``). A sample is one sequence of token ids
of shape ``(seq,)``; the output is ``(seq, vocab)`` logits. The sequence length is the input
shape (any length up to ``n_positions`` = 1024); the zoo's default is 128.

With ``tie_weights=True`` (GPT-2's choice, 124.4 M parameters) ``lm_head.weight`` *is*
``embed.wte.weight``, so the matrix belongs to both the first and the last unit; a runtime that
puts them on different machines holds two copies (see ``docs/models.md``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from pipesl.models.transformer import TransformerBlock

__all__ = ["TokenEmbedding", "gpt2"]


class TokenEmbedding(nn.Module):
    """Token ids (batch, seq) -> hidden states (batch, seq, dim): ``wte[ids] + wpe[pos]``."""

    def __init__(self, vocab_size: int, n_positions: int, dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(n_positions, dim)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed a batch of token-id sequences."""
        seq = ids.shape[-1]
        if seq > self.wpe.num_embeddings:
            raise ValueError(f"sequence length {seq} exceeds n_positions "
                             f"{self.wpe.num_embeddings}")
        pos = torch.arange(seq, device=ids.device)
        return self.drop(self.wte(ids) + self.wpe(pos))


def gpt2(*, vocab_size: int = 50257, n_positions: int = 1024, dim: int = 768, depth: int = 12,
         heads: int = 12, dropout: float = 0.0, tie_weights: bool = True) -> nn.Sequential:
    """Build a GPT-2 as an ``nn.Sequential`` of named units (defaults: GPT-2 small).

    Parameters
    ----------
    vocab_size, n_positions : int
        Vocabulary (output classes) and the longest sequence.
    dim, depth, heads : int
        Width d, number of blocks and attention heads.
    dropout : float
        Dropout on embeddings, attention and residual branches (GPT-2 pre-training used 0.1;
        the zoo default is 0).
    tie_weights : bool
        Share the token embedding with the LM head.

    Returns
    -------
    torch.nn.Sequential
        Units ``embed, block1, ..., block<depth>, head``.
    """
    embed = TokenEmbedding(vocab_size, n_positions, dim, dropout)
    units: list[tuple[str, nn.Module]] = [("embed", embed)]
    for i in range(1, depth + 1):
        block = TransformerBlock(dim, heads, causal=True, eps=1e-5, gelu="tanh", dropout=dropout)
        for name, p in block.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        units.append((f"block{i}", block))
    lm_head = nn.Linear(dim, vocab_size, bias=False)
    if tie_weights:
        lm_head.weight = embed.wte.weight
    units.append(("head", nn.Sequential(OrderedDict([
        ("ln_f", nn.LayerNorm(dim, eps=1e-5)), ("lm_head", lm_head)]))))
    return nn.Sequential(OrderedDict(units))
