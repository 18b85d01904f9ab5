"""Rotary position embeddings (RoPE; Su et al. 2021, "RoFormer", Sec. 3.2).

RoPE rotates each pair of query/key features by an angle proportional to the token's
absolute position. The dot product of a rotated query at position p and a rotated key
at position r then depends only on p - r: attention sees *relative* positions, while
every token keeps its absolute position. That is what lets ECP keep segment borders at
absolute multiples of S during generation (see :mod:`minecp.generation`).

Positions may be fractional: the compressed-context model places each compressed
context slot at the centre of the span of tokens it summarises.
"""

from __future__ import annotations

import math

import torch

from .config import to_int, to_real


def rope_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0):
    """cos and sin of the rotation angles (RoFormer, Su et al. 2021, Sec. 3.2).

    Pair k of the features at position p is rotated by the angle p * base ** (-2k / D).

    Precision: the angles are formed, and their cos/sin evaluated, in float64 and only
    the results are rounded to float32. In float32 the angle itself would carry an
    absolute error of about p * 6e-8 rad (half an ulp of p), which at p = 10**7 is
    ~0.6 rad and visibly changes attention scores. In float64 the error is ~p * 1e-16
    rad (1e-7 at p = 10**9), so the q . k score of a fixed relative offset stays the
    same to float32 rounding far beyond any window, e.g. during unbounded ECP decoding
    (tested: 1e-4 relative between p = 3 and p = 10**7). Integer positions are exact
    in float64 up to 2**53; float positions are used as given.

    Args:
        positions: [T] positions (int or float), absolute within the text.
        head_dim: D, an even int >= 2 (Python or numpy int, or a 0-d integer tensor).
        base: frequency base, a finite real number > 1 (Python or numpy number, or a 0-d
            tensor); pair k rotates with frequency
            base ** (-2k / D).

    Returns:
        (cos, sin), each float32 [T, D / 2] on ``positions.device``.

    Raises:
        TypeError: ``positions`` not a tensor, ``head_dim`` not an int, ``base`` not a
            real number.
        ValueError: ``positions`` not 1-D, ``head_dim`` odd or < 2, ``base`` not
            finite or <= 1.
    """
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"positions must be a 1-D torch.Tensor, got {type(positions).__name__}")
    if positions.dim() != 1:
        raise ValueError(f"positions must have shape [T], got {tuple(positions.shape)}")
    D, b = to_int(head_dim), to_real(base)     # builtin int / float, or None
    if D is None:
        raise TypeError(f"head_dim must be an int, got {type(head_dim).__name__}")
    if D < 2 or D % 2:
        raise ValueError(f"head_dim must be an even int >= 2 (RoPE rotates pairs), got {head_dim}")
    if b is None:
        raise TypeError(f"base must be a real number, got {type(base).__name__}")
    if not (math.isfinite(b) and b > 1):
        raise ValueError(f"base must be a finite number > 1, got {base!r}")
    # MPS has no float64: there the angles are formed on the CPU and the result moved back.
    device = torch.device("cpu") if positions.device.type == "mps" else positions.device
    f64 = torch.float64
    inv_freq = b ** (-torch.arange(0, D, 2, device=device, dtype=f64) / D)
    angles = positions.to(device, f64)[:, None] * inv_freq[None, :]
    return angles.cos().float().to(positions.device), angles.sin().float().to(positions.device)


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
