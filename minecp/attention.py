"""Multi-head attention with rotary positions; the *pattern* is passed in as data.

The projection code is the same for all six architectures; what differs is only which
keys a query may see. A layer therefore receives an ``attend(q, k, v)`` function:

* ``causal_attend``            — dense causal attention (SDPA's fused causal kernel),
* ``masked_attend(mask)``      — any explicit bool mask from :mod:`minecp.masks`,
* ``ecp_attend(S, backend)``   — ECP's pairwise segment attention (:mod:`minecp.ops`).

Shapes: q [B, H, Tq, D], k and v [B, H, Tk, D] -> [B, H, Tq, D]. Each pattern can also
return the explicit bool mask it stands for (``attend.mask(Tq, Tk)``), which is how
:func:`record_attention` draws the attention maps of any model.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import causal_rule, ecp_rule, mask_matrix
from .ops import check_backend, ecp_attention
from .rope import apply_rope


class Attend(Protocol):
    """An attention pattern: computes attention, and can show its mask."""

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor: ...

    def mask(self, q_len: int, k_len: int, device=None) -> torch.Tensor: ...


# Set by record_attention(): a list that every attention layer appends its probabilities to.
_RECORDER: list | None = None


@contextlib.contextmanager
def record_attention():
    """Record every layer's attention probabilities during a forward pass.

    Inside the ``with`` block each :class:`MultiHeadAttention` call also computes the
    textbook softmax(q k^T / sqrt(D)) with its pattern's explicit mask and appends it,
    detached, to the yielded list: one float32 tensor [B, H, Tq, Tk] per layer, in order.
    Meant for small inputs (it materialises Tq x Tk) — for pictures, not training.

        with record_attention() as maps:
            model(idx)
    """
    global _RECORDER
    previous, _RECORDER = _RECORDER, []
    try:
        yield _RECORDER
    finally:
        _RECORDER = previous


class CausalAttend:
    """Dense causal attention (query i sees key j <= i) with SDPA's fused causal kernel.

    ``attend(q, k, v)``: q, k, v float [B, H, T, D] of one dtype and device (Tq = Tk = T,
    since SDPA's ``is_causal`` aligns the mask to the top-left corner) -> [B, H, T, D].
    Errors come from :func:`torch.nn.functional.scaled_dot_product_attention`.

    Source: docs/architectures.md Sec. 1 (dense causal baseline).
    """

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def mask(self, q_len: int, k_len: int, device=None) -> torch.Tensor:
        """The explicit bool mask [q_len, k_len] this pattern stands for (True = visible)."""
        return mask_matrix(causal_rule(), q_len, k_len, device=device)


class MaskedAttend:
    """Attention restricted by an explicit bool mask (the PerceiverAR family).

    Args:
        mask: bool [Tq, Tk] (or [H, Tq, Tk] for per-head patterns), True = visible.
            Every query row must see at least one key, otherwise its softmax is 0/0.

    ``attend(q, k, v)``: q float [B, H, Tq, D], k and v [B, H, Tk, D] -> [B, H, Tq, D];
    ``mask`` must broadcast to [B, H, Tq, Tk] and be on q's device.

    Raises:
        TypeError: ``mask`` is not a bool tensor.
        ValueError: ``mask`` is not 2-D or 3-D.

    Source: docs/architectures.md Secs. 2-5 (masks from :mod:`minecp.masks`).
    """

    def __init__(self, mask: torch.Tensor):
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask must be a bool torch.Tensor, got "
                            f"{mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        if mask.dim() not in (2, 3):
            raise ValueError(f"mask must have shape [Tq, Tk] or [H, Tq, Tk], got {tuple(mask.shape)}")
        self._mask = mask

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask)

    def mask(self, q_len: int, k_len: int, device=None) -> torch.Tensor:
        """The stored mask, [Tq, Tk] or [H, Tq, Tk] (``q_len``, ``k_len`` must match it)."""
        return self._mask


class ECPAttend:
    """ECP pairwise segment attention with segments of ``segment_len`` (see minecp.ops).

    Args:
        segment_len: S, an int >= 1.
        backend: one of :data:`minecp.ops.BACKENDS` ("auto", "torch", "sdpa", "flex", "triton").

    ``attend(q, k, v)``: q, k, v float [B, H, N, D], N a multiple of S -> [B, H, N, D]
    (:func:`minecp.ops.ecp_attention`, which checks the tensors). ``mask(Tq, Tk)`` is the
    bool [Tq, Tk] mask of :func:`minecp.masks.ecp_rule`.

    Raises:
        TypeError: ``segment_len`` not an int.
        ValueError: ``segment_len`` < 1 or an unknown ``backend`` (checked here, at
            construction, not at the first call).

    Source: arXiv 2412.06106; docs/architectures.md §6.
    """

    def __init__(self, segment_len: int, backend: str = "auto"):
        from .config import to_int

        if to_int(segment_len) is None:
            raise TypeError(f"segment_len must be an int, got {type(segment_len).__name__}")
        segment_len = to_int(segment_len)   # numpy / 0-d tensor ints become a plain int
        if segment_len < 1:
            raise ValueError(f"segment_len must be >= 1, got {segment_len}")
        check_backend(backend)
        self.segment_len, self.backend = segment_len, backend

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ecp_attention(q, k, v, segment_len=self.segment_len, backend=self.backend)

    def mask(self, q_len: int, k_len: int, device=None) -> torch.Tensor:
        """The explicit bool mask [q_len, k_len] this pattern stands for (True = visible)."""
        return mask_matrix(ecp_rule(self.segment_len), q_len, k_len, device=device)


# Short names used by the models.
causal_attend = CausalAttend()
masked_attend = MaskedAttend
ecp_attend = ECPAttend


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
    see docs/architectures.md "Known quirks").
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

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor, rope_q, rope_k, attend: Attend) -> torch.Tensor:
        """Multi-head attention of ``x_q`` over ``x_kv`` (Vaswani et al. 2017, Sec. 3.2.2).

        Args:
            x_q: float [B, Tq, d], the positions that ask queries.
            x_kv: float [B, Tk, d], the positions that give keys and values (``x_q``
                itself for self-attention).
            rope_q, rope_k: (cos, sin) pairs, each float32 [Tq, D/2] and [Tk, D/2]
                (:func:`minecp.rope.rope_angles` at the tokens' absolute positions).
            attend: the pattern, e.g. :class:`CausalAttend`, :class:`MaskedAttend`,
                :class:`ECPAttend`; called on q [B, H, Tq, D], k and v [B, H, Tk, D].

        Returns:
            Float [B, Tq, d], dtype of ``x_q``.

        Raises:
            Whatever ``attend`` raises for its shapes (e.g. ValueError from
            :func:`minecp.ops.ecp_attention`); inputs are not re-checked here, this
            runs in every layer.
        """
        q, k, v = self.project(x_q, x_kv, rope_q, rope_k)
        if _RECORDER is not None:
            mask = attend.mask(q.shape[2], k.shape[2], device=q.device)
            scores = (q.float() @ k.float().transpose(-1, -2)) * self.head_dim ** -0.5
            _RECORDER.append(torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).detach())
        return self.out(self.merge_heads(attend(q, k, v)))
