"""Graded tests of assignment 06 (sliding-window evaluation, bits per byte).

Oracles: a brute-force scorer (one forward pass per token, its whole allowed context), and
minecp.evaluate (window_plan, sliding_window_token_nll, lm_metrics). NLL tolerance
(docs/testing.md): 2 x the error of minecp's float32 scorer against a float64 copy of the model,
plus a 1e-5 floor.
"""

import copy
import math

import torch

import minecp
from minecp.evaluate import lm_metrics, sliding_window_token_nll, window_plan

from assignments.kit import GradingFailure, compare_tensors, graded

N = 16          # the tiny model's window


def tiny_model(seq_len=N, vocab_size=64, seed=0):
    torch.manual_seed(seed)
    cfg = minecp.ModelConfig(vocab_size=vocab_size, seq_len=seq_len, d_model=32, n_heads=2, n_layers=2,
                             num_segments=1, tie_embeddings=False)
    model = minecp.build_model("dense", cfg).eval()
    torch.nn.init.normal_(model.lm_head.weight, std=1.0)
    return model


def text(L, seed=1):
    return torch.randint(0, 64, (L,), generator=torch.Generator().manual_seed(seed))


def byte_table(seed=2):
    return torch.randint(1, 5, (64,), generator=torch.Generator().manual_seed(seed))


def minecp_plan(L, window, stride):
    return [(w.start, w.length, w.first_row) for w in window_plan(L, window, window, stride, accepts_shorter=True)]


def as_plan(value, what):
    try:
        plan = [tuple(int(x) for x in w) for w in value]
    except TypeError:
        raise GradingFailure(f"{what} should return a list of (start, length, first_row) tuples, "
                             f"got {type(value).__name__}") from None
    if any(len(w) != 3 for w in plan):
        raise GradingFailure(f"{what}: every window must be (start, length, first_row), got {plan[:3]} ...")
    return plan


CASES = [(50, 16, 8), (50, 16, 5), (17, 16, 3), (12, 16, 4), (40, 8, 1), (33, 8, 8), (100, 16, 16), (2, 4, 1)]

# --- task: window plan -------------------------------------------------------------------------


@graded("window plan", points=2)
def test_every_token_scored_once(sub):
    for L, window, stride in CASES:
        plan = as_plan(sub.plan_windows(L, window, stride), f"plan_windows({L}, {window}, {stride})")
        counts = [0] * L
        for start, length, first in plan:
            if not (0 <= first < max(length, 1) and length <= window and start + length <= L - 1):
                raise GradingFailure(f"plan_windows({L}, {window}, {stride}): window {(start, length, first)} "
                                     f"is impossible (length <= {window}, inputs inside the text, "
                                     "0 <= first_row < length)")
            for r in range(first, length):
                counts[start + r + 1] += 1
        twice = [p for p, c in enumerate(counts) if c > 1]
        never = [p for p, c in enumerate(counts[1:], 1) if c == 0]
        if twice or never or counts[0]:
            raise GradingFailure(
                f"plan_windows({L}, {window}, {stride}) = {plan}:\n"
                + (f"  tokens scored more than once: {twice[:8]}{' ...' if len(twice) > 8 else ''} "
                   f"(overlapping windows counted twice?)\n" if twice else "")
                + (f"  tokens never scored: {never[:8]}{' ...' if len(never) > 8 else ''}\n" if never else "")
                + ("  token 0 scored (it has no context)\n" if counts[0] else "")
                + "  every token 1 .. L-1 must be scored exactly once")


@graded("window plan", points=2)
def test_plan_matches_minecp(sub):
    for L, window, stride in CASES:
        yours = as_plan(sub.plan_windows(L, window, stride), f"plan_windows({L}, {window}, {stride})")
        expected = minecp_plan(L, window, stride)
        if yours != expected:
            first = next((i for i, (a, b) in enumerate(zip(yours, expected)) if a != b), min(len(yours), len(expected)))
            raise GradingFailure(
                f"plan_windows({L}, {window}, {stride}): {len(yours)} windows (yours) vs {len(expected)} "
                f"(minecp.evaluate.window_plan); first difference at window {first}: yours "
                f"{yours[first] if first < len(yours) else 'none'}, expected "
                f"{expected[first] if first < len(expected) else 'none'}\n  expected {expected}")


@graded("window plan", points=1)
def test_plan_rejects_bad_stride(sub):
    for stride in (0, 17, -1):
        try:
            sub.plan_windows(50, 16, stride)
        except ValueError as err:
            if "stride" not in str(err):
                raise GradingFailure(f"plan_windows(50, 16, stride={stride}) raised ValueError({str(err)!r}): "
                                     "the message should name `stride`") from None
            continue
        raise GradingFailure(f"plan_windows(50, 16, stride={stride}) did not raise ValueError "
                             "(stride must be in [1, window])")


# --- task: token nll ---------------------------------------------------------------------------

def brute_force(model, ids, contexts):
    """NLL (nats, float64) of each token p given exactly ids[contexts[p] : p]."""
    out = {}
    with torch.no_grad():
        for p, s in contexts.items():
            logits = model(ids[None, s:p])[0, -1].double()
            out[p] = float(-torch.log_softmax(logits, -1)[ids[p]])
    return out


def tolerance(model, ids, stride):
    """2 x minecp's float32 error against a float64 copy of the model, + 1e-5."""
    _, ref32 = sliding_window_token_nll(model, ids, stride)
    _, gold = sliding_window_token_nll(copy.deepcopy(model).double(), ids, stride)
    return 2 * float((ref32 - gold).abs().max()) + 1e-5


def scored(sub, model, ids, window, stride):
    out = sub.score_tokens(model, ids, window, stride)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise GradingFailure(f"score_tokens should return (positions, nll), got {type(out).__name__}")
    positions, nll = out
    if not isinstance(nll, torch.Tensor) or nll.dtype != torch.float64:
        raise GradingFailure(f"score_tokens: nll should be a float64 tensor, got "
                             f"{getattr(nll, 'dtype', type(nll).__name__)} (cast the logits with .double())")
    return positions, nll


@graded("token nll", points=2)
def test_stride_one_matches_brute_force(sub):
    # With stride 1 every token p sees the whole window before it: ids[max(0, p - N) : p].
    model, ids = tiny_model(), text(40)
    positions, nll = scored(sub, model, ids, N, 1)
    compare_tensors(positions, torch.arange(1, 40), what="score_tokens(stride=1) positions")
    bf = brute_force(model, ids, {p: max(0, p - N) for p in range(1, 40)})
    compare_tensors(nll, torch.tensor([bf[p] for p in range(1, 40)], dtype=torch.float64),
                    what="score_tokens(stride=1) nll vs one forward pass per token", atol=tolerance(model, ids, 1),
                    rtol=0)


@graded("token nll", points=2)
def test_matches_minecp(sub):
    model = tiny_model()
    for L, stride in ((50, 5), (50, 16), (12, 3)):
        ids = text(L, seed=L + stride)
        positions, nll = scored(sub, model, ids, N, stride)
        ref_pos, ref_nll = sliding_window_token_nll(model, ids, stride)
        compare_tensors(positions, ref_pos, what=f"score_tokens(L={L}, stride={stride}) positions")
        compare_tensors(nll, ref_nll, what=f"score_tokens(L={L}, stride={stride}) nll (nats)",
                        atol=tolerance(model, ids, stride), rtol=0)


@graded("token nll", points=1)
def test_context_is_the_plans(sub):
    # stride 5: token p must be predicted from exactly the window that the plan assigns to it.
    model, ids = tiny_model(), text(45, seed=7)
    contexts = {}
    for start, length, first in minecp_plan(45, N, 5):
        for r in range(first, length):
            contexts[start + r + 1] = start
    positions, nll = scored(sub, model, ids, N, 5)
    bf = brute_force(model, ids, contexts)
    compare_tensors(nll, torch.tensor([bf[p] for p in sorted(bf)], dtype=torch.float64),
                    what="score_tokens(stride=5) nll vs the brute-force scorer over each token's window",
                    atol=tolerance(model, ids, 5), rtol=0)


# --- task: bits per byte -----------------------------------------------------------------------

@graded("bits per byte", points=2)
def test_bits_per_byte_formula(sub):
    g = torch.Generator().manual_seed(4)
    ids, table = text(30, seed=5), byte_table()
    positions = torch.arange(3, 30)
    nll = torch.rand(27, generator=g, dtype=torch.float64) * 5
    expected = lm_metrics(float(nll.sum()), 27, int(table[ids[positions]].sum()))["bits_per_byte"]
    yours = sub.bits_per_byte(nll, positions, ids, table)
    try:
        yours = float(yours)
    except (TypeError, ValueError):
        raise GradingFailure(f"bits_per_byte should return a float, got {type(yours).__name__}") from None
    if not math.isclose(yours, expected, rel_tol=1e-9):
        hints = {"nats per byte (no division by ln 2)": expected * math.log(2),
                 "bits per token": float(nll.sum()) / math.log(2) / 27,
                 "nats per token": float(nll.sum()) / 27,
                 "bytes of every token, not only the scored ones": float(nll.sum()) / math.log(2) / int(table[ids].sum())}
        guess = [k for k, v in hints.items() if math.isclose(yours, v, rel_tol=1e-9)]
        raise GradingFailure(f"bits_per_byte: yours {yours:.6f}, expected {expected:.6f} (minecp lm_metrics)"
                             + (f" — yours equals {guess[0]}" if guess else ""))


@graded("bits per byte", points=2)
def test_evaluate_bpb_end_to_end(sub):
    model, table = tiny_model(), byte_table()
    for L, stride in ((50, 8), (30, 3)):
        ids = text(L, seed=11 + L)
        positions, nll = sliding_window_token_nll(model, ids, stride)
        expected = lm_metrics(float(nll.sum()), len(positions), int(table[ids[positions]].sum()))["bits_per_byte"]
        yours = float(sub.evaluate_bpb(model, ids, table, N, stride))
        tol = tolerance(model, ids, stride) * len(positions) / math.log(2) / int(table[ids[positions]].sum())
        if not abs(yours - expected) <= tol:
            raise GradingFailure(f"evaluate_bpb(L={L}, stride={stride}): yours {yours:.6f} bits/byte, expected "
                                 f"{expected:.6f} (minecp sliding_window_token_nll + lm_metrics), "
                                 f"tolerance {tol:.2g}")
