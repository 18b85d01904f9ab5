"""The pre-norm Transformer block shared by every architecture."""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import Attend, MultiHeadAttention


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear -> GELU -> Linear (width ratio x d)."""

    def __init__(self, d_model: int, ratio: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(d_model, ratio * d_model, bias=False)
        self.down = nn.Linear(ratio * d_model, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(nn.functional.gelu(self.up(x))))


class Block(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then + MLP(LN(x)).

    ``query_start`` turns the block into a cross-attention block: only positions
    ``query_start:`` ask queries (and come out), while keys and values come from all
    positions. PerceiverAR's first layer is such a block with ``query_start = C``: the
    M latents read the whole window, and the residual carries the latents' own input.
    """

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, mlp_ratio, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, rope, attend: Attend, query_start: int = 0) -> torch.Tensor:
        """Args:
            x: [B, T, d] residual stream.
            rope: (cos, sin) [T, D/2] for the T positions of ``x``.
            attend: attention pattern, see :mod:`minecp.attention`.
            query_start: first position that asks a query (0 = self-attention).

        Returns:
            [B, T - query_start, d].
        """
        h = self.ln_attn(x)
        cos, sin = rope
        rope_q = (cos[query_start:], sin[query_start:])
        x = x[:, query_start:] + self.dropout(self.attn(h[:, query_start:], h, rope_q, rope, attend))
        return x + self.mlp(self.ln_mlp(x))
