"""Graded tests of assignment 05: a Triton ECP forward kernel, run by Triton's CPU interpreter.

Without a GPU the kernel runs under ``TRITON_INTERPRET=1`` (set below, before Triton is imported,
as the notebook's first cell does), so the shapes are tiny. minecp is the oracle:
:func:`minecp.masks.ecp_rule` for the band, :func:`minecp.ops.ecp_attention` (``backend="torch"``)
as the same-precision reference, float64 attention under the explicit token mask as the golden.
Accuracy rule (docs/testing.md): ``max|yours - golden| <= 2 * max|reference - golden| + floor``.

Every input the kernel reads is a view into a larger buffer filled with NaN beyond row N, and
every output it writes is a view into a buffer with a sentinel beyond row N: a load without its
mask turns the output into NaN, a store without its mask changes the sentinel, and neither can
touch memory outside the test's tensors.
"""

from __future__ import annotations

import math
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402

from assignments.kit import GradingFailure, compare_tensors, graded  # noqa: E402
from minecp.masks import ecp_rule, mask_matrix  # noqa: E402
from minecp.ops import ecp_attention  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BAND, MASK, SOFTMAX = "band-limited key loop", "exact masking", "online softmax"
LOG2E = 1.4426950408889634
PAD = 32                      # rows of NaN / sentinel after row N (>= the largest tile)
SENTINEL = 1234.5


# ----------------------------------------------------------------------------------- helpers
def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, re-raising the error *inside* a kernel (the interpreter wraps it in
    an InterpreterError) so that the message points at the student's line."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        inner = err
        while type(inner).__name__ == "InterpreterError" and inner.__cause__ is not None:
            inner = inner.__cause__                     # nested jit calls wrap once per level
        if inner is err:
            raise
        raise inner from None


def _padded(x: torch.Tensor, fill: float) -> torch.Tensor:
    """A view of ``x`` [B, H, N, D] into a buffer [B, H, N + PAD, D] whose extra rows hold ``fill``."""
    B, H, N, D = x.shape
    buf = torch.full((B, H, N + PAD, D), fill, dtype=x.dtype, device=x.device)
    buf[:, :, :N] = x
    return buf[:, :, :N]


def _inputs(B, H, N, D, seed, std=1.0):
    g = torch.Generator().manual_seed(seed)
    return [(std * torch.randn(B, H, N, D, generator=g)).to(DEVICE) for _ in range(3)]


def _launch(sub, q, k, v, S, block_m=16, block_n=16, scale=None):
    """Run the submission's ``ecp_fwd_kernel`` on NaN-padded inputs, into sentinel-padded outputs.

    Returns (out [B, H, N, D], lse [B, H, N]). Raises GradingFailure when the kernel wrote
    past row N.
    """
    B, H, N, D = q.shape
    q, k, v = (_padded(t, float("nan")) for t in (q, k, v))
    out = _padded(torch.zeros(B, H, N, D, device=DEVICE), SENTINEL)
    lse_buf = torch.full((B * H * N + PAD,), SENTINEL, dtype=torch.float32, device=DEVICE)
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    _call(sub.ecp_fwd_kernel[(triton.cdiv(N, block_m), H, B)],
        q, k, v, out, lse_buf,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        H, N, S, scale * LOG2E, HEAD_DIM=D, BLOCK_M=block_m, BLOCK_N=block_n)
    beyond = out.as_strided((B, H, PAD, D), out.stride(), out.storage_offset() + N * out.stride(2))
    if not bool((beyond == SENTINEL).all()) or not bool((lse_buf[B * H * N:] == SENTINEL).all()):
        raise GradingFailure(f"ecp_fwd_kernel (N={N}, BLOCK_M={block_m}): your kernel wrote to rows >= N "
                             "of the output or the LSE — the stores of a partial query tile need "
                             "mask=offs_m < N")
    return out, lse_buf[: B * H * N].view(B, H, N)


def _golden(q, k, v, S, scale):
    """float64 output and natural-log LSE under the explicit token-level ECP mask."""
    q, k, v = (t.double().cpu() for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask_matrix(ecp_rule(S), q.shape[-2]), float("-inf"))
    return torch.softmax(s, dim=-1) @ v, torch.logsumexp(s, dim=-1)


def _check_output(out, q, k, v, S, what, scale=None, floor=None):
    """docs/testing.md rule for the output, against minecp's fp32 torch backend's error."""
    D = q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    gold, _ = _golden(q, k, v, S, scale)
    nan = int(torch.isnan(out).sum())
    if nan:
        rows = torch.isnan(out).any(-1).nonzero()[0].tolist()
        raise GradingFailure(f"{what}: {nan} NaN values in your output, the first in (batch, head, "
                             f"query) = {tuple(rows)} — did a load read past row N (a missing "
                             f"mask=... < N), or a row get no visible key?")
    ref = ecp_attention(q, k, v, S, backend="torch", scale=scale)
    ref_err = (ref.double().cpu() - gold).abs().max().item()
    if floor is None:
        floor = 4 * torch.finfo(torch.float32).eps * max(1.0, gold.abs().max().item())
    compare_tensors(out.double().cpu(), gold, what=f"{what} vs float64 golden",
                    atol=2 * ref_err + floor, rtol=0.0)


# -------------------------------------------------------------------- band-limited key loop
def _needed_tiles(vis_rows: torch.Tensor, block_n: int) -> list[int]:
    """Starts of the key tiles holding at least one key visible to one of these queries."""
    N = vis_rows.shape[1]
    return [s for s in range(0, N, block_n) if bool(vis_rows[:, s: s + block_n].any())]


@graded(BAND, points=3)
def test_key_tile_range_is_the_band(sub):
    """For every query tile: the key tiles range(lo, hi, BLOCK_N) hold every visible key and no
    tile without one (a loop from key 0 wastes tiles and fails here)."""
    for N, S, bm, bn in [(48, 16, 16, 16), (100, 20, 16, 16), (100, 50, 16, 16), (96, 48, 32, 16),
                         (100, 25, 16, 32), (64, 64, 16, 16), (128, 16, 16, 16)]:
        ranges = _call(sub.key_tile_ranges, N, S, bm, bn)
        tiles = triton.cdiv(N, bm)
        if len(ranges) != tiles:
            raise GradingFailure(f"key_tile_ranges(N={N}, S={S}, {bm}, {bn}): {len(ranges)} ranges "
                                 f"for {tiles} query tiles")
        vis = mask_matrix(ecp_rule(S), N)
        key_tiles = triton.cdiv(N, bn)
        expected_map = torch.zeros(tiles, key_tiles, dtype=torch.bool)   # query tile x key tile
        yours_map = torch.zeros(tiles, key_tiles, dtype=torch.bool)
        for t, (lo, hi) in enumerate(ranges):
            for s in _needed_tiles(vis[t * bm: min((t + 1) * bm, N)], bn):
                expected_map[t, s // bn] = True
            for s in range(lo, hi, bn):
                if 0 <= s // bn < key_tiles and s % bn == 0:
                    yours_map[t, s // bn] = True
        picture = [(f"key tiles visited (N={N}, S={S}, BLOCK_M={bm}, BLOCK_N={bn}): rows = query "
                    "tiles, columns = key tiles", expected_map, yours_map)]
        for t, (lo, hi) in enumerate(ranges):
            rows = vis[t * bm: min((t + 1) * bm, N)]
            where = (f"key_tile_range for N={N}, S={S}, BLOCK_M={bm}, BLOCK_N={bn}, query tile {t} "
                     f"(queries {t * bm}-{min((t + 1) * bm, N) - 1})")
            if lo % bn:
                raise GradingFailure(f"{where}: lo = {lo} is not a multiple of BLOCK_N = {bn}", picture)
            visited = list(range(lo, hi, bn))
            needed = _needed_tiles(rows, bn)
            if visited != needed:
                missing = sorted(set(needed) - set(visited))
                wasted = sorted(set(visited) - set(needed))
                why = []
                if missing:
                    why.append(f"misses the key tile(s) starting at {missing}, which hold visible keys")
                if wasted:
                    why.append(f"visits key tile(s) starting at {wasted}, where no query of the "
                               "tile sees any key")
                raise GradingFailure(f"{where}: yours (lo={lo}, hi={hi}) visits {len(visited)} key "
                                     f"tiles {visited}; the band is {len(needed)} tiles {needed}: "
                                     + "; ".join(why), picture)


@graded(BAND, points=2)
def test_kernel_reads_only_its_band(sub):
    """For each query tile, every key / value row outside that tile's band is set to NaN; the
    tile's outputs must stay bit for bit what they were (and those must be right). A kernel that loads key tiles outside the band multiplies a
    NaN value row by its zero probability and gets NaN (0 * NaN = NaN)."""
    if "ecp_fwd_kernel" not in sub:
        raise GradingFailure("this test runs your kernel `ecp_fwd_kernel` (tasks 2 and 3) with NaN in "
                             "every key outside the band: write the kernel, then check again")
    for B, H, N, S, D in [(1, 1, 96, 32, 16), (1, 1, 100, 20, 16)]:
        q, k, v = _inputs(B, H, N, D, seed=N + S)
        vis = mask_matrix(ecp_rule(S), N)
        full, _ = _golden(q, k, v, S, 1 / math.sqrt(D))
        base, _ = _launch(sub, q, k, v, S)
        try:
            compare_tensors(base.double().cpu(), full, atol=1e-5, rtol=1e-5,
                            what=f"ecp_fwd_kernel (N={N}, S={S}), before any key is set to NaN")
        except GradingFailure as err:
            raise GradingFailure("this test needs a working kernel, and yours is wrong before any key "
                                 "is set to NaN (see the tasks 'exact masking' and 'online softmax'):\n"
                                 + str(err), err.pictures) from None
        for t in range(triton.cdiv(N, 16)):
            rows = slice(t * 16, min((t + 1) * 16, N))
            needed = _needed_tiles(vis[rows], 16)
            band = torch.zeros(N, dtype=torch.bool)
            for s in needed:
                band[s: s + 16] = True
            kp, vp = k.clone(), v.clone()
            outside = (~band).to(DEVICE)
            kp[..., outside, :] = float("nan")
            vp[..., outside, :] = float("nan")
            out, _ = _launch(sub, q, kp, vp, S)
            if torch.isnan(out[:, :, rows]).any():
                raise GradingFailure(
                    f"N={N}, S={S}, 16 x 16 tiles, query tile {t} (queries {rows.start}-{rows.stop - 1}): "
                    f"NaN in your output when the keys outside the band (key tiles {needed}) are NaN — "
                    f"your kernel loads key/value tiles outside the band (does the loop use key_tile_range?)")
            # The same arithmetic on the same band: bit for bit what the kernel gave without NaNs.
            compare_tensors(out[:, :, rows], base[:, :, rows], atol=0.0, rtol=0.0,
                            what=f"query tile {t} (N={N}, S={S}) with NaN outside its band vs without")


# ---------------------------------------------------------------------------- exact masking
@graded(MASK, points=3)
def test_partial_tiles(sub):
    """N and S not multiples of the tile (last query and key tiles hang over N; tiles straddle
    segment borders); NaN behind every input row N - 1, a sentinel behind every output."""
    for B, H, N, S, D, bm, bn in [(1, 2, 100, 20, 16, 16, 16), (2, 1, 100, 50, 32, 16, 16),
                                  (1, 1, 48, 48, 16, 32, 16), (1, 1, 100, 25, 16, 16, 32),
                                  (1, 1, 40, 20, 16, 16, 16)]:
        q, k, v = _inputs(B, H, N, D, seed=B + N + S + bm + bn)
        out, _ = _launch(sub, q, k, v, S, bm, bn)
        _check_output(out, q, k, v, S, f"ecp_fwd_kernel (B={B}, H={H}, N={N}, S={S}, D={D}, "
                                       f"BLOCK_M={bm}, BLOCK_N={bn})")


@graded(MASK, points=2)
def test_large_logits_need_an_exact_mask(sub):
    """Every visible score is about -1.6e4 (log2 units: -2.3e4) with a clear winner per row: a
    finite mask value such as -1e4 would outweigh every visible key."""
    B, H, N, S, D = 1, 1, 64, 16, 16
    g = torch.Generator().manual_seed(3)
    q = 10 * torch.randn(B, H, N, D, generator=g)
    k = 10 * torch.randn(B, H, N, D, generator=g)
    v = torch.randn(B, H, N, D, generator=g)
    q[..., 0], k[..., 0] = 250.0, -250.0            # q.k ~ -62500 -> scores ~ -1.6e4
    q, k, v = (t.to(DEVICE) for t in (q, k, v))
    out, _ = _launch(sub, q, k, v, S)
    # Rounding of fp32 scores of size 2e4 moves them by ~1e-3: allow that much on the output.
    floor = 8 * torch.finfo(torch.float32).eps * 2.5e4 * v.abs().max().item()
    _check_output(out, q, k, v, S, "ecp_fwd_kernel with scores near -1.6e4", floor=floor)


# ---------------------------------------------------------------------------- online softmax
@graded(SOFTMAX, points=3)
def test_output_many_key_tiles(sub):
    """Whole tiles only (N, S multiples of 16), up to six key tiles per query tile, B, H > 1,
    through the given launcher ``ecp_forward``."""
    for B, H, N, S, D in [(2, 2, 64, 32, 16), (1, 1, 96, 48, 32), (1, 2, 128, 16, 16)]:
        q, k, v = _inputs(B, H, N, D, seed=N * S + D)
        out, _ = _call(sub.ecp_forward, q, k, v, S)
        _check_output(out, q, k, v, S, f"ecp_forward (B={B}, H={H}, N={N}, S={S}, D={D})")


@graded(SOFTMAX, points=1)
def test_output_with_scale_and_larger_scores(sub):
    """An explicit scale and scores of several tens: the running max really changes."""
    q, k, v = _inputs(1, 2, 96, 16, seed=11, std=3.0)
    out, _ = _call(sub.ecp_forward, q, k, v, 32, scale=0.8)
    _check_output(out, q, k, v, 32, "ecp_forward (N=96, S=32, scale=0.8, |q|, |k| ~ 3)", scale=0.8)


@graded(SOFTMAX, points=2)
def test_logsumexp(sub):
    """The LSE (natural log) of every row, including a partial last tile."""
    for B, H, N, S, D in [(1, 2, 96, 32, 16), (1, 1, 100, 20, 32)]:
        q, k, v = _inputs(B, H, N, D, seed=N + D)
        _, lse = _launch(sub, q, k, v, S)
        _, gold = _golden(q, k, v, S, 1 / math.sqrt(D))
        floor = 8 * torch.finfo(torch.float32).eps * max(1.0, gold.abs().max().item())
        compare_tensors(lse.double().cpu(), gold, what=f"LSE (N={N}, S={S}, D={D}) vs float64 golden",
                        atol=floor + 1e-5, rtol=1e-6)
