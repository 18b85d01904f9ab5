"""Sliding-window evaluation, metrics and count baselines (docs/testing.md, "Evaluation")."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from minecp import ModelConfig, build_model
from minecp.baselines import BigramBaseline, UnigramBaseline
from minecp.evaluate import (evaluate_lm, evaluation_spans, lm_metrics, sliding_window_nll,
                             sliding_window_token_nll, text_size, token_byte_lengths, window_plan)



V, N = 37, 16


def tiny(name):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, seq_len=N, d_model=16, n_heads=2, n_layers=2, num_segments=4,
                      latent_len=6, context_segments=2, compressed_len=4)
    return build_model(name, cfg).eval()


@pytest.mark.parametrize("L", [N + 1, N + 2, 3 * N + 5, 100])
@pytest.mark.parametrize("T", [N, 6, 1])
@pytest.mark.parametrize("stride", [1, 3, 6])
def test_plan_scores_every_token_once(L, T, stride):
    if stride > T:
        with pytest.raises(ValueError, match="stride"):
            window_plan(L, N, T, stride)
        return
    plan = window_plan(L, N, T, stride)
    scored = [p for w in plan for p in w.scored_positions]
    # the documented unscored prefix: positions 0 .. N - T (the first window can't predict them)
    assert sorted(scored) == list(range(N - T + 1, L)), "every later token exactly once"
    for w in plan:
        assert w.length == N and 0 <= w.first_row < w.predicted
        # each scored token has at least N - stride tokens of left context in its window
        # (or all the text before it when the window starts at 0)
        for p in w.scored_positions:
            assert p - w.start >= min(N - stride + 1, p) if w.start else p - w.start == p


def test_plan_short_text_and_errors():
    assert [list(w.scored_positions) for w in window_plan(5, N, N, accepts_shorter=True)] == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="at least 17 tokens"):
        window_plan(5, N, 6)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        window_plan(1, N, N, accepts_shorter=True)
    with pytest.raises(ValueError, match=r"stride must be an int in \[1, num_predicted=6\]"):
        window_plan(50, N, 6, stride=7)
    assert window_plan(50, N, N)[1].start == N // 2  # default stride N / 2


@pytest.mark.parametrize("name", ["dense", "ecp", "perceiver_ar", "compressed_perceiver_ar"])
@pytest.mark.parametrize("stride", [None, 1, 5])
def test_matches_brute_force(name, stride):
    """Batched evaluation equals running the model once per scored token on its window."""
    model = tiny(name)
    T = model.num_predicted
    ids = torch.randint(0, V, (3 * N + 7,), generator=torch.Generator().manual_seed(1))
    stride = stride if stride is None or stride <= T else T
    plan = window_plan(len(ids), N, T, stride)
    pos, nll = sliding_window_token_nll(model, ids, stride, batch_size=4)
    expected = {}
    with torch.no_grad():
        for w in plan:
            for p in w.scored_positions:
                window = ids[w.start:w.start + N]  # exactly the window the scheme uses
                row = p - (w.start + N - T) - 1  # logit row j predicts position start+N-T+j+1
                logp = torch.log_softmax(model(window[None])[0, row].double(), -1)
                expected[p] = -float(logp[ids[p]])
    assert pos.tolist() == sorted(expected)
    torch.testing.assert_close(nll, torch.tensor([expected[p] for p in pos.tolist()], dtype=torch.float64),
                               rtol=1e-5, atol=1e-5)
    total, count = sliding_window_nll(model, ids, stride, batch_size=3)
    assert count == len(ids) - (N - T + 1)
    assert math.isclose(total, sum(expected.values()), rel_tol=1e-6)


def test_total_nearly_independent_of_stride():
    """With a model whose context matters little, the total hardly depends on the stride."""
    model = tiny("dense")
    ids = torch.randint(0, V, (120,), generator=torch.Generator().manual_seed(2))
    totals = [sliding_window_nll(model, ids, s)[0] for s in (2, 8, 16)]
    assert all(abs(t - totals[0]) / totals[0] < 0.01 for t in totals)


class UniformBytes(nn.Module):
    """Stub model: zero logits over 256 byte ids, i.e. the uniform distribution."""

    accepts_shorter, num_predicted = True, 8
    config = ModelConfig(vocab_size=256, seq_len=8, d_model=4, n_heads=2, n_layers=1, num_segments=1)

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx):
        return torch.zeros(*idx.shape, 256)


def test_uniform_byte_model_is_8_bits_per_byte():
    text = "héllo wörld — a uniform byte model pays 8 bits for every byte. " * 3
    ids = torch.tensor(list(text.encode("utf-8")))
    total, count = sliding_window_nll(UniformBytes(), ids, stride=3)
    assert count == len(ids) - 1
    m = lm_metrics(total, count, num_bytes=count, num_words=len(text[1:].split()))
    assert m["bits_per_byte"] == pytest.approx(8.0, abs=1e-9)
    assert m["token_ppl"] == pytest.approx(256.0)
    assert m["word_ppl"] == pytest.approx(math.exp(total / m["words"]))


def test_rejects_bad_ids():
    with pytest.raises(ValueError, match="1-D LongTensor"):
        sliding_window_nll(tiny("dense"), torch.zeros(2, 20, dtype=torch.long))


def test_baselines_against_hand_counts():
    train = np.array([0, 1, 0, 1, 2, 0], dtype=np.int64)
    test = np.array([0, 1, 2, 2])
    uni = UnigramBaseline(train, vocab_size=3, k=1.0)
    p = np.array([3 + 1, 2 + 1, 1 + 1]) / 9  # counts + 1, over 6 + 3
    assert uni.nll(test, [1, 2, 3]) == pytest.approx(-np.log(p[[1, 2, 2]]).sum())
    bi = BigramBaseline([train], vocab_size=3, k=0.5)
    # pairs: 01 10 01 12 20 -> c(0,1)=2, c(1,0)=1, c(1,2)=1, c(2,0)=1 ; c(0)=2, c(1)=2, c(2)=1 as left
    expected = -np.log([(2 + .5) / (2 + 1.5), (1 + .5) / (2 + 1.5), (0 + .5) / (1 + 1.5)]).sum()
    assert bi.nll(test, [1, 2, 3]) == pytest.approx(expected)
    # a bigram fit on text with strong pair structure beats the unigram on it
    rng = np.random.default_rng(0)
    chain = np.cumsum(rng.integers(1, 3, 5000)) % 50
    assert BigramBaseline(chain, 50).nll(chain, np.arange(1, 5000)) < 0.5 * UnigramBaseline(chain, 50).nll(
        chain, np.arange(1, 5000))
    with pytest.raises(ValueError, match="positions must lie"):
        uni.nll(test, [0])


def test_evaluation_spans():
    assert evaluation_spans(1000, None) == [(0, 1000)] and evaluation_spans(1000, 5000) == [(0, 1000)]
    spans = evaluation_spans(1000, 100, num_spans=4)
    assert spans == [(113, 138), (363, 388), (613, 638), (863, 888)]  # centred at 125, 375, 625, 875
    assert evaluation_spans(100, 99, num_spans=2) == [(1, 50), (51, 100)]  # stays inside the stream


def test_byte_counts_are_exact_for_byte_level_tokenizers():
    from minecp.tokenizer import ByteTokenizer, train_bpe

    text = "Der Walfisch — «Moby-Dick» — schwamm über das Meer. " * 40
    bpe = train_bpe(text, vocab_size=300)
    for tok in (bpe, ByteTokenizer()):
        ids = torch.as_tensor(tok.encode(text).astype(np.int64))
        lengths = token_byte_lengths(tok)
        assert int(lengths[ids].sum()) == len(text.encode("utf-8"))
        assert text_size(tok, ids, lengths) == (len(text.encode("utf-8")), len(text.split()))


def test_evaluate_lm_uniform_model_and_baselines():
    from minecp.tokenizer import ByteTokenizer

    text = "the cat sat on the mat; the dog sat on the log. " * 20
    ids = ByteTokenizer().encode(text)
    base = {"unigram": UnigramBaseline(ids, 256), "bigram": BigramBaseline(ids, 256)}
    r = evaluate_lm(UniformBytes(), ids, ByteTokenizer(), stride=4, max_tokens=400, num_spans=2, baselines=base)
    assert len(r["spans"]) == 2 and all(b - a == 200 for a, b in r["spans"])
    assert r["model"]["tokens"] == r["model"]["bytes"] == 2 * 199
    assert r["model"]["bits_per_byte"] == pytest.approx(8.0, abs=1e-12)
    # fit and scored on the same repetitive text, the bigram is far better than the unigram
    assert r["baselines"]["bigram"]["bits_per_byte"] < 0.5 * r["baselines"]["unigram"]["bits_per_byte"] < 4


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be an int >= 1, got 0"),
    (dict(batch_size=-1), "batch_size must be an int >= 1, got -1"),
    (dict(batch_size=2.0), "batch_size must be an int >= 1, got 2.0"),
    (dict(batch_size=True), "batch_size must be an int >= 1, got True"),
    (dict(window=3.0), "window must be an int >= 1, got 3.0"),
    (dict(window=0), "window must be an int >= 1, got 0"),
    (dict(stride=True), "stride must be an int in"),
    (dict(stride=2.0), "stride must be an int in"),
])
def test_sliding_window_rejects_bad_arguments(kwargs, message):
    ids = torch.randint(0, V, (40,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=message):
        sliding_window_nll(tiny("dense"), ids, **kwargs)


def test_sliding_window_rejects_bad_ids_and_models():
    model = tiny("dense")
    with pytest.raises(ValueError, match="ids must be a 1-D LongTensor"):
        sliding_window_nll(model, torch.ones(40, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"ids must be a 1-D LongTensor.*float32"):
        sliding_window_nll(model, torch.ones(40))
    with pytest.raises(ValueError, match=rf"ids must lie in \[0, vocab_size={V}\), got values in \[0, {V}\]"):
        sliding_window_nll(model, torch.arange(V + 1))
    with pytest.raises(ValueError, match="model must be a minecp language model.*Linear"):
        sliding_window_nll(nn.Linear(4, 4), torch.arange(20))


def test_evaluation_spans_rejects_bad_arguments():
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match=f"num_spans must be an int >= 1, got {bad}"):
            evaluation_spans(1000, 100, num_spans=bad)
    with pytest.raises(ValueError, match="max_tokens must be an int >= 0, got -5"):
        evaluation_spans(1000, -5)
    with pytest.raises(ValueError, match=r"max_tokens must be >= 2 \* num_spans = 8"):
        evaluation_spans(1000, 7)
    assert evaluation_spans(1000, 0) == [(0, 1000)]  # 0 = no cap, as --max-tokens 0


def test_capped_spans_too_short_for_a_perceiver_ar_window():
    """A PerceiverAR reads only full windows: the message explains the span length, not the text's."""
    from minecp.tokenizer import ByteTokenizer

    ids = torch.randint(0, V, (500,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"max_tokens=40 / num_spans=4 gives spans of 10 tokens.*"
                                         r"seq_len=16 tokens plus one target: need max_tokens >= 68"):
        evaluate_lm(tiny("perceiver_ar"), ids, ByteTokenizer(), max_tokens=40, num_spans=4)
    r = evaluate_lm(tiny("perceiver_ar"), ids, ByteTokenizer(), max_tokens=68, num_spans=4)
    assert len(r["spans"]) == 4 and r["model"]["tokens"] == 4 * (17 - (N - tiny("perceiver_ar").num_predicted + 1))


def test_huge_losses_give_infinite_perplexities():
    m = lm_metrics(800.0 * 10, num_tokens=10, num_bytes=40, num_words=5)  # 800 nats per token
    assert m["token_ppl"] == m["word_ppl"] == math.inf
    assert m["nll_per_token"] == 800.0 and m["bits_per_byte"] == pytest.approx(8000 / math.log(2) / 40)
    assert lm_metrics(700.0, 1, 1, 1)["word_ppl"] == pytest.approx(math.exp(700.0))  # no clamp below overflow
