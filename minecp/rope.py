"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer", Sec. 3.4).

RoPE rotates each pair of query/key features by an angle proportional to the token's
absolute position. The dot product of a rotated query at position p and a rotated key
at position r then depends only on p - r: attention sees *relative* positions, while
every token keeps its absolute position. That is what lets ECP keep segment borders at
absolute multiples of S during generation (see :mod:`minecp.generation`).

Positions may be fractional: the compressed-context model places each compressed
context slot at the centre of the span of tokens it summarises.
"""

from __future__ import annotations

import torch


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0):
    """cos and sin of the rotation angles.

    Args:
        positions: [T] positions (int or float), absolute within the text.
        head_dim: D (even).
        base: frequency base; pair k rotates with frequency base ** (-2k / D).

    Returns:
        (cos, sin), each float32 [T, D / 2].
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate feature pairs (x[..., :D/2], x[..., D/2:]) of ``x`` [B, H, T, D].

    The "half split" pairing (feature k with k + D/2) is equivalent to interleaved pairs
    up to a fixed permutation of the features, and needs no strided indexing.

    Returns:
        Tensor like ``x`` (computed in float32, cast back to ``x.dtype``).
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.to(x.dtype)
