"""Graded tests of assignment 07 (ECP's bounded KV cache).

Oracles: minecp.masks.ecp_rule (what a query may see), the model's own training forward
(inside one window), minecp's ECPDecoder and its recompute decoder (use_cache=False), which
runs each token's whole receptive field at absolute positions. Logit tolerance (docs/testing.md):
2 x the float32 ECPDecoder's error against a float64 copy of the model, plus 1e-5.
"""

import copy

import torch

import minecp
from minecp.generation import KVCache, make_decoder
from minecp.masks import ecp_rule

from assignments.kit import GradingFailure, compare_tensors, graded

S = 4


def tiny_ecp(seed=0):
    torch.manual_seed(seed)
    cfg = minecp.ModelConfig(vocab_size=64, seq_len=16, d_model=32, n_heads=2, n_layers=2, num_segments=4)
    return minecp.build_model("ecp", cfg, attention_backend="torch").eval()


def new_caches(model, dtype=torch.float32):
    cfg = model.config
    return [KVCache(cfg.n_heads, cfg.head_dim, 2 * cfg.segment_len, dtype, "cpu") for _ in model.blocks]


def text(L, seed=1):
    return torch.randint(0, 64, (L,), generator=torch.Generator().manual_seed(seed))


def decoder_logits(model, ids, use_cache=True):
    dec = make_decoder(model, use_cache=use_cache)
    out = [dec.prefill(ids[:1].tolist())]
    out += [dec.step(int(t)) for t in ids[1:]]
    return torch.stack(out)


def tolerance(model, ids):
    ref = decoder_logits(model, ids)
    gold = decoder_logits(copy.deepcopy(model).double(), ids)
    return 2 * float((ref.double() - gold).abs().max()) + 1e-5


def decode(sub, model, ids):
    caches = new_caches(model)
    try:
        logits = sub.ecp_decode(model, ids, caches)
    except RuntimeError as err:
        if "overflow" in str(err):
            raise GradingFailure(f"ecp_decode on {len(ids)} tokens: {err} — every layer's cache has room "
                                 f"for 2S = {2 * S} positions; drop what no query can see any more, before "
                                 "appending the new token") from None
        raise
    if isinstance(logits, torch.Tensor) and logits.dtype != torch.float32:
        raise GradingFailure(f"ecp_decode should return float32 logits, got {logits.dtype}")
    return logits, caches


# --- task: keep from ---------------------------------------------------------------------------

@graded("keep from", points=2)
def test_keep_from_matches_the_rule(sub):
    for seg in (1, 3, 4):
        rule = ecp_rule(seg)
        for p in range(0, 30):
            visible = rule(torch.tensor(p), torch.arange(p + 1))
            expected = int(visible.nonzero()[0])
            yours = sub.keep_from(p, seg)
            if yours != expected:
                raise GradingFailure(f"keep_from(p={p}, S={seg}): yours {yours!r}, expected {expected} "
                                     f"(the first key that minecp.masks.ecp_rule({seg}) lets query {p} see)")


@graded("keep from", points=1)
def test_keep_from_bounds_the_cache(sub):
    for p in range(0, 40):
        held = p - sub.keep_from(p, S) + 1
        if not 1 <= held <= 2 * S:
            raise GradingFailure(f"keep_from({p}, {S}) = {sub.keep_from(p, S)}: the cache would hold {held} "
                                 f"positions after token {p}; ECP needs at most 2S = {2 * S}")


# --- task: decode ------------------------------------------------------------------------------

@graded("decode", points=2)
def test_decode_matches_training_forward(sub):
    # Inside one window (L = N) cached decoding must compute the training-time function.
    model, ids = tiny_ecp(), text(16)
    logits, _ = decode(sub, model, ids)
    with torch.no_grad():
        expected = model(ids[None])[0]
    compare_tensors(logits, expected, what="ecp_decode(16 tokens) vs model(ids) (the training forward)",
                    atol=tolerance(model, ids), rtol=0)


@graded("decode", points=2)
def test_decode_long_text_matches_minecp(sub):
    # 3 windows long: borders at multiples of S forever, RoPE at absolute positions.
    model, ids = tiny_ecp(seed=1), text(48, seed=2)
    logits, _ = decode(sub, model, ids)
    compare_tensors(logits, decoder_logits(model, ids), what="ecp_decode(48 tokens) vs minecp ECPDecoder",
                    atol=tolerance(model, ids), rtol=0)


@graded("decode", points=1)
def test_decode_matches_recompute(sub):
    # The decoder without a cache recomputes each token from its receptive field: same function.
    model, ids = tiny_ecp(seed=2), text(40, seed=3)
    logits, _ = decode(sub, model, ids)
    compare_tensors(logits, decoder_logits(model, ids, use_cache=False),
                    what="ecp_decode(40 tokens) vs recomputing each token without a cache",
                    atol=tolerance(model, ids), rtol=0)


@graded("decode", points=1)
def test_cache_holds_previous_and_current_segment(sub):
    model, ids = tiny_ecp(), text(23, seed=4)
    _, caches = decode(sub, model, ids)
    p = len(ids) - 1                                  # 22: segment 5; keeps segment 4 on = 16..22
    for layer, cache in enumerate(caches):
        if (cache.start, cache.length) != (16, 7):
            raise GradingFailure(f"after 23 tokens layer {layer}'s cache holds positions {cache.start}.."
                                 f"{cache.start + cache.length - 1}; expected 16..22 (the previous segment "
                                 f"and the current one up to position {p})")
