"""ECP attention as two fused SDPA calls merged by their log-sum-exp (the fast CPU path).

The readable reference (:mod:`minecp.ops.ecp_torch`) gives every segment a [S, 2S]
score tile and a boolean mask. But the mask has only two simple parts: a query in
segment g sees

* all of segment g - 1 — no mask at all, and
* its own segment g causally — the ordinary ``is_causal`` triangle.

So we make two *mask-free* calls of PyTorch's fused (flash) attention kernel, each on
tiles of S x S, with the segments laid side by side as extra "batch" entries:

    (own)   segment g  vs segment g      is_causal=True     every segment
    (prev)  segment g  vs segment g - 1  no mask            segments 1 .. s-1

and merge them exactly. Each call returns its output O and the log-sum-exp L of its
scores per query (L = log sum_j exp(score_j)). A softmax over the union of both key sets
is a weighted mean of the two partial softmaxes, with weights exp(L_part - L) where
L = logaddexp(L_own, L_prev):

    O = exp(L_own - L) * O_own + exp(L_prev - L) * O_prev.

Backward uses the same fact the other way round (as in FlashAttention-2 and ring
attention): given the *merged* O and L, each part's gradient is the kernel's ordinary
backward called with that part's keys and the merged O and L, because
P_ij = exp(score_ij - L) and D_i = sum_d dO_id * O_id are properties of the whole row.
The two gradients for q (and for the keys/values of a segment used by two calls) add.

No tensor of N x N, no boolean mask, no copy of key pairs: the S-tiles are views of
q, k, v (a copy happens only if [B, H, N, D] cannot be viewed as [B*s, H, S, D]).
Memory is O(N * D) plus the kernel's O(S)-sized blocks; work is O(N * S * D).

It calls ``torch.ops.aten._scaled_dot_product_flash_attention_for_cpu`` and its
backward: the CPU flash kernel behind ``F.scaled_dot_product_attention``, the only
public-API path that does not return L. :func:`available` says whether they exist.

Source: arXiv 2412.06106; docs/architectures.md §6 (the mask); FlashAttention-2 (Dao 2023,
arXiv 2307.08691) for the log-sum-exp merge and the backward from the merged statistics.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..masks import ecp_rule, mask_matrix

_ops = torch.ops.aten


def available() -> bool:
    """True if this PyTorch has the CPU flash-attention operators this path needs."""
    return hasattr(_ops, "_scaled_dot_product_flash_attention_for_cpu") and hasattr(
        _ops, "_scaled_dot_product_flash_attention_for_cpu_backward")


#: dtypes this path takes. (The kernel also runs float64, but returns its log-sum-exp in
#: float32, so the merge would be accurate to ~1e-7 only: float64 goes to "torch".)
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

#: Short windows: below this segment length the S x S tiles are too small for the
#: kernel's blocks and per-call overhead wins (timed ad hoc while writing this, not in
#: BENCHMARKS.md: N = 64, S = 8, batch 64, one thread: two calls took about twice dense
#: causal's time, one masked call about 1.1x; at S = 16 all three were level) ...
MIN_TILE = 16
#: ... so up to this N such windows take one SDPA call with the explicit N x N mask
#: (as fast as dense causal there); above it the O(N^2) mask is not worth it.
MAX_MASKED_N = 1024


def native_low_precision() -> bool:
    """True if this CPU has bf16 matrix/dot instructions (AVX512-BF16 or AMX).

    Without them (e.g. an AVX2-only CPU) PyTorch's CPU flash kernel in bf16 is much slower
    than in fp32 — measured on the AVX2 development VM (BENCHMARKS.md, "ECP on a CPU: the
    fast path"): dense causal attention, N = 4096, forward + backward, 18.8 s in bf16 vs
    4.2 s in fp32 — so there this path computes bf16/fp16 inputs in fp32 and rounds the
    result (and the gradients) back. CPUs with the instructions keep the native kernel
    (not measured here: no such CPU was available).
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@functools.lru_cache(maxsize=16)
def _ecp_mask(seq_len: int, segment_len: int, device: str) -> torch.Tensor:
    return mask_matrix(ecp_rule(segment_len), seq_len, device=device)


def _segments(t: torch.Tensor, S: int) -> torch.Tensor:
    """[B, H, N, D] -> [B*s, H, S, D]: segments become the kernel's batch dimension.

    A free view when t's memory is laid out [B, N, H, D] (as the model's value
    projection is) or when B = 1; otherwise one O(N * D) copy. The kernel's outputs and
    gradients come back in [B, N, H, D] memory, which the model's head merge reads free.
    """
    B, H, N, D = t.shape
    return t.transpose(1, 2).reshape(B * (N // S), S, H, D).transpose(1, 2)


def _unsegment(t: torch.Tensor, B: int) -> torch.Tensor:
    """[B*s, H, S, D] -> [B, H, N, D] (inverse of :func:`_segments`)."""
    Bs, H, S, D = t.shape
    return t.transpose(1, 2).reshape(B, Bs // B * S, H, D).transpose(1, 2)


class _TwoCallECP(torch.autograd.Function):
    """Autograd wrapper: forward and backward as two fused kernel calls each.

    Segments of all batch elements are flattened into one list of B*s segments, and the
    (prev) call pairs flat segment i with flat segment i - 1. For B > 1 that also pairs
    segment 0 of a batch element with the last segment of the one before: a *ghost*
    pair (flat i a multiple of s). Ghosts get log-sum-exp -inf in the forward merge
    (weight exactly 0) and +inf in the backward (probabilities exactly 0, so no
    gradient), which is cheaper than B separate calls.
    """

    @staticmethod
    def forward(ctx, q, k, v, segment_len: int, scale):
        B, N = q.shape[0], q.shape[2]
        S = segment_len
        s = N // S
        q4, k4, v4 = (_segments(t, S) for t in (q, k, v))          # [B*s, H, S, D]
        # (own) every segment against itself, causal. lse: float32 [B*s, H, S].
        out, lse = _ops._scaled_dot_product_flash_attention_for_cpu(q4, k4, v4, 0.0, True, scale=scale)
        if s > 1:
            # (prev) flat segment i >= 1 against flat segment i - 1: shifted views, no mask.
            out_p, lse_p = _ops._scaled_dot_product_flash_attention_for_cpu(
                q4[1:], k4[:-1], v4[:-1], 0.0, False, scale=scale)
            lse_p[s - 1::s] = float("-inf")                             # ghost pairs (B > 1)
            lse_o = lse[1:]
            lse_m = torch.logaddexp(lse_o, lse_p)
            w_o = torch.exp(lse_o - lse_m).unsqueeze(-1)
            w_p = torch.exp(lse_p - lse_m).unsqueeze(-1)
            # Merge in float32 (the kernels' accumulation type), round once to q's dtype.
            out[1:] = (w_o * out[1:].float() + w_p * out_p.float()).to(out.dtype)
            lse[1:] = lse_m
        ctx.save_for_backward(q4, k4, v4, out, lse)
        ctx.scale, ctx.segments, ctx.batch = scale, s, B
        return _unsegment(out, B)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q4, k4, v4, out, lse = ctx.saved_tensors
        scale, s, B = ctx.scale, ctx.segments, ctx.batch
        g4 = _segments(grad_out, q4.shape[2])
        bwd = _ops._scaled_dot_product_flash_attention_for_cpu_backward
        # Both calls get the *merged* out and lse: the softmax is over the union of keys.
        dq, dk, dv = bwd(g4, q4, k4, v4, out, lse, 0.0, True, scale=scale)
        if s > 1:
            lse_p = lse[1:]
            if B > 1:
                lse_p = lse_p.clone()
                lse_p[s - 1::s] = float("inf")                          # ghost pairs: P = 0
            dq_p, dk_p, dv_p = bwd(g4[1:], q4[1:], k4[:-1], v4[:-1], out[1:], lse_p, 0.0, False, scale=scale)
            dq[1:] += dq_p
            dk[:-1] += dk_p
            dv[:-1] += dv_p
        return _unsegment(dq, B), _unsegment(dk, B), _unsegment(dv, B), None, None


def ecp_attention_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, segment_len: int, scale: float | None = None
) -> torch.Tensor:
    """ECP attention by two fused CPU flash-attention calls (see module docstring).

    Inputs are assumed valid; :func:`minecp.ops.ecp_attention` is the checked entry.
    Short windows take a cheaper exact route (same mask, same result up to rounding):

    * s = N / S <= 2 segments: the ECP mask *is* the causal mask (segment 1 sees all of
      segment 0 anyway), so one ``is_causal`` call;
    * S < :data:`MIN_TILE` and N <= :data:`MAX_MASKED_N`: one call with the explicit
      bool N x N mask (tiles that small waste the two-call kernel's blocks);
    * otherwise the two mask-free calls.

    bf16 and fp16 inputs are computed in fp32 on CPUs without native bf16 instructions
    (:func:`native_low_precision`); the output has the input's dtype either way.

    Args:
        q, k, v: [B, H, N, D] of one dtype in :data:`FAST_DTYPES`, on the CPU; N >= 1 a
            multiple of ``segment_len``. Any strides (fastest with memory [B, N, H, D]).
        segment_len: S >= 1.
        scale: softmax scale, default 1/sqrt(D).

    Returns:
        [B, H, N, D] (memory laid out [B, N, H, D]), same dtype as ``q``. Differentiable once (no double
        backward). Memory: O(N * D); work O(N * S * D).

    Raises:
        TypeError: a dtype not in :data:`FAST_DTYPES`.
        RuntimeError: from the kernel, e.g. a CUDA tensor (check :func:`available`).

    Source: arXiv 2412.06106; docs/architectures.md §6; arXiv 2307.08691 (log-sum-exp merge).
    """
    if q.dtype not in FAST_DTYPES:
        raise TypeError(f"backend 'sdpa' takes q, k, v of dtype {FAST_DTYPES}, got {q.dtype}; "
                        "use backend='torch' (float64)")
    if q.dtype != torch.float32 and not native_low_precision():
        out = ecp_attention_sdpa(q.float(), k.float(), v.float(), segment_len, scale)
        return out.to(q.dtype)
    N = q.shape[2]
    if N // segment_len <= 2:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    if segment_len < MIN_TILE and N <= MAX_MASKED_N:
        mask = _ecp_mask(N, segment_len, str(q.device))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return _TwoCallECP.apply(q, k, v, segment_len, scale)
