"""ECP attention through PyTorch's FlexAttention with a block mask.

FlexAttention takes the visibility rule itself (a ``mask_mod``) and a *block mask*:
a summary of which 128 x 128 tiles hold any visible pair, so that compiled kernels skip
empty tiles. We reuse :func:`minecp.masks.ecp_rule`, so the rule is written once.

On a GPU the call is compiled (``torch.compile``) into a fused Triton kernel; in eager
mode on a CPU PyTorch falls back to an unfused implementation that materialises the
scores (correct, but O(N^2) memory) — fine for tests, not for long sequences — and has
no backward pass at all, so on a CPU this backend is forward-only.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from ..masks import ecp_rule

#: What the compiled CUDA kernel handles. Inductor generates it with Triton, whose
#: ``tl.dot`` needs every dimension >= 16, so PyTorch refuses head_dim < 16 on CUDA
#: (NotImplementedError "NYI: embedding dimension ... must be at least 16"); other head
#: dims are padded to a power of two internally. On a CPU any float dtype and D work.
CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
CUDA_MIN_HEAD_DIM = 16


def cuda_unsupported(dtype: torch.dtype, head_dim: int) -> str | None:
    """Why the compiled CUDA flex kernel cannot take these inputs, or None if it can."""
    if dtype not in CUDA_DTYPES:
        return f"dtype {dtype} is not one of {CUDA_DTYPES} (flex on CUDA)"
    if head_dim < CUDA_MIN_HEAD_DIM:
        return f"head_dim {head_dim} < {CUDA_MIN_HEAD_DIM} (flex on CUDA: Triton's tl.dot minimum)"
    return None


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

    Inputs are assumed valid; :func:`minecp.ops.ecp_attention` checks them.

    Args:
        q, k, v: [B, H, N, D] of one float dtype and device; N a multiple of ``segment_len``.
            On CUDA: dtype float32/float16/bfloat16 and D >= 16 (see :func:`cuda_unsupported`).
        segment_len: S.
        scale: softmax scale, default 1/sqrt(D).

    Returns:
        [B, H, N, D], same dtype as ``q``. On CUDA the first call per shape compiles a
        kernel (seconds); later calls reuse it.

    Raises:
        NotImplementedError: on a CPU while gradients are wanted (grad mode on and an
            input requires grad): PyTorch's FlexAttention has no CPU backward.
        ValueError: on CUDA, a dtype or head_dim the compiled kernel does not support.

    Source: arXiv 2412.06106; docs/architectures.md §6 (the mask); FlexAttention (Dong et al. 2024,
    arXiv 2412.05496) for the block-sparse kernel.
    """
    N = q.shape[-2]
    if q.device.type == "cuda" and (why := cuda_unsupported(q.dtype, q.shape[-1])):
        raise ValueError(f"backend='flex' cannot run these inputs: {why}; use backend='torch'")
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
