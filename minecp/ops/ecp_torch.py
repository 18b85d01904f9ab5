"""ECP attention in plain PyTorch, without ever building an N x N tensor.

The trick: cut the sequence into segments of S and give every segment a key block of
2S positions, "previous segment ++ own segment". Each query then needs only a
[S, 2S] score tile, so scores cost O(N * 2S) memory and work instead of O(N^2).
The mask inside the tile is the same for every segment except segment 0 (which has no
previous segment, so its first S keys are zero padding and are masked out).

This is the readable reference for the efficient backends (the two-call CPU path "sdpa",
flex, Triton), which are tested against it; "auto" runs float64 here (and "sdpa" for
fp32/bf16/fp16 on a CPU). Source: arXiv 2412.06106; docs/architectures.md §6 (pairwise
segment attention).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair_tile_mask(num_segments: int, segment_len: int, device) -> torch.Tensor:
    """Bool [s, S, 2S]: query a of segment g sees key b of the tile (prev ++ own)."""
    a = torch.arange(segment_len, device=device)[:, None]           # query offset in segment
    b = torch.arange(2 * segment_len, device=device)[None, :]       # key offset in the tile
    # Keys b < S are the previous segment (always visible); keys b >= S are the own
    # segment, visible up to the query itself (b - S <= a).
    tile = (b < segment_len) | (b - segment_len <= a)
    mask = tile.expand(num_segments, segment_len, 2 * segment_len).clone()
    mask[0, :, :segment_len] = False                                # segment 0: no predecessor
    return mask


def ecp_attention_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segment_len: int, scale: float | None = None
) -> torch.Tensor:
    """Pairwise segment attention by segment tiles (see module docstring).

    Inputs are assumed valid; :func:`minecp.ops.ecp_attention` is the checked entry.

    Args:
        q, k, v: [B, H, N, D] of one float dtype and device; N >= 1 a multiple of
            ``segment_len``.
        segment_len: S >= 1.
        scale: softmax scale, default 1/sqrt(D).

    Returns:
        [B, H, N, D], same dtype as ``q``. Memory: scores [B, H, N/S, S, 2S], O(N * S).

    Raises:
        Nothing of its own; unchecked bad input fails inside ``torch.reshape`` or SDPA.

    Source: arXiv 2412.06106; docs/architectures.md §6 (pairwise segment attention).
    """
    B, H, N, D = q.shape
    s = N // segment_len
    S = segment_len
    # [B, H, s, S, D]: one row of tiles per segment.
    qs, ks, vs = (t.reshape(B, H, s, S, D) for t in (q, k, v))
    # Keys and values of the previous segment; segment 0 gets zeros (masked below).
    k_prev = F.pad(ks, (0, 0, 0, 0, 1, 0))[:, :, :s]
    v_prev = F.pad(vs, (0, 0, 0, 0, 1, 0))[:, :, :s]
    k_pair = torch.cat([k_prev, ks], dim=3)                          # [B, H, s, 2S, D]
    v_pair = torch.cat([v_prev, vs], dim=3)
    mask = _pair_tile_mask(s, S, q.device)                           # [s, S, 2S]
    out = F.scaled_dot_product_attention(qs, k_pair, v_pair, attn_mask=mask, scale=scale)
    return out.reshape(B, H, N, D)
