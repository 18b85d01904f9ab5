"""Multi-head attention with rotary positions; the *pattern* is passed in as data.

The projection code is the same for all six architectures; what differs is only which
keys a query may see. A layer therefore receives an ``attend(q, k, v)`` function:

* ``causal_attend``            — dense causal attention (SDPA's fused causal kernel),
* ``masked_attend(mask)``      — any explicit bool mask from :mod:`minecp.masks`,
* ``ecp_attend(S, backend)``   — ECP's pairwise segment attention (:mod:`minecp.ops`).

Shapes: q [B, H, Tq, D], k and v [B, H, Tk, D] -> [B, H, Tq, D].
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import ecp_attention
from .rope import apply_rope

Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def causal_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Dense causal attention (query i sees key j <= i); Tq must equal Tk."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def masked_attend(mask: torch.Tensor) -> Attend:
    """Attention restricted by an explicit bool mask.

    Args:
        mask: bool [Tq, Tk] (or [H, Tq, Tk] for per-head patterns), True = visible.
            Every query row must see at least one key, otherwise its softmax is 0/0.
    """

    def attend(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return attend


def ecp_attend(segment_len: int, backend: str = "auto") -> Attend:
    """ECP pairwise segment attention with segments of ``segment_len`` (see minecp.ops)."""
    return functools.partial(ecp_attention, segment_len=segment_len, backend=backend)


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                        scale: float | None = None) -> torch.Tensor:
    """Textbook attention, softmax(q k^T * scale + mask) v, computed in q's dtype.

    Used as the golden model in tests and as the "from scratch" example in the notebooks.
    Masked scores are set to -inf (exactly zero probability), never to a finite number.

    Args:
        q: [..., Tq, D]; k, v: [..., Tk, D]; mask: bool broadcastable to [..., Tq, Tk].
        scale: default 1 / sqrt(D).

    Returns:
        [..., Tq, D].
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


class MultiHeadAttention(nn.Module):
    """Query/key/value projections, RoPE, an ``attend`` function, output projection.

    Standard separate Q, K, V projections (the authors' code shares one K/V projection;
    see ARCHITECTURES.md "Known quirks").
    """

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] -> [B, H, T, D]."""
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, T, D] -> [B, T, d]."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).reshape(B, T, H * D)

    def project(self, x_q: torch.Tensor, x_kv: torch.Tensor, rope_q, rope_k):
        """Queries from ``x_q`` [B, Tq, d], keys/values from ``x_kv`` [B, Tk, d], RoPE applied.

        Args:
            rope_q, rope_k: (cos, sin) pairs [Tq, D/2] and [Tk, D/2] from
                :func:`minecp.rope.rope_angles` at the tokens' absolute positions.

        Returns:
            q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, D].
        """
        q = apply_rope(self.split_heads(self.query(x_q)), *rope_q)
        k = apply_rope(self.split_heads(self.key(x_kv)), *rope_k)
        v = self.split_heads(self.value(x_kv))
        return q, k, v

    def forward(self, x_q, x_kv, rope_q, rope_k, attend: Attend) -> torch.Tensor:
        """Attention output [B, Tq, d]."""
        q, k, v = self.project(x_q, x_kv, rope_q, rope_k)
        return self.out(self.merge_heads(attend(q, k, v)))
