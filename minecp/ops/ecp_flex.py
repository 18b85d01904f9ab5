"""ECP attention through PyTorch's FlexAttention with a block mask.

FlexAttention takes the visibility rule itself (a ``mask_mod``) and a *block mask*:
a summary of which 128 x 128 tiles hold any visible pair, so that compiled kernels skip
empty tiles. We reuse :func:`minecp.masks.ecp_rule`, so the rule is written once.

On a GPU the call is compiled (``torch.compile``) into a fused kernel; in eager mode on
a CPU PyTorch falls back to an unfused implementation that materialises the scores
(correct, but O(N^2) memory) — fine for tests, not for long sequences — and has no
backward pass at all, so on a CPU this backend is forward-only.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from ..masks import ecp_rule


@functools.lru_cache(maxsize=32)
def _block_mask(seq_len: int, segment_len: int, device: str):
    rule = ecp_rule(segment_len)

    def mask_mod(b, h, q_idx, kv_idx):
        return rule(q_idx, kv_idx)

    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=seq_len, KV_LEN=seq_len, device=device)


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    return torch.compile(flex_attention, dynamic=False)


def ecp_attention_flex(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segment_len: int, scale: float | None = None
) -> torch.Tensor:
    """ECP attention via ``flex_attention`` (block mask built once per (N, S, device)).

    Args:
        q, k, v: [B, H, N, D]; N a multiple of ``segment_len``.
        segment_len: S.
        scale: softmax scale, default 1/sqrt(D).

    Returns:
        [B, H, N, D], same dtype as ``q``.
    """
    N = q.shape[-2]
    if q.device.type != "cuda" and torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        raise NotImplementedError("FlexAttention has no backward pass on the CPU in PyTorch "
                                  f"{torch.__version__}; use backend='torch' for training on a CPU "
                                  "(the flex backend on a CPU is for inference under torch.no_grad())")
    block_mask = _block_mask(N, segment_len, str(q.device))
    if q.device.type == "cuda":
        return _compiled_flex()(q, k, v, block_mask=block_mask, scale=scale)
    with warnings.catch_warnings():
        # Eager CPU flex is unfused by design here; the warning would only repeat that.
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        # Under no_grad the inputs may still carry requires_grad, which the CPU path rejects.
        q, k, v = q.detach(), k.detach(), v.detach()
        return flex_attention(q, k, v, block_mask=block_mask, scale=scale)
