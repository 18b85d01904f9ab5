"""Graded tests of assignment 01 (causal multi-head attention). minecp is the oracle.

Tolerances (docs/testing.md): float64 inputs are compared with a float64 golden model at a
rounding floor of 1e-10; float32 results may differ from the float64 golden by at most twice
the error of PyTorch's own float32 computation, plus a 1e-6 floor.
"""

import torch
import torch.nn.functional as F

import minecp
from minecp.attention import MultiHeadAttention, causal_attend, reference_attention
from minecp.masks import causal_rule, mask_matrix

from assignments.kit import GradingFailure, compare_masks, compare_tensors, graded

F64 = dict(atol=1e-10, rtol=1e-10)


def qkv(B=2, H=3, T=9, D=8, dtype=torch.float64, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(B, H, T, D, generator=g, dtype=dtype) for _ in range(3)]


def float32_tolerance(ours32: torch.Tensor, golden64: torch.Tensor) -> float:
    """2 x PyTorch's own float32 error against the float64 golden + 1e-6 (docs/testing.md)."""
    return 2 * float((ours32.double() - golden64).abs().max()) + 1e-6


# --- task: causal mask -------------------------------------------------------------------------

@graded("causal mask", points=1)
def test_causal_mask_small(sub):
    compare_masks(sub.causal_mask(6), mask_matrix(causal_rule(), 6), what="causal_mask(6)")


@graded("causal mask", points=1)
def test_causal_mask_sizes(sub):
    for n in (1, 2, 33):
        compare_masks(sub.causal_mask(n), mask_matrix(causal_rule(), n), what=f"causal_mask({n})")


# --- task: scores ------------------------------------------------------------------------------

@graded("scores", points=2)
def test_scores_match_reference(sub):
    q, k, _ = qkv(T=7, D=16)
    k = k[:, :, :5]                                   # Tq != Tk: rows are queries, columns keys
    expected = torch.einsum("bhqd,bhkd->bhqk", q, k) / 16 ** 0.5
    compare_tensors(sub.attention_scores(q, k), expected,
                    what="attention_scores(q [2,3,7,16], k [2,3,5,16])", **F64)


# --- task: masked softmax ----------------------------------------------------------------------

def _softmax_inputs(offset: float):
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) * 4 + offset
    return scores, mask_matrix(causal_rule(), 8)


@graded("masked softmax", points=2)
def test_masked_softmax_values(sub):
    scores, mask = _softmax_inputs(0.0)
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    compare_tensors(sub.masked_softmax(scores, mask), expected, what="masked_softmax(scores, causal mask)",
                    picture=True, **F64)


@graded("masked softmax", points=2)
def test_masked_softmax_large_logits(sub):
    # Visible scores near -3e4 (large logits): a finite mask value such as -1e4 now *beats* them.
    scores, mask = _softmax_inputs(-3e4)
    probs = sub.masked_softmax(scores, mask)
    hidden = probs.masked_select(~mask)
    if bool((hidden != 0).any()):
        i, j = [int(v) for v in (~mask & (probs[0, 0] != 0)).nonzero()[0]]
        raise GradingFailure(
            f"masked_softmax with visible scores near -3e4: hidden key {j} of query {i} gets "
            f"probability {float(probs[0, 0, i, j]):.3g}, it must be exactly 0 (max over hidden "
            f"keys {float(hidden.max()):.3f}). A finite mask value (-1e4, -1e9 ...) is beaten by "
            "large logits; use float('-inf').",
            [("masked_softmax, visible scores near -3e4",
              torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)[0, 0], probs[0, 0])])
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    compare_tensors(probs, expected, what="masked_softmax(scores near -3e4, causal mask)", **F64)


# --- task: attention ---------------------------------------------------------------------------

@graded("attention", points=1)
def test_attention_matches_minecp(sub):
    q, k, v = qkv()
    expected = reference_attention(q, k, v, mask_matrix(causal_rule(), q.shape[-2]))
    compare_tensors(sub.causal_attention(q, k, v), expected, what="causal_attention(q, k, v) [2,3,9,8]",
                    **F64)


@graded("attention", points=1)
def test_attention_matches_sdpa_float32(sub):
    q, k, v = qkv(T=16, D=32)
    golden = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    q32, k32, v32 = (t.float() for t in (q, k, v))
    tol = float32_tolerance(F.scaled_dot_product_attention(q32, k32, v32, is_causal=True), golden)
    yours = sub.causal_attention(q32, k32, v32)
    if isinstance(yours, torch.Tensor) and yours.dtype != torch.float32:
        raise GradingFailure(f"causal_attention on float32 inputs returns {yours.dtype}: keep q's dtype")
    compare_tensors(yours.double() if isinstance(yours, torch.Tensor) else yours, golden,
                    what="causal_attention(float32 q, k, v) vs SDPA in float64", atol=tol, rtol=0)


@graded("attention", points=1)
def test_attention_is_causal(sub):
    q, k, v = qkv(T=10)
    before = sub.causal_attention(q, k, v)
    t = 4                                                  # change every token after position t
    q2, k2, v2 = (x.clone() for x in (q, k, v))
    for x in (q2, k2, v2):
        x[:, :, t + 1:] = torch.randn_like(x[:, :, t + 1:]) * 10
    after = sub.causal_attention(q2, k2, v2)
    compare_tensors(after[:, :, : t + 1], before[:, :, : t + 1],
                    what=f"outputs 0..{t} after changing the tokens {t + 1}..9 (they must not move)",
                    atol=1e-12, rtol=0)


@graded("attention", points=1)
def test_attention_gradients(sub):
    q, k, v = qkv(T=7)
    g = torch.Generator().manual_seed(3)
    upstream = torch.randn(2, 3, 7, 8, generator=g, dtype=torch.float64)
    grads = []
    for fn in (sub.causal_attention, lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True)):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        (fn(*leaves) * upstream).sum().backward()
        grads.append([x.grad for x in leaves])
    for name, yours, ref in zip("qkv", *grads):
        compare_tensors(yours, ref, what=f"gradient with respect to {name}", atol=1e-9, rtol=1e-9)


# --- task: heads -------------------------------------------------------------------------------

def _minecp_layer(d=12, n_heads=3, seed=0):
    torch.manual_seed(seed)
    return MultiHeadAttention(d, n_heads).double()


@graded("heads", points=1)
def test_split_heads(sub):
    x = torch.arange(2 * 5 * 12, dtype=torch.float64).view(2, 5, 12)
    compare_tensors(sub.split_heads(x, 3), _minecp_layer().split_heads(x), what="split_heads(x [2,5,12], 3)",
                    **F64)


@graded("heads", points=1)
def test_merge_heads(sub):
    x = torch.arange(2 * 3 * 5 * 4, dtype=torch.float64).view(2, 3, 5, 4)
    compare_tensors(sub.merge_heads(x), _minecp_layer().merge_heads(x), what="merge_heads(x [2,3,5,4])", **F64)


@graded("heads", points=1)
def test_split_merge_round_trip(sub):
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    compare_tensors(sub.merge_heads(sub.split_heads(x, 4)), x, what="merge_heads(split_heads(x, 4))", **F64)


# --- task: multi-head attention ----------------------------------------------------------------

def _minecp_forward(layer: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """minecp's layer without RoPE (its rotation is computed in float32, and is not part of this
    assignment): its projections, split/merge and causal attention (SDPA)."""
    q, k, v = (layer.split_heads(proj(x)) for proj in (layer.query, layer.key, layer.value))
    return layer.out(layer.merge_heads(causal_attend(q, k, v)))


def _layer_case(T=6, d=12, n_heads=3):
    layer = _minecp_layer(d, n_heads, seed=5)
    x = torch.randn(2, T, d, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    weights = [layer.query.weight, layer.key.weight, layer.value.weight, layer.out.weight]
    return layer, x, weights


@graded("multi-head attention", points=2)
def test_layer_matches_minecp(sub):
    layer, x, (wq, wk, wv, wo) = _layer_case()
    with torch.no_grad():
        expected = _minecp_forward(layer, x)
        yours = sub.multi_head_attention(x, wq, wk, wv, wo, 3)
    compare_tensors(yours, expected, what="multi_head_attention(x [2,6,12], n_heads=3)", **F64)


@graded("multi-head attention", points=1)
def test_layer_is_causal(sub):
    _, x, w = _layer_case(T=8)
    with torch.no_grad():
        before = sub.multi_head_attention(x, *w, 3)
        x2 = x.clone()
        x2[:, 5:] += 3.0
        after = sub.multi_head_attention(x2, *w, 3)
    compare_tensors(after[:, :5], before[:, :5], what="layer outputs 0..4 after changing tokens 5..7",
                    atol=1e-12, rtol=0)


@graded("multi-head attention", points=2)
def test_layer_gradients_match_minecp(sub):
    layer, x, w = _layer_case()
    x_ref = x.clone().requires_grad_()
    _minecp_forward(layer, x_ref).square().sum().backward()
    x_yours = x.clone().requires_grad_()
    w_yours = [p.detach().clone().requires_grad_() for p in w]
    sub.multi_head_attention(x_yours, *w_yours, 3).square().sum().backward()
    compare_tensors(x_yours.grad, x_ref.grad, what="gradient with respect to x", atol=1e-9, rtol=1e-9)
    for name, p, ref in zip(("w_q", "w_k", "w_v", "w_o"), w_yours, w):
        compare_tensors(p.grad, ref.grad, what=f"gradient with respect to {name}", atol=1e-9, rtol=1e-9)
