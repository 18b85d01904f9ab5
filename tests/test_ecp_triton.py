"""The fused Triton ECP kernel against a float64 golden with an explicit token mask.

Without a GPU these run in Triton's CPU interpreter (``tests/conftest.py`` sets
``TRITON_INTERPRET=1`` before anything imports Triton code), so shapes stay small.
On a CUDA machine the same tests run on the GPU.

Accuracy rule (docs/testing.md): with golden = float64 attention under
``mask_matrix(ecp_rule(S), N)`` and ref = the same math in the kernel's dtype (plain
matmul + masked softmax),

    max|kernel - golden| <= factor * max|ref - golden| + atol_floor

with factor 2 for the output, 3 for dQ/dK/dV (one shared random upstream gradient),
and atol_floor a few units of rounding at the output's magnitude.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

triton = pytest.importorskip("triton")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no CUDA and TRITON_INTERPRET != 1 (tests/conftest.py normally sets it)",
                allow_module_level=True)

from minecp.masks import ecp_rule, mask_matrix  # noqa: E402
from minecp.ops import ecp_attention  # noqa: E402
from minecp.ops import ecp_triton as et  # noqa: E402
from minecp.ops.ecp_triton import EcpTritonConfig, ecp_attention_triton  # noqa: E402

# Tile sizes besides the default: tiny tiles (many partial / straddling tiles, 16-row
# dK/dV query tiles) and the GPU's bf16 D <= 64 table (tiles larger than N).
SMALL_TILES = EcpTritonConfig(16, 16, 4, 1, 16, 16, 4, 1, 16, 16, 4, 1)
GPU_TILES = et.default_config(32, torch.bfloat16, interpret=False)


# --------------------------------------------------------------------------- helpers
def _inputs(B, H, N, D, dtype=torch.float32, seed=0, std=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(std * torch.randn(B, H, N, D, generator=g)).to(DEVICE, dtype) for _ in range(3)]


def _masked_attention(q, k, v, S, scale):
    """Dense attention with the explicit token-level ECP mask, in the inputs' dtype."""
    N = q.shape[-2]
    mask = mask_matrix(ecp_rule(S), N, device=q.device)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def _fwd_bwd(fn, q, k, v, do, dtype):
    """Output and (dq, dk, dv) of fn evaluated on copies of q, k, v cast to dtype."""
    leaves = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
    out = fn(*leaves)
    grads = torch.autograd.grad(out, leaves, do.to(dtype))
    return out.detach(), [g.detach() for g in grads]


def _check(name, got, ref, gold, factor, score_bits=0.0):
    """docs/testing.md rule; also no NaN / inf anywhere.

    ``score_bits`` is the largest |score| the kernel exponentiates, in its own base-2 units
    (|q.k| * scale * log2(e)). Rounding a score of that size moves the probability by a
    relative eps * |score|, in any fp32 implementation; the kernel rounds its scores once
    more than the natural-exp reference (the product with log2(e)), so where the scores
    reach the hundreds (the large-logit tests) that rounding, not the factor, sets the
    floor. At ordinary scores (|score| < 10) it is below the usual floor's 4 eps.
    """
    assert torch.isfinite(got).all(), f"{name}: non-finite values in the kernel's result"
    gold = gold.double()
    err = (got.double() - gold).abs().max().item()
    ref_err = (ref.double() - gold).abs().max().item()
    eps = torch.finfo(got.dtype).eps
    floor = eps * max(4.0, score_bits) * max(1.0, gold.abs().max().item())
    bound = factor * ref_err + floor
    assert err <= bound, (f"{name}: max|kernel-golden| = {err:.3e} > {factor} * {ref_err:.3e} "
                          f"(reference error) + {floor:.3e} (floor)")


def _compare_all(q, k, v, S, dtype=torch.float32, scale=None, config=None, seed=1, do=None):
    """Kernel vs same-precision reference vs float64 golden: output and all gradients."""
    D = q.shape[-1]
    sc = 1.0 / math.sqrt(D) if scale is None else scale
    if do is None:
        g = torch.Generator().manual_seed(seed)
        do = torch.randn(q.shape, generator=g).to(DEVICE)
    out, grads = _fwd_bwd(lambda a, b, c: ecp_attention_triton(a, b, c, S, scale=scale, config=config),
                          q, k, v, do, dtype)
    ref, ref_grads = _fwd_bwd(lambda a, b, c: _masked_attention(a, b, c, S, sc), q, k, v, do, dtype)
    gold, gold_grads = _fwd_bwd(lambda a, b, c: _masked_attention(a, b, c, S, sc), q, k, v, do,
                                torch.float64)
    assert out.dtype == dtype and out.shape == q.shape
    score_bits = (q.double() @ k.double().transpose(-1, -2)).abs().max().item() * sc * math.log2(math.e)
    _check("out", out, ref, gold, 2, score_bits)
    for name, a, b, c in zip(("dq", "dk", "dv"), grads, ref_grads, gold_grads):
        assert a.dtype == dtype and a.shape == q.shape
        _check(name, a, b, c, 3, score_bits)
    return out, grads


# ------------------------------------------------------------------ the band itself
@pytest.mark.parametrize("N,S", [(16, 16), (48, 16), (96, 48), (128, 64), (300, 100), (200, 25)])
@pytest.mark.parametrize("block_a,block_b", [(16, 16), (32, 16), (16, 64), (64, 32), (128, 64)])
def test_band_covers_exactly_the_visible_tiles(N, S, block_a, block_b):
    """Tile schedule from the kernels' own band helpers, checked at token level.

    For query tiles (forward, dQ) and key tiles (dK/dV): every visible pair lies in a
    visited tile; every visited tile holds a visible pair (nothing wasted); tiles run
    unmasked only if every real pair in them is visible; phases do not overlap.
    """
    vis = mask_matrix(ecp_rule(S), N)
    for key_tiles in (False, True):
        bands = et.tile_bands(N, S, block_a, block_b, key_tiles=key_tiles, device=DEVICE).cpu()
        for t, (lo, full_lo, full_hi, hi) in enumerate(bands.tolist()):
            assert lo <= full_lo <= full_hi <= hi <= N and lo % block_b == 0
            assert full_lo % block_b == 0 or full_lo == hi
            assert full_hi % block_b == 0 or full_hi == hi
            own = slice(t * block_a, min((t + 1) * block_a, N))
            tile_vis = vis[own, :] if not key_tiles else vis[:, own].T  # [own tile, other]
            visited = torch.zeros(N, dtype=torch.bool)
            for phase_lo, phase_hi, masked in ((lo, full_lo, True), (full_lo, full_hi, False),
                                               (full_hi, hi, True)):
                for start in range(phase_lo, phase_hi, block_b):
                    other = slice(start, min(start + block_b, N))
                    assert not visited[other].any(), "a tile is visited twice"
                    visited[other] = True
                    assert tile_vis[:, other].any(), f"tile {t}: wasted tile at {start}"
                    if not masked:
                        assert tile_vis[:, other].all(), f"tile {t}: unmasked tile at {start} hides pairs"
            assert not (tile_vis & ~visited[None, :]).any(), f"tile {t}: visible pairs skipped"


# ------------------------------------------------------------- accuracy sweeps (fp32)
# (B, H, S, N // S, D): every S in {16, 48, 64, 100}, N/S in {1, 2, 5}, D in {32, 64},
# B*H in {1, 6}; N = 16 and 48 are smaller than one default tile.
SWEEP = [
    (1, 1, 16, 1, 32),
    (2, 3, 16, 5, 64),
    (1, 1, 48, 1, 64),
    (1, 6, 48, 2, 32),
    (3, 2, 64, 2, 64),
    (1, 1, 64, 5, 32),
    (1, 1, 100, 2, 32),
    (2, 3, 100, 1, 64),
    (1, 1, 100, 5, 64),
]


@pytest.mark.parametrize("B,H,S,s,D", SWEEP)
def test_matches_golden(B, H, S, s, D):
    q, k, v = _inputs(B, H, s * S, D, seed=S + s + D)
    _compare_all(q, k, v, S)


@pytest.mark.parametrize("config", [SMALL_TILES, GPU_TILES], ids=["16-tiles", "gpu-tiles"])
@pytest.mark.parametrize("B,H,S,s,D", [(1, 2, 48, 2, 32), (1, 1, 100, 2, 64), (2, 1, 16, 5, 32)])
def test_other_tile_sizes(config, B, H, S, s, D):
    q, k, v = _inputs(B, H, s * S, D, seed=7)
    _compare_all(q, k, v, S, config=config)


def test_saved_statistics_give_the_logsumexp():
    """The forward saves O(N) statistics: row max and denominator = the exact LSE."""
    B, H, S, N, D = 1, 2, 48, 144, 32
    q, k, v = _inputs(B, H, N, D, seed=3)
    scale = 0.2
    _, stats = et._ecp_forward(q, k, v, S, scale, et.default_config(D, q.dtype), "ieee")
    assert stats.shape == (B, H, 2, N) and stats.dtype == torch.float32
    lse = et.lse_from_stats(stats)
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    s = s.masked_fill(~mask_matrix(ecp_rule(S), N, device=q.device), float("-inf"))
    torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), atol=1e-5, rtol=1e-6)


# ---------------------------------------------------------------- layout and values
def test_non_contiguous_inputs_and_grad():
    """Transposed views [B, N, H, D] -> [B, H, N, D] are read in place; so is dO."""
    B, H, S, N, D = 2, 3, 48, 96, 32
    g = torch.Generator().manual_seed(5)
    q, k, v = [torch.randn(B, N, H, D, generator=g).to(DEVICE).transpose(1, 2) for _ in range(3)]
    assert not q.is_contiguous()
    do = torch.randn(B, N, H, D, generator=g).to(DEVICE).transpose(1, 2)

    leaves = [t.detach().requires_grad_() for t in (q, k, v)]  # detach keeps the strides
    assert not leaves[0].is_contiguous()
    out = ecp_attention_triton(*leaves, S)
    grads = torch.autograd.grad(out, leaves, do)
    gold, gold_grads = _fwd_bwd(lambda a, b, c: _masked_attention(a, b, c, S, D ** -0.5),
                                q, k, v, do, torch.float64)
    ref, ref_grads = _fwd_bwd(lambda a, b, c: _masked_attention(a, b, c, S, D ** -0.5),
                              q, k, v, do, torch.float32)
    _check("out", out.detach(), ref, gold, 2)
    for name, a, b, c in zip(("dq", "dk", "dv"), grads, ref_grads, gold_grads):
        _check(name, a, b, c, 3)
    # Same numbers as from contiguous copies.
    out_c = ecp_attention_triton(q.contiguous(), k.contiguous(), v.contiguous(), S)
    torch.testing.assert_close(out.detach(), out_c, atol=0, rtol=0)


def test_large_logits_near_ties_and_hidden_giants():
    """|q.k| in the hundreds, exact ties, and huge scores on *invisible* keys.

    Keys in segment 0 are made to align strongly with every query of segment 2 and
    with the query just before them: a finite mask value (e.g. -1e4) would let them
    leak into those rows; an exact mask must ignore them completely.
    """
    B, H, S, N, D = 1, 2, 16, 64, 32
    q, k, v = _inputs(B, H, N, D, seed=11, std=4.0)  # |q.k| / sqrt(D) ~ 16 .. 100s
    direction = torch.ones(D, device=DEVICE)
    q[..., 2 * S:3 * S, :] += 30 * direction  # queries of segment 2 ...
    k[..., 0:S, :] += 30 * direction  # ... would love segment 0's keys (invisible)
    k[..., S + 3, :] = k[..., S + 4, :]  # exact ties between two visible keys
    k[..., S + 5, :] = k[..., S + 4, :]
    q[..., S + 7, :] = 25 * direction  # a row whose best visible key wins by a mile
    k[..., S + 2, :] = 25 * direction
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    assert scores.abs().max() > 1000
    _compare_all(q, k, v, S)


def test_custom_scale():
    q, k, v = _inputs(2, 1, 96, 64, seed=13)
    for scale in (0.37, 2.0):
        _compare_all(q, k, v, 48, scale=scale)


def test_fp16_and_bf16():
    """Half precisions (under the interpreter bf16 matmuls are done in fp32: exact)."""
    q, k, v = _inputs(1, 2, 96, 32, seed=17)
    for dtype in (torch.float16, torch.bfloat16):
        _compare_all(q, k, v, 48, dtype=dtype)


def test_dispatcher_routes_to_triton(monkeypatch):
    calls = []
    real = et.ecp_attention_triton

    def spy(*args, **kwargs):
        calls.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(et, "ecp_attention_triton", spy)
    q, k, v = _inputs(1, 1, 32, 32, seed=19)
    out = ecp_attention(q, k, v, 16, backend="triton")
    assert calls == [16]
    torch.testing.assert_close(out, real(q, k, v, 16), atol=0, rtol=0)


# ------------------------------------------------------------------------- errors
def test_errors_are_clear():
    q, k, v = _inputs(1, 1, 32, 32)
    with pytest.raises(ValueError, match="segment_len must be >= 16"):
        ecp_attention_triton(q, k, v, 8)
    with pytest.raises(ValueError, match="multiple of segment_len"):
        ecp_attention_triton(q, k, v, 24)
    with pytest.raises(TypeError, match="segment_len must be an int"):
        ecp_attention_triton(q, k, v, 16.0)
    with pytest.raises(TypeError, match="dtype torch.float64"):
        ecp_attention_triton(q.double(), k.double(), v.double(), 16)
    with pytest.raises(TypeError, match="one dtype"):
        ecp_attention_triton(q, k.half(), v, 16)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ecp_attention_triton(q.tolist(), k, v, 16)
    q48, k48, v48 = _inputs(1, 1, 32, 48)
    with pytest.raises(ValueError, match=r"head_dim .* \(32, 64, 128\), got 48"):
        ecp_attention_triton(q48, k48, v48, 16)
    with pytest.raises(ValueError, match="same shape"):
        ecp_attention_triton(q, k[..., :16, :], v, 16)
    with pytest.raises(ValueError, match=r"\[B, H, N, D\]"):
        ecp_attention_triton(q[0], k[0], v[0], 16)
    with pytest.raises(ValueError, match="scale must be a finite"):
        ecp_attention_triton(q, k, v, 16, scale=float("nan"))
    with pytest.raises(ValueError, match="input_precision must be one of"):
        ecp_attention_triton(q, k, v, 16, input_precision="tf64")
    with pytest.raises(ValueError, match="power of two"):
        ecp_attention_triton(q, k, v, 16, config=EcpTritonConfig(24, 16, 4, 1, 16, 16, 4, 1, 16, 16, 4, 1))


def test_cpu_tensors_without_interpreter_are_refused(monkeypatch):
    """Outside the interpreter a CPU tensor must fail with a pointer to TRITON_INTERPRET."""
    monkeypatch.setattr(et, "_INTERPRET_AT_IMPORT", False)
    q, k, v = (t.cpu() for t in _inputs(1, 1, 32, 32))
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        ecp_attention_triton(q, k, v, 16)


@pytest.mark.parametrize("triton_v, numpy_v, ok", [
    ("3.6.0", "2.4.6", False), ("3.6.0", "2.3.5", True), ("3.7.0", "2.4.0", True),
    ("3.9.0", "2.4.6", True), ("3.5.1", "2.4.0rc1", False), ("4.0.0", "3.0.0", True)])
def test_interpreter_compatibility_check(triton_v, numpy_v, ok):
    """Triton 3.6's interpreter + NumPy >= 2.4 fails deep in a loop bound: refuse it up front."""
    if ok:
        et.check_interpreter_compatible(triton_v, numpy_v)
    else:
        with pytest.raises(RuntimeError, match=r"triton>=3.7 or numpy<2.4"):
            et.check_interpreter_compatible(triton_v, numpy_v)
