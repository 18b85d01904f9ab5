"""Fused ECP attention in Triton: FlashAttention-2 restricted to a two-segment band.

What is computed
----------------
ECP pairwise segment attention (Mahmood & Huang, arXiv 2412.06106; docs/architectures.md §6): the
sequence of N positions is cut into segments of S, and

    query i sees key j   iff   j <= i   and   i // S - j // S <= 1,

i.e. the whole previous segment plus the causal part of its own segment
(:func:`minecp.masks.ecp_rule`). Each query sees at most 2S keys, so the work is
O(N * S * D) instead of dense causal attention's O(N^2 * D).

How (the FlashAttention-2 recipe, Dao 2023, arXiv 2307.08691)
-----------------------------------------------------------
Never materialise the [N, N] (or even [N, 2S]) score matrix. Each *program* (one
instance of a kernel, scheduled on one streaming multiprocessor) owns a tile of
BLOCK_M queries of one (batch, head), keeps that tile in registers, and streams the key /
value tiles of its band through on-chip memory, BLOCK_N keys at a time, folding
each one into a running ("online") softmax. Per query row only the output row and
two floats ever reach global memory: the softmax's row max and denominator, which
together give the row's log-sum-exp (LSE) for the backward pass.

The band: which key tiles a query tile visits
---------------------------------------------
A query tile [m0, m1) needs keys from the start of the segment *before* the segment
of its first query, ``(m0 // S - 1) * S`` (clamped at 0), up to its last query
``m1 - 1``. Everything else is skipped without being loaded -- that is where the
speed-up over dense causal attention comes from. Inside the band, key tiles come in
two kinds:

* ``F`` (full): every query of the tile sees every key of the tile. No mask needed.
* ``m`` (masked): some pairs are invisible -- the diagonal tiles (``j <= i``), and
  the tiles at the band's lower edge whenever that edge does not fall on a tile
  border: the previous segment starts inside a key tile (S not a multiple of
  BLOCK_N), or the query tile straddles a segment border (S not a multiple of
  BLOCK_M), so that its later queries no longer see the oldest keys. Masked tiles
  apply the rule token by token with ``-inf``.

Example: N = 24, S = 6, BLOCK_M = BLOCK_N = 4 (``x`` visible, ``-`` invisible but
inside a visited tile, blank = tile never loaded; ``|`` separates key tiles)::

                 key tiles:  0    1    2    3    4    5     visited tiles
    query tile 0  (q 0-3)  |x---|    |    |    |    |    |   m
                           |xxxx|    |    |    |    |    |
    query tile 1  (q 4-7)  |xxxx|x---|    |    |    |    |   F m
                           |xxxx|xxxx|    |    |    |    |
    query tile 3 (q 12-15) |    |--xx|xxxx|x---|    |    |   m F m
                           |    |--xx|xxxx|xxxx|    |    |
    query tile 4 (q 16-19) |    |--xx|xxxx|xxxx|x---|    |   m m F m
                           |    |--xx|xxxx|xxxx|xx--|    |
                           |    |----|----|xxxx|xxx-|    |   <- q 18, 19 are in
                           |    |----|----|xxxx|xxxx|    |      segment 3

(Some rows omitted.) Per query tile the loop therefore runs in three phases:
masked lower edge, full middle, masked diagonal; each phase is the same inner loop,
compiled once with and once without the mask (``MASKED`` is a compile-time flag).
The backward pass uses the mirrored band for key tiles (see ``_key_tile_band``).

Online softmax (forward)
------------------------
For one query row with running maximum m, running denominator l and running
(unnormalised) output acc, a new key tile with scores s_j is folded in as

    m_new = max(m, max_j s_j)
    p_j   = exp(s_j - m_new)                  (masked keys: s_j = -inf, so p_j = 0)
    l     = l * exp(m - m_new) + sum_j p_j
    acc   = acc * exp(m - m_new) + sum_j p_j v_j

and at the end ``out = acc / l`` (and ``lse = m + log(l)``, the row's log-sum-exp).
We work in base 2 (``exp2``, scores pre-multiplied by log2(e)), which is cheaper on a
GPU and the same math otherwise.

Why the backward recomputes from saved statistics
-------------------------------------------------
The gradient needs the softmax probabilities P. Storing them would cost O(N * S)
memory per (batch, head) -- exactly what the fused kernel avoids. Instead the
forward keeps two floats per row (O(N)): the final row max m and denominator l.
The backward recomputes every visible probability as ``P_ij = exp(s_ij - m_i) / l_i``
from Q, K and those statistics: an extra matmul, traded for memory, which is the
FlashAttention bargain. (FlashAttention stores the single number
``lse = m + log(l)`` and uses ``exp(s_ij - lse_i)``. Same math, but with large
logits ``lse`` carries a rounding error of about ulp(|lse|) that lands, undamped, on
the row's dominant probability. Keeping m separate gives that probability as
``exp(0) / l`` whenever the recomputed s_ij equals the forward's bit for bit -- so
every kernel forms scores the same way, ``rows @ (loaded-transposed tile)``. Under
the CPU interpreter they do match, and fp32 gradients then agree with a plain PyTorch
reference even at |s| in the thousands; on a GPU it is likely, not guaranteed. For
bf16 either way is far below the bf16 rounding of P.)
With ``dO`` the upstream gradient and ``delta_i = sum_d dO_id * O_id``
(= sum_j P_ij dP_ij):

    dV  = P^T dO,   dP = dO V^T,   dS = P * (dP - delta),
    dQ  = scale * dS K,    dK = scale * dS^T Q.

Three kernels do that: a preprocess kernel for delta; a dK/dV kernel whose programs
own a key tile and loop over the query tiles whose band contains it (queries from the
key tile's start to the end of the segment *after* the segment of its last key); and
a dQ kernel whose programs own a query tile and loop over the same band as the
forward. Splitting dQ from dK/dV costs one extra recomputation of S and P but needs no
atomic adds, so the result is deterministic.

Numerics
--------
fp32 accumulation for every matmul and the softmax statistics; inputs fp32, fp16 or
bf16. For fp32 inputs ``tl.dot`` runs with an explicit ``input_precision="ieee"``, so
the GPU and the CPU interpreter compute the same thing (``"tf32"`` may be asked for:
faster on a GPU, about 1e-3 relative error). Masks are exact (``-inf`` before the
exponential, never a finite "large negative" number that huge logits could overcome). No
row is ever fully masked (j = i is always visible), and the padding rows of a partial
tile are guarded so no NaN can be produced.

Running on a CPU
----------------
With ``TRITON_INTERPRET=1`` Triton runs the kernels in a numpy interpreter (slow,
small shapes only). ``@triton.jit`` decides interpreter-or-GPU when the kernel is
*defined*, i.e. when this module is imported, so the variable must be set before
``minecp.ops.ecp_triton`` is imported (``tests/conftest.py`` does that). The
interpreter's ``tl.dot`` is wrong for bf16, so under the interpreter bf16 operands are
widened to fp32 before each matmul -- the same arithmetic a GPU's tensor cores do
(bf16 x bf16 products are exact in fp32, accumulated in fp32).

Reading order
-------------
``_query_tile_band`` / ``_key_tile_band`` (the band, in tiles) -> ``_fwd_inner`` and
``_ecp_fwd_kernel`` (forward) -> ``_bwd_delta_kernel``, ``_dkdv_inner`` /
``_ecp_bwd_dkdv_kernel``, ``_dq_inner`` / ``_ecp_bwd_dq_kernel`` (backward) ->
``ecp_attention_triton`` (checks, launches, autograd). ``tile_bands`` runs the band
helpers on their own, for pictures and tests.

Sources: Mahmood & Huang, arXiv 2412.06106; docs/architectures.md §6 (pairwise segment attention);
Dao, "FlashAttention-2", arXiv 2307.08691 (2023), Algorithms 1 and 2.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import triton
import triton.language as tl

SUPPORTED_HEAD_DIMS = (32, 64, 128)
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
INPUT_PRECISIONS = ("ieee", "tf32")
MIN_SEGMENT_LEN = 16

_LOG2E = 1.4426950408889634  # log2(e): exp(x) == exp2(x * log2(e))
_LN2 = 0.6931471805599453  # ln(2):    log(x) == log2(x) * ln(2)


# ---------------------------------------------------------------------------------
# Block sizes
# ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EcpTritonConfig:
    """Tile sizes and launch parameters for the three kernels.

    fwd_*: forward (query tile of fwd_block_m rows, key tiles of fwd_block_n).
    dkdv_*: backward dK/dV (key tile of dkdv_block_n rows, query tiles of dkdv_block_m).
    dq_*: backward dQ (query tile of dq_block_m rows, key tiles of dq_block_n).
    All block sizes are powers of two >= 16 (``tl.dot`` needs every dimension >= 16).
    ``num_warps`` / ``num_stages`` are ignored by the CPU interpreter.
    """

    fwd_block_m: int
    fwd_block_n: int
    fwd_warps: int
    fwd_stages: int
    dkdv_block_m: int
    dkdv_block_n: int
    dkdv_warps: int
    dkdv_stages: int
    dq_block_m: int
    dq_block_n: int
    dq_warps: int
    dq_stages: int

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if not isinstance(val, int) or val <= 0:
                raise ValueError(f"config.{f.name} must be a positive int, got {val!r}")
            if "block" in f.name and (val < 16 or val & (val - 1)):
                raise ValueError(f"config.{f.name} must be a power of two >= 16, got {val}")


def default_config(head_dim: int, dtype: torch.dtype, interpret: bool | None = None) -> EcpTritonConfig:
    """Block sizes per head dim and dtype.

    GPU (H100/H200: 228 KB shared memory and 64K 32-bit registers per SM, at most 255
    registers per thread), fp16/bf16:

    * forward: a 128-query tile amortises each K/V load over many rows; 64-key tiles
      keep the fp32 score tile (128 x 64) and the accumulator (128 x D) in registers.
      3 pipeline stages prefetch the next K and V tiles (bf16, D = 128: Q 32 KB +
      3 x (16 + 16) KB = 128 KB of shared memory). 8 warps for D >= 64: with 4 warps
      the compiler runs out of registers (spills at D = 128).
    * dK/dV: the key tile (128 keys) stays resident with its dK and dV accumulators;
      query tiles of 32 rows stream past it, as in FlashAttention-2's backward. 8
      warps for D >= 64 (4 warps spill: two 128 x D fp32 accumulators).
    * dQ: mirror image, a 128-query tile resident, 32-key tiles streamed.

    fp32 with ``input_precision="ieee"`` has no tensor-core path: ``tl.dot`` becomes
    FMA loops whose operands live in registers, so the tiles are small (16-32) --
    a correctness path, not a fast one.

    How these were checked: every kernel compiled offline for sm_90a with Triton 3.9
    and 3.6 and ptxas (``benchmarks/gpu_attention.py --compile-only``): no register spills,
    shared memory <= 128 KB. Speed has *not* been tuned on the GPU
    (``benchmarks/gpu_attention.py --tune`` times alternatives).

    Under the CPU interpreter 32 x 32 tiles are used: warps and stages mean nothing
    there, every loop iteration costs interpreter overhead (so tiles should not be
    tiny), and tiles smaller than the tests' segments (16 ... 100) make partial and
    segment-straddling tiles common, which is what the tests want to exercise.
    """
    if interpret is None:
        interpret = _INTERPRET_AT_IMPORT
    if interpret:
        return EcpTritonConfig(32, 32, 4, 1, 32, 32, 4, 1, 32, 32, 4, 1)
    if dtype == torch.float32:
        if head_dim <= 64:
            return EcpTritonConfig(32, 16, 4, 2, 16, 32, 4, 2, 32, 16, 4, 2)
        return EcpTritonConfig(32, 16, 4, 2, 16, 16, 4, 2, 32, 16, 4, 2)
    if head_dim <= 32:
        return EcpTritonConfig(128, 64, 4, 3, 32, 128, 4, 3, 128, 32, 4, 3)
    return EcpTritonConfig(128, 64, 8, 3, 32, 128, 8, 3, 128, 32, 8, 3)


# ---------------------------------------------------------------------------------
# The band, in tiles. Shared by every kernel (and by the probe kernel the tests use).
# ---------------------------------------------------------------------------------
@triton.jit
def _query_tile_band(m0, N, S, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Key range of the query tile [m0, m0 + BLOCK_M), split into three phases.

    Returns (lo, full_lo, full_hi, hi): key tiles start at lo, lo + BLOCK_N, ...;
    tiles in [lo, full_lo) and [full_hi, hi) need the token mask, tiles in
    [full_lo, full_hi) are visible to every (real) query of the tile.
    """
    m_last = tl.minimum(m0 + BLOCK_M, N) - 1  # last real query of the tile
    hi = m_last + 1  # causal: no key after the last query
    # First key any query of the tile sees: start of the segment before m0's segment,
    # rounded down to a key-tile boundary (the extra keys are masked).
    lo = (tl.maximum(m0 // S - 1, 0) * S) // BLOCK_N * BLOCK_N
    # Keys every query sees start at the previous segment of the *last* query ...
    full_lo = tl.maximum(m_last // S - 1, 0) * S
    full_lo = tl.minimum(tl.cdiv(full_lo, BLOCK_N) * BLOCK_N, hi)
    # ... and end at the first query (j <= m0 <= i); whole tiles only.
    full_hi = (m0 + 1) // BLOCK_N * BLOCK_N
    full_hi = tl.maximum(full_hi, full_lo)  # no full tile: phase 2 empty, phase 3 = rest
    return lo, full_lo, full_hi, hi


@triton.jit
def _key_tile_band(n0, N, S, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """Query range that sees any key of the key tile [n0, n0 + BLOCK_N), in phases.

    Returns (lo, full_lo, full_hi, hi) over queries, in steps of BLOCK_M, as
    ``_query_tile_band`` does over keys.
    """
    n_last = tl.minimum(n0 + BLOCK_N, N) - 1  # last real key of the tile
    lo = n0 // BLOCK_M * BLOCK_M  # causal: no query before the first key
    # Queries up to the end of the segment after the last key's segment.
    hi = tl.minimum((n_last // S + 2) * S, N)
    # Query tiles that see every key: start at or after the last key ...
    full_lo = tl.minimum(tl.cdiv(n_last, BLOCK_M) * BLOCK_M, hi)
    # ... and end within the segment after the first key's segment (and before N).
    full_hi = tl.minimum((n0 // S + 2) * S, N) // BLOCK_M * BLOCK_M
    full_hi = tl.maximum(full_hi, full_lo)
    return lo, full_lo, full_hi, hi


@triton.jit
def _band_probe_kernel(Out, N, S, BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, KEY_TILES: tl.constexpr):
    """Test/teaching helper: writes (lo, full_lo, full_hi, hi) of tile program_id(0)."""
    t = tl.program_id(0)
    if KEY_TILES:
        lo, full_lo, full_hi, hi = _key_tile_band(t * BLOCK_A, N, S, BLOCK_A, BLOCK_B)
    else:
        lo, full_lo, full_hi, hi = _query_tile_band(t * BLOCK_A, N, S, BLOCK_A, BLOCK_B)
    tl.store(Out + t * 4 + 0, lo)
    tl.store(Out + t * 4 + 1, full_lo)
    tl.store(Out + t * 4 + 2, full_hi)
    tl.store(Out + t * 4 + 3, hi)


@triton.jit
def _mm(a, b, acc, INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with fp32 accumulation (UPCAST: widen to fp32 first, interpreter bf16)."""
    if UPCAST:
        a = a.to(tl.float32)
        b = b.to(tl.float32)
    return tl.dot(a, b, acc, input_precision=INPUT_PRECISION)


# ---------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------
@triton.jit
def _fwd_inner(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
               offs_m, offs_d, lo, hi, N, S, qk_scale,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
               INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Fold the key tiles starting at lo, lo + BLOCK_N, ... < hi into (acc, m_i, l_i)."""
    seg_q = offs_m // S
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        # K is loaded transposed, [D, BLOCK_N], so that the scores are q @ kT.
        kT_ptrs = k_base + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
        v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd
        if MASKED:  # the tile may run past N
            kT = tl.load(kT_ptrs, mask=offs_n[None, :] < N, other=0.0)
            v = tl.load(v_ptrs, mask=offs_n[:, None] < N, other=0.0)
        else:  # full tiles lie inside [0, m0]: no bounds check needed
            kT = tl.load(kT_ptrs)
            v = tl.load(v_ptrs)
        # Scores in log2 units: qk_scale = softmax scale * log2(e).
        s = _mm(q, kT, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32),
                INPUT_PRECISION, UPCAST) * qk_scale
        if MASKED:
            # The ECP rule, token by token. Keys >= N are never visible to a real
            # query (they fail j <= i), so the rule also masks the tile's padding.
            visible = (offs_n[None, :] <= offs_m[:, None]) & (seg_q[:, None] - (offs_n // S)[None, :] <= 1)
            s = tl.where(visible, s, float("-inf"))
        # Online softmax update.
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # Padding rows of the last query tile (i >= N) can be fully masked: their max
        # is -inf and -inf - (-inf) would be NaN. Subtract 0 instead; p is then 0.
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_sub[:, None])
        alpha = tl.exp2(m_i - m_sub)  # rescales what was accumulated so far
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = _mm(p.to(v.dtype), v, acc, INPUT_PRECISION, UPCAST)
        m_i = m_new
    return acc, m_i, l_i


@triton.jit
def _ecp_fwd_kernel(Q, K, V, O, STATS,
                    stride_qb, stride_qh, stride_qn, stride_qd,
                    stride_kb, stride_kh, stride_kn, stride_kd,
                    stride_vb, stride_vh, stride_vn, stride_vd,
                    stride_ob, stride_oh, stride_on, stride_od,
                    H, N, S, qk_scale,
                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One program: output rows [m0, m0 + BLOCK_M) of one (batch, head), and their
    softmax statistics (row max m, in log2 units, and denominator l).

    Grid: (cdiv(N, BLOCK_M), H, B).
    """
    pid_m = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    # 64-bit offsets of this (batch, head): B * H * N * D can exceed 2**31.
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    o_base = O + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
    stats_base = STATS + (b.to(tl.int64) * H + h) * 2 * N  # [2, N]: m, then l

    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :] * stride_qd,
                mask=row_ok[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running softmax denominator
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)  # running unnormalised output

    lo, full_lo, full_hi, hi = _query_tile_band(m0, N, S, BLOCK_M, BLOCK_N)
    # Phase 1: lower edge of the band (only when the tile straddles a segment border).
    acc, m_i, l_i = _fwd_inner(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn,
                               stride_vd, offs_m, offs_d, lo, full_lo, N, S, qk_scale,
                               BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)
    # Phase 2: key tiles every query of the tile sees -- no mask, no bounds checks.
    acc, m_i, l_i = _fwd_inner(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn,
                               stride_vd, offs_m, offs_d, full_lo, full_hi, N, S, qk_scale,
                               BLOCK_M, BLOCK_N, False, INPUT_PRECISION, UPCAST)
    # Phase 3: the diagonal (causal edge).
    acc, m_i, l_i = _fwd_inner(acc, m_i, l_i, q, k_base, v_base, stride_kn, stride_kd, stride_vn,
                               stride_vd, offs_m, offs_d, full_hi, hi, N, S, qk_scale,
                               BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)  # only padding rows can have l == 0
    out = acc / l_safe[:, None]
    tl.store(o_base + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od,
             out.to(O.dtype.element_ty), mask=row_ok[:, None])
    tl.store(stats_base + offs_m, m_i, mask=row_ok)
    tl.store(stats_base + N + offs_m, l_safe, mask=row_ok)


# ---------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------
@triton.jit
def _bwd_delta_kernel(O, DO, Delta,
                      stride_ob, stride_oh, stride_on, stride_od,
                      stride_dob, stride_doh, stride_don, stride_dod,
                      H, N, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """delta_i = sum_d dO_id * O_id, in fp32, for BLOCK_M rows. Grid: (cdiv(N, BLOCK_M), H, B)."""
    pid_m = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    o = tl.load(O + b.to(tl.int64) * stride_ob + h.to(tl.int64) * stride_oh
                + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od,
                mask=row_ok[:, None], other=0.0)
    do = tl.load(DO + b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
                 + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod,
                 mask=row_ok[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(Delta + (b.to(tl.int64) * H + h) * N + offs_m, delta, mask=row_ok)


@triton.jit
def _dkdv_inner(dk, dv, k, v, q_base, do_base, stats_base, delta_base,
                stride_qn, stride_qd, stride_don, stride_dod,
                offs_n, offs_d, lo, hi, N, S, qk_scale,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
                INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Accumulate dK, dV of one key tile over the query tiles lo, lo + BLOCK_M, ... < hi.

    Everything is computed transposed ([keys, queries]) so that the key tile's
    rows stay the rows of every product: sT = K Q^T, dV += P^T dO, dK += dS^T Q.
    Q is loaded already transposed ([D, BLOCK_M]), just as the forward loads K^T: the
    recomputed scores then come from the same kind of product as the forward's.
    """
    seg_k = offs_n // S
    for start_m in range(lo, hi, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        qT_ptrs = q_base + offs_d[:, None] * stride_qd + offs_m[None, :] * stride_qn
        do_ptrs = do_base + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod
        if MASKED:
            row_ok = offs_m < N
            qT = tl.load(qT_ptrs, mask=row_ok[None, :], other=0.0)
            do = tl.load(do_ptrs, mask=row_ok[:, None], other=0.0)
            m = tl.load(stats_base + offs_m, mask=row_ok, other=0.0)
            l = tl.load(stats_base + N + offs_m, mask=row_ok, other=1.0)
            delta = tl.load(delta_base + offs_m, mask=row_ok, other=0.0)
        else:
            qT = tl.load(qT_ptrs)
            do = tl.load(do_ptrs)
            m = tl.load(stats_base + offs_m)
            l = tl.load(stats_base + N + offs_m)
            delta = tl.load(delta_base + offs_m)
        # Recompute the probabilities from the saved statistics (see _ecp_backward).
        sT = _mm(k, qT, tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32),
                 INPUT_PRECISION, UPCAST) * qk_scale
        if MASKED:
            visible = ((offs_n[:, None] <= offs_m[None, :])
                       & ((offs_m // S)[None, :] - seg_k[:, None] <= 1)
                       & (offs_m < N)[None, :])
            # -inf before the exponential: exp2(-inf) = 0 exactly, and a huge invisible
            # score can never overflow to inf.
            sT = tl.where(visible, sT, float("-inf"))
        # P = exp(s - m) / l, with m and l the forward's row max and denominator.
        pT = tl.exp2(sT - m[None, :]) * (1.0 / l)[None, :]
        dv = _mm(pT.to(do.dtype), do, dv, INPUT_PRECISION, UPCAST)
        dpT = _mm(v, tl.trans(do), tl.zeros([BLOCK_N, BLOCK_M], dtype=tl.float32),
                  INPUT_PRECISION, UPCAST)
        dsT = pT * (dpT - delta[None, :])
        dk = _mm(dsT.to(qT.dtype), tl.trans(qT), dk, INPUT_PRECISION, UPCAST)
    return dk, dv


@triton.jit
def _ecp_bwd_dkdv_kernel(Q, K, V, DO, DK, DV, STATS, Delta,
                         stride_qb, stride_qh, stride_qn, stride_qd,
                         stride_kb, stride_kh, stride_kn, stride_kd,
                         stride_vb, stride_vh, stride_vn, stride_vd,
                         stride_dob, stride_doh, stride_don, stride_dod,
                         stride_dkb, stride_dkh, stride_dkn, stride_dkd,
                         H, N, S, qk_scale, sm_scale,
                         HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                         INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One program: dK and dV of keys [n0, n0 + BLOCK_N) of one (batch, head).

    Grid: (cdiv(N, BLOCK_N), H, B). DK and DV share strides (both allocated by us).
    """
    pid_n = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    do_base = DO + b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    row_base = (b.to(tl.int64) * H + h) * N
    stats_base = STATS + 2 * row_base
    delta_base = Delta + row_base

    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    key_ok = offs_n < N
    k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=key_ok[:, None], other=0.0)
    v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=key_ok[:, None], other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    lo, full_lo, full_hi, hi = _key_tile_band(n0, N, S, BLOCK_N, BLOCK_M)
    # Padding keys (>= N) of a partial key tile take part unmasked in phase 2; their
    # rows of dK/dV are garbage but never stored, and they touch nothing else.
    dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, stats_base, delta_base,
                         stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                         lo, full_lo, N, S, qk_scale, BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)
    dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, stats_base, delta_base,
                         stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                         full_lo, full_hi, N, S, qk_scale, BLOCK_M, BLOCK_N, False, INPUT_PRECISION, UPCAST)
    dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, stats_base, delta_base,
                         stride_qn, stride_qd, stride_don, stride_dod, offs_n, offs_d,
                         full_hi, hi, N, S, qk_scale, BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)

    dk = dk * sm_scale  # dS was taken w.r.t. the scaled scores
    out_offs = offs_n[:, None] * stride_dkn + offs_d[None, :] * stride_dkd
    out_base = b.to(tl.int64) * stride_dkb + h.to(tl.int64) * stride_dkh
    tl.store(DK + out_base + out_offs, dk.to(DK.dtype.element_ty), mask=key_ok[:, None])
    tl.store(DV + out_base + out_offs, dv.to(DV.dtype.element_ty), mask=key_ok[:, None])


@triton.jit
def _dq_inner(dq, q, do, m, inv_l, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
              offs_m, offs_d, lo, hi, N, S, qk_scale,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, MASKED: tl.constexpr,
              INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """Accumulate dQ of one query tile over the key tiles lo, lo + BLOCK_N, ... < hi."""
    seg_q = offs_m // S
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kT_ptrs = k_base + offs_d[:, None] * stride_kd + offs_n[None, :] * stride_kn
        vT_ptrs = v_base + offs_d[:, None] * stride_vd + offs_n[None, :] * stride_vn
        if MASKED:
            kT = tl.load(kT_ptrs, mask=offs_n[None, :] < N, other=0.0)
            vT = tl.load(vT_ptrs, mask=offs_n[None, :] < N, other=0.0)
        else:
            kT = tl.load(kT_ptrs)
            vT = tl.load(vT_ptrs)
        s = _mm(q, kT, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32),
                INPUT_PRECISION, UPCAST) * qk_scale
        if MASKED:
            visible = (offs_n[None, :] <= offs_m[:, None]) & (seg_q[:, None] - (offs_n // S)[None, :] <= 1)
            s = tl.where(visible, s, float("-inf"))
        p = tl.exp2(s - m[:, None]) * inv_l[:, None]
        dp = _mm(do, vT, tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32),
                 INPUT_PRECISION, UPCAST)
        ds = p * (dp - delta[:, None])
        dq = _mm(ds.to(kT.dtype), tl.trans(kT), dq, INPUT_PRECISION, UPCAST)
    return dq


@triton.jit
def _ecp_bwd_dq_kernel(Q, K, V, DO, DQ, STATS, Delta,
                       stride_qb, stride_qh, stride_qn, stride_qd,
                       stride_kb, stride_kh, stride_kn, stride_kd,
                       stride_vb, stride_vh, stride_vn, stride_vd,
                       stride_dob, stride_doh, stride_don, stride_dod,
                       stride_dqb, stride_dqh, stride_dqn, stride_dqd,
                       H, N, S, qk_scale, sm_scale,
                       HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One program: dQ of queries [m0, m0 + BLOCK_M) of one (batch, head).

    Visits exactly the forward's band. Grid: (cdiv(N, BLOCK_M), H, B).
    """
    pid_m = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    q_base = Q + b.to(tl.int64) * stride_qb + h.to(tl.int64) * stride_qh
    k_base = K + b.to(tl.int64) * stride_kb + h.to(tl.int64) * stride_kh
    v_base = V + b.to(tl.int64) * stride_vb + h.to(tl.int64) * stride_vh
    do_base = DO + b.to(tl.int64) * stride_dob + h.to(tl.int64) * stride_doh
    row_base = (b.to(tl.int64) * H + h) * N

    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < N
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :] * stride_qd,
                mask=row_ok[:, None], other=0.0)
    do = tl.load(do_base + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod,
                 mask=row_ok[:, None], other=0.0)
    m = tl.load(STATS + 2 * row_base + offs_m, mask=row_ok, other=0.0)
    inv_l = 1.0 / tl.load(STATS + 2 * row_base + N + offs_m, mask=row_ok, other=1.0)
    delta = tl.load(Delta + row_base + offs_m, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    lo, full_lo, full_hi, hi = _query_tile_band(m0, N, S, BLOCK_M, BLOCK_N)
    dq = _dq_inner(dq, q, do, m, inv_l, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                   offs_m, offs_d, lo, full_lo, N, S, qk_scale, BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)
    dq = _dq_inner(dq, q, do, m, inv_l, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                   offs_m, offs_d, full_lo, full_hi, N, S, qk_scale, BLOCK_M, BLOCK_N, False, INPUT_PRECISION, UPCAST)
    dq = _dq_inner(dq, q, do, m, inv_l, delta, k_base, v_base, stride_kn, stride_kd, stride_vn, stride_vd,
                   offs_m, offs_d, full_hi, hi, N, S, qk_scale, BLOCK_M, BLOCK_N, True, INPUT_PRECISION, UPCAST)

    dq = dq * sm_scale
    tl.store(DQ + b.to(tl.int64) * stride_dqb + h.to(tl.int64) * stride_dqh
             + offs_m[:, None] * stride_dqn + offs_d[None, :] * stride_dqd,
             dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])


# ---------------------------------------------------------------------------------
# Python side: checks, launches, autograd
# ---------------------------------------------------------------------------------
# What @triton.jit decided when this module was imported: CPU interpreter (it read
# TRITON_INTERPRET then) or GPU compiler. Asked of a kernel object rather than by
# re-reading the variable, which may have changed since.
_INTERPRET_AT_IMPORT = type(_ecp_fwd_kernel).__name__ == "InterpretedFunction"


def check_interpreter_compatible(triton_version: str | None = None, numpy_version: str | None = None) -> None:
    """Fail early, with the fix, on a Triton interpreter that cannot run these kernels.

    Triton 3.6's CPU interpreter turns a loop bound (a one-element array) into an int
    with ``int(array)``, which NumPy >= 2.4 rejects ("only 0-dimensional arrays can be
    converted to Python scalars", raised deep inside the first ``range`` over tiles).
    Triton 3.7 fixed it. Measured here: Triton 3.6 + NumPy 2.4.6 fails, Triton 3.6 +
    NumPy 2.3.5 and Triton 3.9 + NumPy 2.4.6 pass every interpreter test. GPU runs do
    not use the interpreter and are unaffected.

    Raises:
        RuntimeError: Triton < 3.7 together with NumPy >= 2.4.
    """
    import numpy
    from packaging.version import Version

    tv = Version(triton_version or triton.__version__)
    nv = Version(numpy_version or numpy.__version__)
    if tv < Version("3.7") and nv >= Version("2.4.0rc0"):
        raise RuntimeError(
            f"Triton {triton_version or triton.__version__}'s CPU interpreter (TRITON_INTERPRET=1) cannot "
            f"run with NumPy {numpy_version or numpy.__version__}: install triton>=3.7 or numpy<2.4 "
            "(on a GPU, unset TRITON_INTERPRET).")


def _check_inputs(q, k, v, segment_len, scale, input_precision, config) -> float:
    """Validate everything the kernels assume; return the softmax scale to use."""
    if _INTERPRET_AT_IMPORT:
        check_interpreter_compatible()
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} has dtype {t.dtype}; ecp_attention_triton supports "
                            f"{', '.join(str(d) for d in SUPPORTED_DTYPES)}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape [B, H, N, D], got {tuple(t.shape)}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must have the same shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    if q.device.type != "cuda" and not _INTERPRET_AT_IMPORT:
        raise ValueError(
            f"ecp_attention_triton needs CUDA tensors, got device {q.device}. To run the "
            "kernel on a CPU, set TRITON_INTERPRET=1 *before* minecp.ops.ecp_triton is "
            "imported (Triton picks interpreter or GPU at kernel definition), or use "
            "backend='torch'.")
    B, H, N, D = q.shape
    if D not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim (last dim of q) must be one of {SUPPORTED_HEAD_DIMS}, got {D}")
    if not isinstance(segment_len, int) or isinstance(segment_len, bool):
        raise TypeError(f"segment_len must be an int, got {type(segment_len).__name__}")
    if segment_len < MIN_SEGMENT_LEN:
        raise ValueError(f"segment_len must be >= {MIN_SEGMENT_LEN} for the Triton kernel, "
                         f"got {segment_len} (use backend='torch' for tiny segments)")
    if N % segment_len != 0:
        raise ValueError(f"sequence length N={N} must be a multiple of segment_len={segment_len}")
    if B > 65535 or H > 65535:  # grid axes 1 and 2 (CUDA limit)
        raise ValueError(f"batch B={B} and heads H={H} must each be <= 65535")
    for name, t in (("q", q), ("k", k), ("v", v)):
        # Offsets inside one (batch, head) slice are 32-bit in the kernels.
        if N and (N - 1) * abs(t.stride(2)) + (D - 1) * abs(t.stride(3)) >= 2**31:
            raise ValueError(f"{name}: one (batch, head) slice spans >= 2**31 elements "
                             f"(strides {t.stride()}); make it contiguous or shorter")
    if input_precision not in INPUT_PRECISIONS:
        raise ValueError(f"input_precision must be one of {INPUT_PRECISIONS}, got {input_precision!r}")
    if config is not None:
        if not isinstance(config, EcpTritonConfig):
            raise TypeError(f"config must be an EcpTritonConfig or None, got {type(config).__name__}")
        config.validate()
    if scale is None:
        return 1.0 / math.sqrt(D)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite real number or None, got {scale!r}")
    return float(scale)


def _launch_opts(q: torch.Tensor, input_precision: str) -> dict:
    # Under the interpreter, bf16 tl.dot is broken: widen bf16 operands to fp32 (exact).
    upcast = _INTERPRET_AT_IMPORT and q.dtype == torch.bfloat16
    return {"INPUT_PRECISION": input_precision, "UPCAST": upcast}


def _ecp_forward(q, k, v, S, sm_scale, cfg: EcpTritonConfig, input_precision: str):
    """Launch the forward kernel.

    Returns (o, stats): o [B, H, N, D] contiguous in q's dtype; stats [B, H, 2, N] fp32,
    ``stats[:, :, 0]`` the row maxima m of the scores in log2 units (scores times
    scale * log2(e)), ``stats[:, :, 1]`` the softmax denominators l, so that the
    natural log-sum-exp is ``(m + log2(l)) * ln(2)`` (see :func:`lse_from_stats`).
    """
    B, H, N, D = q.shape
    o = torch.empty((B, H, N, D), dtype=q.dtype, device=q.device)
    stats = torch.empty((B, H, 2, N), dtype=torch.float32, device=q.device)
    if o.numel() == 0:  # B, H or N is 0: nothing to launch
        return o, stats
    grid = (triton.cdiv(N, cfg.fwd_block_m), H, B)
    _ecp_fwd_kernel[grid](
        q, k, v, o, stats, *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        H, N, S, sm_scale * _LOG2E,
        HEAD_DIM=D, BLOCK_M=cfg.fwd_block_m, BLOCK_N=cfg.fwd_block_n,
        num_warps=cfg.fwd_warps, num_stages=cfg.fwd_stages, **_launch_opts(q, input_precision))
    return o, stats


def lse_from_stats(stats: torch.Tensor) -> torch.Tensor:
    """Natural log-sum-exp [B, H, N] of the visible scaled scores, from the forward's stats."""
    return (stats[:, :, 0] + torch.log2(stats[:, :, 1])) * _LN2


def _ecp_backward(do, q, k, v, o, stats, S, sm_scale, cfg: EcpTritonConfig, input_precision: str):
    """Launch delta, dK/dV and dQ kernels. Returns (dq, dk, dv), contiguous, dtype of q."""
    B, H, N, D = q.shape
    if q.numel() == 0:
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    opts = _launch_opts(q, input_precision)
    delta = torch.empty((B, H, N), dtype=torch.float32, device=q.device)
    _bwd_delta_kernel[(triton.cdiv(N, cfg.dq_block_m), H, B)](
        o, do, delta, *o.stride(), *do.stride(), H, N, HEAD_DIM=D, BLOCK_M=cfg.dq_block_m)
    dq = torch.empty((B, H, N, D), dtype=q.dtype, device=q.device)
    dk = torch.empty_like(dq)
    dv = torch.empty_like(dq)
    _ecp_bwd_dkdv_kernel[(triton.cdiv(N, cfg.dkdv_block_n), H, B)](
        q, k, v, do, dk, dv, stats, delta,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(),
        H, N, S, sm_scale * _LOG2E, sm_scale,
        HEAD_DIM=D, BLOCK_M=cfg.dkdv_block_m, BLOCK_N=cfg.dkdv_block_n,
        num_warps=cfg.dkdv_warps, num_stages=cfg.dkdv_stages, **opts)
    _ecp_bwd_dq_kernel[(triton.cdiv(N, cfg.dq_block_m), H, B)](
        q, k, v, do, dq, stats, delta,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq.stride(),
        H, N, S, sm_scale * _LOG2E, sm_scale,
        HEAD_DIM=D, BLOCK_M=cfg.dq_block_m, BLOCK_N=cfg.dq_block_n,
        num_warps=cfg.dq_warps, num_stages=cfg.dq_stages, **opts)
    return dq, dk, dv


class EcpAttentionTriton(torch.autograd.Function):
    """Autograd wrapper: forward saves (q, k, v, o, stats) -- O(N) extra, not O(N * S)."""

    @staticmethod
    def forward(ctx, q, k, v, segment_len, sm_scale, config, input_precision):
        o, stats = _ecp_forward(q, k, v, segment_len, sm_scale, config, input_precision)
        ctx.save_for_backward(q, k, v, o, stats)
        ctx.segment_len = segment_len
        ctx.sm_scale = sm_scale
        ctx.config = config
        ctx.input_precision = input_precision
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, stats = ctx.saved_tensors
        dq, dk, dv = _ecp_backward(do, q, k, v, o, stats, ctx.segment_len, ctx.sm_scale,
                                   ctx.config, ctx.input_precision)
        return dq, dk, dv, None, None, None, None


def ecp_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_len: int,
    scale: float | None = None,
    *,
    input_precision: str = "ieee",
    config: EcpTritonConfig | None = None,
) -> torch.Tensor:
    """ECP pairwise segment attention, fused Triton kernel (forward and backward).

    Query i sees key j iff ``j <= i`` and ``i // S - j // S <= 1`` (S = ``segment_len``),
    as :func:`minecp.masks.ecp_rule`. Differentiable in q, k and v.

    Args:
        q, k, v: [B, H, N, D] tensors of one dtype (float32, float16 or bfloat16) on one
            CUDA device (or CPU when ``TRITON_INTERPRET=1`` was set before this module
            was imported). D in (32, 64, 128); any B, H; N a multiple of S. Any strides
            (transposed or sliced views are read in place, no copy).
        segment_len: S >= 16.
        scale: softmax scale, default ``1 / sqrt(D)``.
        input_precision: ``"ieee"`` (default, exact fp32 products) or ``"tf32"``; only
            matters for float32 inputs on a GPU.
        config: block sizes (:class:`EcpTritonConfig`); default :func:`default_config`.

    Returns:
        Tensor [B, H, N, D], dtype of ``q``, contiguous. Gradients likewise.
        Memory beyond inputs and output: two fp32 softmax statistics per row (max and
        denominator), O(B * H * N).

    Raises:
        TypeError: a non-tensor input, an unsupported or mixed dtype, a non-int
            ``segment_len``, a config of the wrong type.
        ValueError: wrong shapes, ``head_dim`` not in (32, 64, 128), ``segment_len``
            < 16, N not a multiple of ``segment_len``, tensors not on CUDA (outside the
            interpreter), a non-finite scale, an unknown ``input_precision``, an
            invalid config, B or H > 65535, a (batch, head) slice spanning >= 2**31
            elements (offsets inside a slice are 32-bit).
        RuntimeError: under ``TRITON_INTERPRET=1``, Triton < 3.7 with NumPy >= 2.4
            (:func:`check_interpreter_compatible`).

    Source: arXiv 2412.06106; docs/architectures.md §6; FlashAttention-2 (Dao 2023), Algorithms 1-2.
    """
    sm_scale = _check_inputs(q, k, v, segment_len, scale, input_precision, config)
    if config is None:
        config = default_config(q.shape[-1], q.dtype)
    return EcpAttentionTriton.apply(q, k, v, segment_len, sm_scale, config, input_precision)


def tile_bands(N: int, segment_len: int, block_a: int, block_b: int, key_tiles: bool = False,
               device: str | torch.device | None = None) -> torch.Tensor:
    """The band each tile visits, as the kernels compute it (teaching and tests).

    Runs the kernels' own band helper. For query tiles of ``block_a`` rows
    (``key_tiles=False``) returns int32 [cdiv(N, block_a), 4] rows ``(lo, full_lo,
    full_hi, hi)`` over keys in steps of ``block_b``; for key tiles (``key_tiles=True``)
    the same over queries. Tiles in [lo, full_lo) and [full_hi, hi) are masked,
    tiles in [full_lo, full_hi) are not.
    """
    if device is None:
        device = "cpu" if _INTERPRET_AT_IMPORT else "cuda"
    tiles = triton.cdiv(N, block_a)
    out = torch.empty((tiles, 4), dtype=torch.int32, device=device)
    _band_probe_kernel[(tiles,)](out, N, segment_len, BLOCK_A=block_a, BLOCK_B=block_b,
                                 KEY_TILES=key_tiles)
    return out


__all__ = ["ecp_attention_triton", "EcpAttentionTriton", "EcpTritonConfig", "default_config",
           "tile_bands", "SUPPORTED_HEAD_DIMS", "SUPPORTED_DTYPES", "MIN_SEGMENT_LEN"]
