"""Graded tests of assignment 04: ECP's visibility rule, segment-pair attention, receptive field.

minecp is the oracle: :func:`minecp.masks.ecp_rule` for the mask, :func:`minecp.ops.ecp_attention`
(``backend="torch"``) as the same-precision reference and float64 attention under the explicit
token mask as the golden, :func:`minecp.masks.receptive_field_rule` for what L layers reach.
Accuracy rule (docs/testing.md): ``max|yours - golden| <= 2 * max|reference - golden| + floor``
(factor 3 for gradients), the floor being a few units of rounding at the output's magnitude.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from assignments.kit import GradingFailure, compare_masks, compare_tensors, graded
from minecp.config import ModelConfig
from minecp.masks import ecp_rule, mask_matrix, receptive_field_rule
from minecp.models.ecp import ECP
from minecp.ops import ecp_attention

VIS, ATT, RF = "visibility rule", "segment-pair attention", "receptive field"


# ----------------------------------------------------------------------------------- helpers
def _inputs(B, H, N, D, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, N, D, generator=g, dtype=torch.float64).to(dtype) for _ in range(3)]


def _golden(q, k, v, S, scale):
    """float64 dense attention under the explicit token-level ECP mask (O(N^2), tests only)."""
    q, k, v = (t.double() for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask_matrix(ecp_rule(S), q.shape[-2]), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def _floor(dtype, magnitude):
    return 4 * torch.finfo(dtype).eps * max(1.0, magnitude)


def _check_rule(yours, ref, gold, factor, what, floor=None):
    """docs/testing.md: |yours - golden| <= factor * |reference - golden| + floor."""
    if not isinstance(yours, torch.Tensor):
        raise GradingFailure(f"{what}: expected a torch.Tensor, got {type(yours).__name__}")
    if yours.dtype != ref.dtype:
        raise GradingFailure(f"{what}: dtype {yours.dtype} (yours) vs {ref.dtype} (same as q)")
    ref_err = (ref.double() - gold).abs().max().item()
    floor = _floor(ref.dtype, gold.abs().max().item()) if floor is None else floor
    compare_tensors(yours.detach().double(), gold, what=f"{what} vs float64 golden", atol=factor * ref_err + floor,
                    rtol=0.0)


def _call_attention(sub, q, k, v, S, scale=None):
    out = sub.ecp_attention_segments(q, k, v, S, scale=scale)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(q.shape):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise GradingFailure(f"ecp_attention_segments: returned {shape}, expected a tensor of "
                             f"shape {tuple(q.shape)} ([B, H, N, D], like q)")
    return out


# ------------------------------------------------------------------------- visibility rule
@graded(VIS, points=2)
def test_mask_one_picture(sub):
    """N = 12, S = 4: three segments, small enough to read the picture."""
    compare_masks(sub.ecp_mask(12, 4), mask_matrix(ecp_rule(4), 12), what="ecp_mask(12, 4)")


@graded(VIS, points=2)
def test_mask_edge_cases(sub):
    """S = 1 (each query sees itself and its predecessor), one segment (plain causal),
    N not a multiple of S (a short last segment), and larger masks."""
    for n, S in [(8, 1), (10, 10), (10, 4), (30, 7), (64, 8)]:
        compare_masks(sub.ecp_mask(n, S), mask_matrix(ecp_rule(S), n), what=f"ecp_mask({n}, {S})")


# ------------------------------------------------------------------ segment-pair attention
def _check_pattern(sub, N, S):
    """With v = identity [N, N], output row i *is* query i's attention probabilities: compare
    that map with the golden one and attach both pictures (which keys does yours use?)."""
    q, k, _ = _inputs(1, 1, N, N, seed=N + S)
    eye = torch.eye(N).expand(1, 1, N, N)
    yours = _call_attention(sub, q, k, eye, S)
    ref = ecp_attention(q, k, eye, S, backend="torch")
    gold = _golden(q, k, eye, S, 1 / math.sqrt(N))
    ref_err = (ref.double() - gold).abs().max().item()
    compare_tensors(yours.detach().double(), gold, atol=2 * ref_err + _floor(torch.float32, 1.0), rtol=0.0,
                    picture=True, what=f"attention probabilities (N={N}, S={S}; row = query, column = key; "
                                       "read off with v = identity)")


@graded(ATT, points=3)
def test_attention_forward(sub):
    """The attention pattern itself (v = identity, so the output is the probability map), then
    fp32 outputs against the float64 golden, one segment up to many, B and H > 1."""
    _check_pattern(sub, 12, 4)
    for B, H, S, s, D, seed in [(1, 1, 4, 3, 8, 0), (2, 3, 8, 4, 16, 1), (1, 2, 16, 1, 8, 2),
                                (1, 1, 1, 6, 4, 3), (2, 1, 12, 5, 32, 4)]:
        q, k, v = _inputs(B, H, s * S, D, seed=seed)
        scale = 1 / math.sqrt(D)
        yours = _call_attention(sub, q, k, v, S)
        ref = ecp_attention(q, k, v, S, backend="torch")
        _check_rule(yours, ref, _golden(q, k, v, S, scale), 2,
                    f"ecp_attention_segments(B={B}, H={H}, N={s * S}, D={D}, S={S})")


@graded(ATT, points=1)
def test_attention_scale(sub):
    """An explicit ``scale`` replaces 1/sqrt(D)."""
    q, k, v = _inputs(1, 2, 24, 8, seed=5)
    yours = _call_attention(sub, q, k, v, 8, scale=0.7)
    ref = ecp_attention(q, k, v, 8, backend="torch", scale=0.7)
    _check_rule(yours, ref, _golden(q, k, v, 8, 0.7), 2, "ecp_attention_segments(..., scale=0.7)")


@graded(ATT, points=2)
def test_attention_gradients(sub):
    """dQ, dK, dV for one shared random upstream gradient, against the float64 golden."""
    B, H, S, N, D = 2, 2, 6, 24, 8
    q, k, v = _inputs(B, H, N, D, seed=6)
    do = torch.randn(B, H, N, D, generator=torch.Generator().manual_seed(7))

    def grads(fn, dtype):
        leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        if not out.requires_grad:
            raise GradingFailure("ecp_attention_segments: the output does not require grad — "
                                 "is something detached (.detach(), .item(), torch.no_grad)?")
        return torch.autograd.grad(out, leaves, do.to(dtype))

    yours = grads(lambda a, b, c: _call_attention(sub, a, b, c, S), torch.float32)
    ref = grads(lambda a, b, c: ecp_attention(a, b, c, S, backend="torch"), torch.float32)
    gold = grads(lambda a, b, c: _golden(a, b, c, S, 1 / math.sqrt(D)), torch.float64)
    for name, y, r, g in zip(("dq", "dk", "dv"), yours, ref, gold):
        _check_rule(y, r, g, 3, f"gradient {name}")


@graded(ATT, points=2)
def test_attention_large_logits(sub):
    """Every visible score is about -1.6e4 and has a clear winner; a finite "large negative"
    mask value such as -1e4 would then outweigh the visible keys. float64, so the only
    tolerance needed is rounding at that logit size."""
    B, H, S, N, D = 1, 2, 8, 32, 16
    g = torch.Generator().manual_seed(8)
    q = 10 * torch.randn(B, H, N, D, generator=g, dtype=torch.float64)
    k = 10 * torch.randn(B, H, N, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, H, N, D, generator=g, dtype=torch.float64)
    q[..., 0], k[..., 0] = 250.0, -250.0            # q.k ~ -62500 -> scores ~ -1.6e4 (scale 1/4)
    scale = 1 / math.sqrt(D)
    gold = _golden(q, k, v, S, scale)
    yours = _call_attention(sub, q, k, v, S)
    ref = ecp_attention(q, k, v, S, backend="torch")
    logits = (q @ k.transpose(-1, -2)).abs().max().item() * scale
    floor = 8 * torch.finfo(torch.float64).eps * logits * v.abs().max().item()
    _check_rule(yours, ref, gold, 2, "ecp_attention_segments with scores near -1.6e4 (float64)", floor=floor)


class _LargestAllocation(TorchDispatchMode):
    """Records the largest storage (bytes) that any PyTorch operation returns while active.

    A tensor-size hook, not a timer: it sees every aten op the function runs (matmul, softmax,
    masked_fill, arange, comparisons ...), so an [N, N] scores matrix or mask cannot hide.
    """

    def __init__(self):
        super().__init__()
        self.bytes, self.op, self.shape = 0, None, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                nbytes = t.untyped_storage().nbytes()
                if nbytes > self.bytes:
                    self.bytes, self.op, self.shape = nbytes, str(func), tuple(t.shape)
        return out


@graded(ATT, points=2)
def test_attention_memory_is_n_times_s(sub):
    """N = 2048, S = 8: an [N, N] bool mask would take 4 MiB, fp32 scores 16 MiB; the
    segment-pair tiles [N/S, S, 2S] need 64 KiB each. Nothing over 1 MiB may be allocated."""
    B, H, S, N, D = 1, 1, 8, 2048, 8
    q, k, v = _inputs(B, H, N, D, seed=9)
    limit = 1 << 20
    with torch.no_grad(), _LargestAllocation() as probe:
        out = _call_attention(sub, q, k, v, S)
    if probe.bytes > limit:
        raise GradingFailure(
            f"ecp_attention_segments(N={N}, S={S}, D={D}) created a tensor of {probe.bytes / 2**20:.1f} MiB "
            f"(shape {list(probe.shape)}, by {probe.op}); the limit is 1 MiB. An [N, N] matrix "
            f"(N*N = {N * N} cells) means O(N^2) memory: build [N/S, S, 2S] tiles instead.")
    ref = ecp_attention(q, k, v, S, backend="torch")
    compare_tensors(out, ref, what=f"ecp_attention_segments(N={N}, S={S}) vs minecp", atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------- receptive field
def _first_visible(N, S, L):
    """First True column per row of minecp's receptive field: [N] long."""
    return receptive_field_rule(N, S, L).int().argmax(dim=1)


@graded(RF, points=2)
def test_receptive_field_prediction(sub):
    """receptive_field_start(i, S, L) for every query i, several S and L (L = 0 included)."""
    for N, S, L in [(32, 4, 0), (32, 4, 1), (32, 4, 2), (32, 4, 3), (30, 5, 2), (64, 8, 9), (12, 1, 4)]:
        expected = _first_visible(N, S, L).tolist()
        yours = [sub.receptive_field_start(i, S, L) for i in range(N)]
        bad = [i for i in range(N) if yours[i] != expected[i]]
        if bad:
            i = bad[0]
            raise GradingFailure(
                f"receptive_field_start(i, segment_len={S}, layers={L}) differs for {len(bad)} of {N} "
                f"queries; first at i={i}: yours {yours[i]!r}, expected {expected[i]} "
                f"(query i is in segment {i // S}; after {L} layer(s) it reaches back "
                f"{L} segment(s), clamped at 0)")


def _small_ecp(layers, seed):
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=16, seq_len=32, d_model=16, n_heads=2, n_layers=layers, num_segments=8)
    model = ECP(cfg, attention_backend="torch").double().eval()
    x = torch.randn(1, cfg.seq_len, cfg.d_model, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    return model, x, cfg.segment_len


def _check_measured(sub, trunk, x, expected, what):
    for i, e in enumerate(expected):
        got = sub.measure_first_dependency(trunk, x.clone(), i)
        if got != e:
            raise GradingFailure(f"measure_first_dependency on {what}: output {i} — yours {got!r}, "
                                 f"expected {e} (the earliest input with a nonzero gradient)")


@graded(RF, points=2)
def test_receptive_field_measured_on_ecp(sub):
    """Gradients through random float64 ECP models (N = 32, S = 4) of 1, 2 and 3 layers."""
    for layers in (1, 2, 3):
        model, x, S = _small_ecp(layers, seed=layers)
        expected = _first_visible(x.shape[1], S, layers).tolist()
        _check_measured(sub, model.trunk, x, expected, f"a {layers}-layer ECP model (N=32, S={S})")


class _CausalConv(nn.Module):
    """Not ECP: output i mixes inputs i-4 .. i (a width-5 causal convolution), so the first
    dependency is max(i - 4, 0) -- only a measurement, not the ECP formula, gets this right."""

    def __init__(self, d):
        super().__init__()
        self.conv = nn.Conv1d(d, d, kernel_size=5, padding=4, dtype=torch.float64)

    def forward(self, x):                                   # [B, N, d] -> [B, N, d]
        return self.conv(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)


@graded(RF, points=1)
def test_receptive_field_measured_on_other_model(sub):
    torch.manual_seed(0)
    trunk = _CausalConv(8)
    x = torch.randn(1, 20, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _check_measured(sub, trunk, x, [max(i - 4, 0) for i in range(20)], "a width-5 causal convolution")
