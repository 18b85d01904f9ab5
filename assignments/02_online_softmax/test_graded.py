"""Graded tests of assignment 02: tiled attention with an online softmax.

Oracle: float64 attention with an explicit boolean mask (minecp.attention.reference_attention)
and ``torch.logsumexp``. Tolerance (docs/testing.md): a float32 answer may be off from the
float64 golden by at most 2 x the error of the plain float32 reference, plus a rounding floor.
"""

import math

import torch

from assignments.kit import GradingFailure, compare_tensors, graded
from minecp.attention import reference_attention

INF = math.inf


# -- helpers -------------------------------------------------------------------------------------
def _causal(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).tril()


def _scores(q, k, mask):
    s = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    return s.masked_fill(~mask, -INF)


def _golden_and_reference(q, k, v, mask):
    """((out, lse) in float64, (out, lse) in q's dtype): the golden and the same-precision reference."""
    gold = (reference_attention(q.double(), k.double(), v.double(), mask),
            torch.logsumexp(_scores(q.double(), k.double(), mask), dim=-1))
    ref = (reference_attention(q, k, v, mask), torch.logsumexp(_scores(q, k, mask), dim=-1))
    return gold, ref


def _close_to_golden(yours, golden, reference, what, picture=False):
    """docs/testing.md: |yours - golden| <= 2 |reference - golden| + a rounding floor."""
    if not isinstance(yours, torch.Tensor):
        raise GradingFailure(f"{what}: expected a torch.Tensor, got {type(yours).__name__}")
    if yours.dtype != reference.dtype:
        raise GradingFailure(f"{what}: dtype {yours.dtype} (yours) vs {reference.dtype} (the inputs' dtype)")
    compare_tensors(yours, golden, what=what, atol=_allowed(golden, reference), rtol=0.0, check_dtype=False,
                    picture=picture)


def _allowed(golden, reference) -> float:
    """2 x the same-precision reference's max error + 4 ulp of the golden's largest finite value."""
    finite = torch.isfinite(golden)
    if not finite.any():
        return 0.0
    ref_err = (reference.double() - golden)[finite].abs().max()
    floor = 4 * torch.finfo(reference.dtype).eps * golden[finite].abs().max().clamp_min(1.0)
    return float(2 * ref_err + floor)


def _unpack(result, what):
    if not (isinstance(result, tuple) and len(result) == 2):
        raise GradingFailure(f"{what} should return a tuple (out, lse), got {type(result).__name__}"
                             + (f" of length {len(result)}" if isinstance(result, tuple) else ""))
    return result


def _run_tiles(sub, scores, v, cuts):
    """Fold the key tiles [cuts[i], cuts[i+1]) into a fresh state with the student's tile_update."""
    Tq, D = scores.shape[-2], v.shape[-1]
    lead = scores.shape[:-2]
    m = torch.full((*lead, Tq), -INF)
    l = torch.zeros(*lead, Tq)
    acc = torch.zeros(*lead, Tq, D)
    for a, b in zip(cuts[:-1], cuts[1:]):
        state = sub.tile_update(m, l, acc, scores[..., a:b], v[..., a:b, :])
        if not (isinstance(state, tuple) and len(state) == 3):
            raise GradingFailure(f"tile_update should return a tuple (m, l, acc), got {type(state).__name__}")
        m, l, acc = state
    return m, l, acc


def _state_golden(scores, v):
    """(m, l, acc) after all keys, in float64, computed in one go (no tiles)."""
    s, v = scores.double(), v.double()
    m = s.amax(-1)
    base = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(s - base[..., None])
    return m, p.sum(-1), p @ v


def _state_reference(scores, v):
    m = scores.amax(-1)
    base = torch.where(torch.isinf(m), torch.zeros_like(m), m)
    p = torch.exp(scores - base[..., None])
    return m, p.sum(-1), p @ v


def _check_state(yours, scores, v, label):
    gold, ref = _state_golden(scores, v), _state_reference(scores, v)
    for name, y, g, r in zip(("m", "l", "acc"), yours, gold, ref):
        _close_to_golden(y, g, r, f"{name} after {label}")


# -- task 1: tile update -------------------------------------------------------------------------
@graded("tile update", points=1)
def test_first_tile_from_empty_state(sub):
    g = torch.Generator().manual_seed(1)
    scores, v = torch.randn(2, 5, 7, generator=g) * 3, torch.randn(2, 7, 4, generator=g)
    _check_state(_run_tiles(sub, scores, v, [0, 7]), scores, v, "one tile of 7 keys from m=-inf, l=0, acc=0")


@graded("tile update", points=1)
def test_rescales_when_the_max_grows(sub):
    # Each later tile holds a larger score than the ones before, so the running max changes at
    # every step: the old l and acc must be rescaled by exp(m_old - m_new).
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 12, generator=g) + torch.arange(12.0) * 0.8
    v = torch.randn(12, 5, generator=g)
    _check_state(_run_tiles(sub, scores, v, [0, 4, 8, 12]), scores, v,
                 "three tiles of 4 keys whose maxima grow from tile to tile")


@graded("tile update", points=1)
def test_fully_masked_rows_give_no_nan(sub):
    # Row 0 sees no key in the first tile, row 1 no key at all; row 2 sees all.
    g = torch.Generator().manual_seed(3)
    scores, v = torch.randn(3, 8, generator=g) * 2, torch.randn(8, 4, generator=g)
    scores[0, :4] = -INF
    scores[1, :] = -INF
    m, l, acc = _run_tiles(sub, scores, v, [0, 4])
    has_nan = any(isinstance(t, torch.Tensor) and bool(torch.isnan(t).any()) for t in (l, acc))
    if has_nan:
        raise GradingFailure("after a first tile where row 0 sees no key (all scores -inf): NaN in "
                             f"l {l.tolist()} or acc; a row with m_new = -inf must subtract 0, not -inf")
    _check_state((m, l, acc), scores[:, :4], v[:4], "a first tile in which rows 0 and 1 see no key")
    _check_state(_run_tiles(sub, scores, v, [0, 4, 8]), scores, v,
                 "two tiles; row 0 sees keys only in the second, row 1 never")


# -- task 2: tiled attention ---------------------------------------------------------------------
def _check_attention(sub, q, k, v, block_q, block_k, causal=True, check_lse=False, note=""):
    n = q.shape[-2]
    mask = _causal(n) if causal else torch.ones(n, n, dtype=torch.bool)
    (g_out, g_lse), (r_out, r_lse) = _golden_and_reference(q, k, v, mask)
    call = f"tiled_attention(q, k, v, block_q={block_q}, block_k={block_k}, causal={causal}) with N={n}"
    out, lse = _unpack(sub.tiled_attention(q, k, v, block_q=block_q, block_k=block_k, causal=causal), call)
    yours, gold, ref, what = (lse, g_lse, r_lse, "lse") if check_lse else (out, g_out, r_out, "out")
    try:
        # picture: out[0, 0] as [N, D] (rows = queries), or lse[0] as [H, N], expected beside yours
        _close_to_golden(yours, gold, ref, f"{what} of {call}", picture=True)
    except GradingFailure as err:
        hint, rows = _rows_hint(yours, gold, ref, n, block_q, block_k, -1 if check_lse else -2)
        if not (rows and sum(r % 2 == 0 for r in rows) >= 0.75 * len(rows)):
            note = ""                          # the note is about the even rows only
        raise GradingFailure(f"{err}{hint}{note}", err.pictures) from None


def _ranges(rows) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2, 5, 7-8'."""
    parts, start = [], None
    for i, r in enumerate(rows):
        if start is None:
            start = r
        if i + 1 == len(rows) or rows[i + 1] != r + 1:
            parts.append(f"{start}" if start == r else f"{start}-{r}")
            start = None
    return ", ".join(parts)


def _rows_hint(yours, gold, ref, n, block_q, block_k, row_dim):
    """(text, rows): which query rows differ, next to the tile bounds (partial tiles show at the end)."""
    if not isinstance(yours, torch.Tensor) or yours.shape != gold.shape:
        return "", []
    y = yours.detach().double()
    err = (y - gold).abs().nan_to_num(nan=INF)
    err = torch.where(torch.isinf(gold) & (y == gold), torch.zeros_like(err), err)
    bad = err > _allowed(gold, ref)
    per_row = bad.movedim(row_dim, -1).reshape(-1, n).any(0)    # row_dim: -1 for lse, -2 for out
    rows = per_row.nonzero().flatten().tolist()
    if not rows:
        return "", []
    tiles = lambda b: ", ".join(f"{s}..{min(s + b, n) - 1}" for s in range(0, n, b))
    return (f"\n  query rows that differ: {_ranges(rows)} (N = {n}; query tiles {tiles(block_q)}; "
            f"key tiles {tiles(block_k)})", rows)


def _qkv(seed, shape=(2, 3, 37, 16), scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=g) * s for s in (scale, scale, 1.0))


def _large_logits(seed, n=29, d=16):
    """Integer q, k (so every score is exact in float32: D = 16, scale 1/4) with scores of about
    +-2e4: half of the queries point against every key, so all their visible scores lie far
    below -1e4, the other half along them (a naive exp() would overflow)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(-9, 10, (d,), generator=g).float()
    k = 16 * u + torch.randint(-3, 4, (2, 2, n, d), generator=g).float()
    sign = torch.where(torch.arange(n) % 2 == 0, -1.0, 1.0)[:, None]
    q = sign * 16 * u + torch.randint(-3, 4, (2, 2, n, d), generator=g).float()
    v = torch.randn(2, 2, n, d, generator=g)
    return q, k, v


_LARGE_NOTE = ("\n  hint: scores here are about +-2e4, and the even query rows point against every key, so "
               "all their visible scores are below -1e4. Mostly even rows differ: a masked score filled "
               "with a finite value such as -1e4 wins their softmax. Mask with -inf.")


@graded("tiled attention", points=2)
def test_tiles_that_do_not_divide_n(sub):
    q, k, v = _qkv(10)
    for block_q, block_k in [(8, 5), (16, 16), (5, 8), (64, 7), (7, 64), (1, 3)]:
        _check_attention(sub, q, k, v, block_q, block_k)


@graded("tiled attention", points=1)
def test_non_causal_and_tiny_windows(sub):
    q, k, v = _qkv(11, shape=(1, 2, 13, 8))
    _check_attention(sub, q, k, v, 4, 6, causal=False)
    for n in (1, 2, 3):
        q, k, v = _qkv(12 + n, shape=(1, 2, n, 8))
        _check_attention(sub, q, k, v, 2, 2)


@graded("tiled attention", points=2)
def test_large_logits_and_exact_masking(sub):
    q, k, v = _large_logits(20)
    for block_q, block_k in [(8, 8), (6, 4), (32, 32)]:
        _check_attention(sub, q, k, v, block_q, block_k, note=_LARGE_NOTE)


# -- task 3: log-sum-exp -------------------------------------------------------------------------
@graded("log-sum-exp", points=1)
def test_lse_matches_logsumexp(sub):
    q, k, v = _qkv(30)
    for block_q, block_k in [(8, 5), (64, 7)]:
        _check_attention(sub, q, k, v, block_q, block_k, check_lse=True)
    q, k, v = _large_logits(31)
    _check_attention(sub, q, k, v, 6, 4, check_lse=True, note=_LARGE_NOTE)


def _partial(q, k, v, mask):
    """Attention over the keys of `k` that `mask` allows, float64; rows with no key: out 0, lse -inf."""
    s = _scores(q.double(), k.double(), mask)
    lse = torch.logsumexp(s, -1)
    p = torch.exp(s - torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)[..., None])
    return p @ v.double(), lse


@graded("log-sum-exp", points=1)
def test_merge_two_halves_of_the_keys(sub):
    # Causal attention over N = 20 keys, split into keys 0..8 and 9..19: queries 0..8 see no key
    # of the second part (lse2 = -inf there).
    q, k, v = _qkv(32, shape=(2, 2, 20, 8))
    mask, cut = _causal(20), 9
    o1, l1 = _partial(q, k[..., :cut, :], v[..., :cut, :], mask[:, :cut])
    o2, l2 = _partial(q, k[..., cut:, :], v[..., cut:, :], mask[:, cut:])
    (g_out, g_lse), (r_out, r_lse) = _golden_and_reference(q, k, v, mask)
    result = sub.merge_attention(o1.float(), l1.float(), o2.float(), l2.float())
    out, lse = _unpack(result, "merge_attention(out1, lse1, out2, lse2)")
    _close_to_golden(out, g_out, r_out, "out of merge_attention over keys 0..8 and 9..19")
    _close_to_golden(lse, g_lse, r_lse, "lse of merge_attention over keys 0..8 and 9..19")
    # Merging the other way round gives the same.
    out_b, lse_b = _unpack(sub.merge_attention(o2.float(), l2.float(), o1.float(), l1.float()),
                           "merge_attention(out2, lse2, out1, lse1)")
    _close_to_golden(out_b, g_out, r_out, "out of merge_attention with the parts swapped")


@graded("log-sum-exp", points=1)
def test_merge_with_empty_parts(sub):
    # Query 0 saw no key in either part, query 1 only in part 2, query 2 in both, with lse far apart.
    out1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    lse1 = torch.tensor([-INF, -INF, 3000.0])
    out2 = torch.tensor([[0.0, 0.0], [5.0, -1.0], [-3.0, 4.0]])
    lse2 = torch.tensor([-INF, 2.0, 3000.0 + math.log(3.0)])
    out, lse = _unpack(sub.merge_attention(out1, lse1, out2, lse2), "merge_attention(...)")
    want_out = torch.tensor([[0.0, 0.0], [5.0, -1.0], [0.25 * 1 + 0.75 * -3, 0.25 * 2 + 0.75 * 4]])
    want_lse = torch.tensor([-INF, 2.0, 3000.0 + math.log(4.0)])
    compare_tensors(out, want_out, what="out of merge_attention with empty parts "
                    "(row 0: no key anywhere -> 0; row 1: only part 2; row 2: lse 3000 and 3000 + log 3)",
                    atol=2e-3, rtol=0.0)   # float32 holds 3000 + log 3 to ~1e-4
    compare_tensors(lse, want_lse, what="lse of merge_attention with empty parts (row 0 must stay -inf)",
                    atol=2e-3, rtol=0.0)
