"""The fast CPU path (backend "sdpa", minecp/ops/ecp_sdpa.py) against the float64 golden.

Accuracy rule of docs/testing.md: for the same random inputs compute the fast path's
output, a float64 golden (dense attention with the explicit token-level ECP mask) and a
same-precision reference (plain matmul + softmax in the fast path's dtype, the readable
segment-tile backend "torch", and PyTorch's own fused SDPA kernel given the explicit
mask: with very large logits every flash-style backward, PyTorch's included, loses
accuracy by recomputing probabilities from a float32 log-sum-exp); require

    max|fast - golden| <= 2 * max|reference - golden| + atol_floor

for the output and (factor 3) for dQ, dK, dV under one shared upstream gradient, where
atol_floor is the dtype's rounding step at the output's magnitude. Any NaN fails.
"""

import pytest
import torch
import torch.nn.functional as F

from minecp.attention import reference_attention
from minecp.masks import ecp_rule, mask_matrix
from minecp.ops import ecp_attention, ecp_sdpa

pytestmark = pytest.mark.skipif(not ecp_sdpa.available(), reason="no CPU flash-attention operators")

EPS = {torch.float32: torch.finfo(torch.float32).eps, torch.bfloat16: torch.finfo(torch.bfloat16).eps,
       torch.float16: torch.finfo(torch.float16).eps}


def _run(fn, q, k, v, grad_out):
    """Output and (dq, dk, dv) of ``fn`` for leaf copies of q, k, v."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves, grad_out.to(out.dtype))


def _err(a, b):
    return (a.double() - b.double()).abs().max().item()


def _check(B, H, N, S, D, dtype, *, layout="bhnd", logit_scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, N, D, generator=g, dtype=torch.float64) for _ in range(3))
    q = q * logit_scale
    grad_out = torch.randn(B, H, N, D, generator=g, dtype=torch.float64)
    mask = mask_matrix(ecp_rule(S), N)

    golden, golden_grads = _run(lambda q, k, v: reference_attention(q, k, v, mask), q, k, v, grad_out)
    low = [t.to(dtype) for t in (q, k, v)]
    if layout == "bnhd":   # the model's layout: [B, N, H, D] memory seen as [B, H, N, D]
        low = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in low]
        assert not low[0].is_contiguous()
    fast, fast_grads = _run(lambda q, k, v: ecp_attention(q, k, v, S, backend="sdpa"), *low, grad_out)
    plain, plain_grads = _run(lambda q, k, v: reference_attention(q, k, v, mask), *low, grad_out)
    tiles, tiles_grads = _run(lambda q, k, v: ecp_attention(q, k, v, S, backend="torch"), *low, grad_out)
    fused, fused_grads = _run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                              *low, grad_out)

    assert fast.dtype == dtype and fast.shape == (B, H, N, D)
    floor = EPS[dtype] * golden.abs().max().item()
    rows = [("out", fast, (plain, tiles, fused), golden, 2)] + [
        (f"d{n}", f, refs, gd, 3)
        for n, f, gd, *refs in zip("qkv", fast_grads, golden_grads, plain_grads, tiles_grads, fused_grads)]
    for name, f, refs, gold, factor in rows:
        assert not torch.isnan(f).any(), f"{name}: NaN"
        floor_here = EPS[dtype] * gold.abs().max().item()
        ref_err = max(_err(r, gold) for r in refs)
        bound = factor * ref_err + max(floor, floor_here)
        assert _err(f, gold) <= bound, (f"{name}: |fast - golden| = {_err(f, gold):.3g} > {bound:.3g} "
                                        f"(references: {[f'{_err(r, gold):.3g}' for r in refs]})")


# (B, H, N, S, D): the two-call path (s >= 3, S >= 16), tiny tiles (S < 16: one masked
# call up to N = 1024, two calls above), s <= 2 (one causal call), segment lengths that
# are not multiples of the kernel's blocks, batch > 1 (the "ghost" pairs across batch
# elements), head dims 8 ... 128.
CASES = [
    (2, 3, 48, 16, 16),       # two calls, 3 segments, B = 2
    (3, 2, 300, 100, 64),     # S not a power of two, B = 3
    (1, 2, 256, 64, 128),     # D = 128
    (2, 1, 1280, 10, 8),      # S < 16 but N > 1024: two calls with tiny tiles
    (1, 2, 60, 12, 32),       # S < 16, small N: one masked call
    (2, 2, 16, 16, 32),       # a single segment: causal
    (2, 2, 96, 48, 32),       # two segments: causal
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B,H,N,S,D", CASES)
def test_fast_path_matches_golden(B, H, N, S, D, dtype):
    _check(B, H, N, S, D, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_path_on_the_models_layout(dtype):
    _check(2, 4, 128, 32, 16, dtype, layout="bnhd")


def test_fast_path_float16():
    _check(2, 2, 96, 32, 32, torch.float16)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_logits_do_not_leak_through_the_mask(dtype):
    """|q.k| >> 100: a finite mask value (or a sloppy merge) would let masked keys win."""
    _check(2, 2, 128, 32, 32, dtype, logit_scale=40.0, seed=1)


def test_future_and_far_keys_have_no_influence():
    """Token-level: changing keys/values a query must not see leaves its output bit-identical."""
    B, H, N, S, D = 1, 2, 96, 16, 8
    q, k, v = (torch.randn(B, H, N, D) for _ in range(3))
    out = ecp_attention(q, k, v, S, backend="sdpa")
    i = 50                                              # segment 3: sees keys 32 ... 50
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 51:] += 1e3                                # the future
    k2[:, :, :32] -= 1e3                                # before the previous segment
    v2[:, :, 51:] = 1e6                                 # (not NaN: 0 * NaN is NaN in any matmul)
    v2[:, :, :32] = -1e6
    out2 = ecp_attention(q, k2, v2, S, backend="sdpa")
    assert torch.equal(out[:, :, i], out2[:, :, i])


def test_routes_for_short_windows():
    """s <= 2 is one causal call, tiny tiles at small N one masked call, else two calls."""
    def grad_fn_name(N, S):
        q = torch.randn(1, 1, N, 8, requires_grad=True)
        return type(ecp_attention(q, q, q, S, backend="sdpa").grad_fn).__name__

    assert "TwoCall" in grad_fn_name(64, 16)
    assert "TwoCall" not in grad_fn_name(64, 32)          # two segments
    assert "TwoCall" not in grad_fn_name(64, 8)           # S < MIN_TILE, N <= MAX_MASKED_N
    assert "TwoCall" in grad_fn_name(ecp_sdpa.MAX_MASKED_N * 2, 8)
    q, k, v = (torch.randn(1, 2, 64, 8) for _ in range(3))
    assert torch.equal(ecp_attention(q, k, v, 32, backend="sdpa"),
                       F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_memory_is_linear_in_n():
    """What the fast path saves for backward is O(N * D): no [S, 2S] tiles, no N x N."""
    B, H, N, S, D = 1, 2, 1024, 64, 8
    q, k, v = (torch.randn(B, H, N, D, requires_grad=True) for _ in range(3))
    largest = 0

    def pack(t):
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ecp_attention(q, k, v, S, backend="sdpa").sum().backward()
    assert largest <= B * H * N * D


@pytest.mark.parametrize("native", [False, True])
def test_bf16_in_fp32_and_natively(monkeypatch, native):
    """Both bf16 routes (fp32 compute on CPUs without bf16 instructions, the native kernel
    on CPUs with them) meet the rule, whichever CPU runs the tests."""
    monkeypatch.setattr(ecp_sdpa, "native_low_precision", lambda: native)
    _check(2, 2, 192, 32, 32, torch.bfloat16, seed=3)
    q = torch.randn(1, 2, 96, 16, dtype=torch.bfloat16, requires_grad=True)
    out = ecp_attention(q, q, q, 16, backend="sdpa")
    out.sum().backward()
    assert out.dtype == q.grad.dtype == torch.bfloat16
