"""Cached generation: every cached path computes what the full forward computes.

CPU, fp32, tiny models; each test takes well under a few seconds.
"""

import argparse
import functools
import io
import sys
import types

import numpy as np
import pytest
import torch

import minecp
from minecp import MODEL_NAMES, ModelConfig, build_model
from minecp.generation import (ECPDecoder, RecomputeDecoder, WindowKVDecoder, make_decoder,
                               register_cli, sample_next_token)
from minecp.ops import ecp_attention

V, N = 61, 32
C = 20                     # context length of the PerceiverAR family below (N - M, M = 12)
PERCEIVER = [n for n in MODEL_NAMES if n not in ("dense", "ecp")]
ATOL = 1e-5


def make(name, **overrides):
    base = dict(vocab_size=V, seq_len=N, d_model=32, n_heads=2, n_layers=2, num_segments=4,
                latent_len=12, context_segments=4, compressed_len=10, context_shift=2)
    base.update(overrides)
    torch.manual_seed(0)
    return build_model(name, ModelConfig(**base)).eval()


def random_ids(n, seed=1):
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed))


def window_logits(model, window, pad_id=0):
    """Full-forward logits for the token after ``window`` (list of ids), as the model sees it."""
    with torch.no_grad():
        if model.name in ("dense", "ecp"):          # windows of <= N tokens, positions from 0
            return model(torch.tensor([window]))[0, -1]
        n = len(window)
        padded = torch.tensor([window + [pad_id] * (N - n)])
        return model(padded)[0, n - 1 - model.config.context_len]


def ecp_long_reference(model, ids):
    """ECP's training function on a sequence of any length, at absolute positions.

    The model's own blocks with ``ecp_attention(backend="torch")`` on the whole sequence
    (padded to whole segments; causality makes the padding invisible).
    Returns logits [T, V]: row t predicts token t + 1.
    """
    S = model.config.segment_len
    T = ids.numel()
    padded = -(-T // S) * S
    with torch.no_grad():
        x = torch.nn.functional.pad(model.embed(ids[None]), (0, 0, 0, padded - T))
        rope = model.rope(torch.arange(padded))
        attend = functools.partial(ecp_attention, segment_len=S, backend="torch")
        for block in model.blocks:
            x = block(x, rope, attend)
        return model.lm_head(model.ln_final(x))[0, :T]


# --- cached logits == full forward ----------------------------------------------------------

@pytest.mark.parametrize("prefill", ["shortest", "long"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cached_logits_equal_full_forward_in_a_window(name, prefill):
    """Prefill, then step token by token: every logit row equals the full forward's."""
    model = make(name)
    idx = random_ids(N)
    with torch.no_grad():
        full = model(idx[None])[0]                 # [T, V], row j is position N - T + j
    first_row = N - model.num_predicted            # first position with a logit row
    start = first_row + 1 if prefill == "shortest" else first_row + 7   # 7: crosses a segment
    decoder = make_decoder(model)
    got = [decoder.prefill(idx[:start].tolist())]
    for t in range(start, N):
        got.append(decoder.step(int(idx[t])))
    got = torch.stack(got)
    expected = full[start - 1 - first_row:]
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= ATOL


@pytest.mark.parametrize("name", ["dense"] + PERCEIVER)
def test_sliding_window_matches_full_forward_on_each_window(name):
    """Past N tokens the window jumps by ``slide``; each logit equals model(window)."""
    model = make(name)
    text = random_ids(3 * N + 5, seed=2).tolist()
    decoder = WindowKVDecoder(model, slide=5)
    start = C + 1 if name != "dense" else 1
    logits = decoder.prefill(text[:start])
    assert (logits - window_logits(model, decoder.window)).abs().max() <= ATOL
    for t in range(start, len(text)):
        logits = decoder.step(text[t])
        window = decoder.window
        assert window == text[t + 1 - len(window):t + 1]         # the text's latest tokens
        assert N + 1 - 5 <= len(window) <= N or t < N
        assert (logits - window_logits(model, window)).abs().max() <= ATOL
        assert max(decoder.cache_entries()) <= N
    assert decoder.reencodes > 1                                  # the window did move


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_recompute_path_equals_cached_path_within_a_window(name):
    model = make(name)
    text = random_ids(N, seed=3).tolist()
    start = C + 1 if name in PERCEIVER else 1
    cached, recompute = make_decoder(model), make_decoder(model, use_cache=False)
    assert isinstance(recompute, RecomputeDecoder)
    a, b = cached.prefill(text[:start]), recompute.prefill(text[:start])
    assert (a - b).abs().max() <= ATOL
    for t in range(start, N):
        a, b = cached.step(text[t]), recompute.step(text[t])
        assert (a - b).abs().max() <= ATOL


# --- ECP: bounded cache, absolute positions, unbounded length -------------------------------

@pytest.mark.parametrize("n_layers", [2, 5])        # L < s and L > s (s = 4 segments)
def test_ecp_bounded_cache_matches_long_sequence_reference(n_layers):
    model = make("ecp", n_layers=n_layers)
    S = model.config.segment_len
    text = random_ids(5 * N, seed=4)
    reference = ecp_long_reference(model, text)
    decoder = ECPDecoder(model)
    got = [decoder.prefill(text[:1].tolist())]
    for t in range(1, text.numel()):
        got.append(decoder.step(int(text[t])))
        entries = decoder.cache_entries()
        assert len(entries) == n_layers
        # previous + current segment, never more
        assert max(entries) <= 2 * S
        assert entries[0] == S + t % S + 1 if t >= S else entries[0] == t + 1
    got = torch.stack(got)
    assert (got - reference).abs().max() <= ATOL
    assert decoder.position == 5 * N                 # positions kept growing past N
    # the buffers were allocated once: 2S positions x (K and V) x d x 4 bytes per layer
    assert decoder.cache_bytes() == n_layers * 2 * (2 * S) * model.config.d_model * 4


def test_ecp_long_prompt_is_read_whole_at_absolute_positions():
    model = make("ecp")
    text = random_ids(3 * N + 3, seed=5)
    reference = ecp_long_reference(model, text)
    decoder = ECPDecoder(model)
    prompt = 2 * N + 1
    logits = decoder.prefill(text[:prompt].tolist())     # chunked prefill, bounded memory
    assert (logits - reference[prompt - 1]).abs().max() <= ATOL
    assert max(decoder.cache_entries()) <= 2 * model.config.segment_len
    for t in range(prompt, text.numel()):
        assert (decoder.step(int(text[t])) - reference[t]).abs().max() <= ATOL


def test_ecp_recompute_over_receptive_field_is_exact():
    model = make("ecp", n_layers=3)
    text = random_ids(4 * N, seed=6)
    reference = ecp_long_reference(model, text)
    decoder = RecomputeDecoder(model)
    decoder.prefill(text[:1].tolist())
    for t in range(1, text.numel()):
        logits = decoder.step(int(text[t]))
        if t % 7 == 0 or t == text.numel() - 1:
            assert (logits - reference[t]).abs().max() <= ATOL
    # it keeps only the receptive field: (L + 1) segments at most
    assert len(decoder.text) <= 4 * model.config.segment_len


# --- generate(): sampling rules --------------------------------------------------------------

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_greedy_is_deterministic_and_matches_argmax_of_full_forward(name):
    model = make(name)
    prompt = random_ids(C + 2, seed=7)
    out1 = minecp.generate(model, prompt, 2 * N, temperature=0)
    out2 = minecp.generate(model, prompt, 2 * N, temperature=0)
    assert torch.equal(out1, out2)
    assert out1.shape == (C + 2 + 2 * N,) and out1.dtype == torch.long
    assert torch.equal(out1[:C + 2], prompt)
    # while the text fits one window, greedy = argmax of the full forward, token by token
    text = prompt.tolist()
    while len(text) < N:
        text.append(int(window_logits(model, text).argmax()))
    assert out1[:N].tolist() == text
    # and top_k = 1 is greedy, whatever the temperature and seed
    assert torch.equal(minecp.generate(model, prompt, 2 * N, temperature=1.5, top_k=1, seed=3), out1)


@pytest.mark.parametrize("name", ["dense", "perceiver_ar", "ecp"])
def test_seeded_sampling_is_reproducible(name):
    model = make(name)
    prompt = random_ids(C + 1, seed=8)[None]                   # [1, T] layout is kept
    a = minecp.generate(model, prompt, 40, temperature=1.0, top_k=20, top_p=0.9, seed=123)
    b = minecp.generate(model, prompt, 40, temperature=1.0, top_k=20, top_p=0.9, seed=123)
    c = minecp.generate(model, prompt, 40, temperature=1.0, top_k=20, top_p=0.9, seed=124)
    assert a.shape == (1, C + 1 + 40)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the cache does not change the distribution: same seed, same text without it
    if name != "dense":    # (dense past N: the two paths use different windows by design)
        d = minecp.generate(model, prompt, N - C - 1, seed=5)
        e = minecp.generate(model, prompt, N - C - 1, seed=5, use_cache=False)
        assert torch.equal(d, e)


def test_sample_next_token_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    g = torch.Generator().manual_seed(0)
    draws = {sample_next_token(logits, 1.0, top_k=2, generator=g) for _ in range(200)}
    assert draws == {0, 1}
    # top_p = 0.5: token 0 (0.4) is kept, token 1 is needed to reach 0.5, token 2 is not
    draws = {sample_next_token(logits, 1.0, top_p=0.5, generator=g) for _ in range(200)}
    assert draws == {0, 1}
    draws = {sample_next_token(logits, 1.0, top_p=0.4, generator=g) for _ in range(50)}
    assert draws == {0}
    assert sample_next_token(logits, 0.0) == 0
    draws = {sample_next_token(logits, 1.0, generator=g) for _ in range(400)}
    assert draws == {0, 1, 2, 3}


def test_stream_yields_the_same_tokens_and_stops_at_eos():
    model = make("ecp")
    prompt = random_ids(5, seed=9)
    full = minecp.generate(model, prompt, 30, temperature=0)
    stream = minecp.generate_stream(model, prompt, 30, temperature=0)
    streamed = list(stream)
    assert all(isinstance(t, int) for t in streamed)
    assert streamed == full[5:].tolist()
    eos = streamed[10]
    first = streamed.index(eos)
    out = minecp.generate(model, prompt, 30, temperature=0, eos_id=eos)
    assert out[5:].tolist() == streamed[:first + 1]
    assert minecp.generate(model, prompt, 0).tolist() == prompt.tolist()


def test_model_mode_is_restored():
    model = make("dense").train()
    minecp.generate(model, [1, 2, 3], 4, seed=0)
    assert model.training
    model.eval()
    minecp.generate(model, [1, 2, 3], 4, seed=0)
    assert not model.training


# --- prompts longer (or shorter) than the window --------------------------------------------

@pytest.mark.parametrize("name", ["dense"] + PERCEIVER)
def test_long_prompt_reads_its_last_window(name):
    """Dense / PerceiverAR family: a prompt longer than N is read from its last N tokens."""
    model = make(name)
    prompt = random_ids(2 * N + 3, seed=10)
    out = minecp.generate(model, prompt, 3, temperature=0)
    assert torch.equal(out[:prompt.numel()], prompt)           # the whole prompt is returned
    expected = int(window_logits(model, prompt[-N:].tolist()).argmax())
    assert int(out[prompt.numel()]) == expected
    # the same rule without the cache
    out = minecp.generate(model, prompt, 1, temperature=0, use_cache=False)
    assert int(out[-1]) == expected


def test_ecp_long_prompt_has_no_limit():
    model = make("ecp")
    prompt = random_ids(4 * N + 1, seed=11)
    out = minecp.generate(model, prompt, 1, temperature=0)
    assert int(out[-1]) == int(ecp_long_reference(model, prompt)[-1].argmax())


@pytest.mark.parametrize("name", PERCEIVER)
def test_short_perceiver_prompt_is_left_padded(name):
    """Fewer than C + 1 tokens: left-padded with pad_id to C + 1 tokens."""
    model = make(name)
    prompt = random_ids(3, seed=12)
    for pad_id in (0, 7):
        out = minecp.generate(model, prompt, 1, temperature=0, pad_id=pad_id)
        window = [pad_id] * (C + 1 - 3) + prompt.tolist()
        assert int(out[-1]) == int(window_logits(model, window, pad_id).argmax())
        assert out.numel() == 4                                  # pads are not returned


# --- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=-0.5), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=-3), "top_k"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(prompt_ids=torch.zeros(0, dtype=torch.long)), "prompt_ids"),
    (dict(prompt_ids=torch.zeros(1, 0, dtype=torch.long)), "prompt_ids"),
    (dict(prompt_ids=torch.zeros(2, 4, dtype=torch.long)), "prompt_ids"),
    (dict(prompt_ids=torch.tensor([1, V])), "prompt_ids"),
    (dict(eos_id=V), "eos_id"),
    (dict(slide=0), "slide"),
    (dict(slide=13), "slide"),          # > M = 12 for the PerceiverAR family
    (dict(pad_id=-1), "pad_id"),
    # numpy / 0-d tensor numbers are accepted, but bools and floats are still not ints
    (dict(eos_id=np.int64(V)), "eos_id"),
    (dict(eos_id=np.float64(3.0)), "eos_id"),
    (dict(eos_id=True), "eos_id"),
    (dict(pad_id=np.bool_(False)), "pad_id"),
    (dict(top_k=np.bool_(True)), "top_k"),
    (dict(top_k=2.0), "top_k"),
    (dict(max_new_tokens=torch.tensor(2.0)), "max_new_tokens"),
    (dict(seed=torch.tensor(True)), "seed"),
    (dict(slide=np.float64(2.0)), "slide"),
    (dict(temperature=torch.tensor(True)), "temperature"),
    (dict(temperature=np.float32("nan")), "temperature"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, match):
    model = make("perceiver_ar")
    args = dict(prompt_ids=torch.tensor([1, 2, 3]), max_new_tokens=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        minecp.generate(model, **args)
    with pytest.raises(ValueError, match=match):          # the stream checks eagerly
        minecp.generate_stream(model, **args)


def test_bad_types():
    model = make("dense")
    with pytest.raises(TypeError, match="prompt_ids"):
        minecp.generate(model, torch.zeros(3), 2)
    with pytest.raises(TypeError, match="model"):
        minecp.generate(object(), [1], 2)


# --- command line -----------------------------------------------------------------------------

class CharTokenizer:
    """ids 0..25 are the letters a..z; everything else is a space (encode gives an array)."""

    def encode(self, text):
        import numpy as np

        return np.array([ord(c) - 97 if "a" <= c <= "z" else 26 for c in text], dtype=np.uint16)

    def decode(self, ids):
        return "".join(chr(97 + i) if i < 26 else " " for i in ids)


def test_cli_streams_generated_text(monkeypatch):
    model = make("ecp")
    fake = types.ModuleType("minecp.checkpoint")
    calls = []

    def load_model(path, map_location=None):
        calls.append((path, map_location))
        return model, CharTokenizer(), {}

    fake.load_model = load_model
    monkeypatch.setitem(sys.modules, "minecp.checkpoint", fake)
    parser = argparse.ArgumentParser(prog="minecp")
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["generate", "--checkpoint", "ck.pt", "--prompt", "hello world",
                              "--max-new-tokens", "12", "--temperature", "0", "--device", "cpu"])
    out = io.StringIO()
    assert args.func(args, out=out) == 0
    assert calls == [("ck.pt", "cpu")]
    prompt = CharTokenizer().encode("hello world")
    ids = minecp.generate(model, torch.tensor(prompt), 12, temperature=0).tolist()
    assert out.getvalue() == CharTokenizer().decode(ids) + "\n"
    args = parser.parse_args(["generate", "--checkpoint", "x", "--prompt", "a", "--top-k", "5",
                              "--top-p", "0.9", "--seed", "3", "--no-cache", "--pad-id", "4"])
    assert (args.top_k, args.top_p, args.seed, args.no_cache, args.pad_id) == (5, 0.9, 3, True, 4)
    # user errors are ValueErrors (the CLI prints them without a traceback)
    args = parser.parse_args(["generate", "--checkpoint", "x", "--prompt", ""])
    with pytest.raises(ValueError, match="--prompt"):
        args.func(args, out=io.StringIO())
    fake.load_model = lambda path, map_location=None: (model, None, {})
    args = parser.parse_args(["generate", "--checkpoint", "x", "--prompt", "abc"])
    with pytest.raises(ValueError, match="no tokenizer"):
        args.func(args, out=io.StringIO())


# --- prompt types, tiny temperatures, flags that do not apply ---------------------------------

def test_prompt_ids_types():
    import numpy as np

    from minecp.tokenizer import ByteTokenizer

    model = make("dense")
    expected = minecp.generate(model, [3, 1, 4], 5, temperature=0)
    for prompt in (np.array([3, 1, 4], dtype=np.uint16), np.array([3, 1, 4]), (3, 1, 4),
                   [np.int64(3), 1, 4], torch.tensor([3, 1, 4], dtype=torch.int32)):
        out = minecp.generate(model, prompt, 5, temperature=0)
        assert out.dtype == torch.long and torch.equal(out, expected), type(prompt)
    assert torch.equal(minecp.generate(model, np.array([[3, 1, 4]]), 5, temperature=0), expected[None])
    # Tokenizer.encode returns a numpy array: it goes straight into generate
    tok = ByteTokenizer()
    byte_model = make("ecp", vocab_size=256)
    out = minecp.generate(byte_model, tok.encode("hi"), 3, temperature=0)
    assert out[:2].tolist() == [104, 105]
    assert torch.equal(out, minecp.generate(byte_model, [104, 105], 3, temperature=0))
    # floats / bools are refused, never truncated to ints
    for bad in ([1.5, 2], [True, 2], [[1, 2], [3]], [[1, 2]], np.array([1.0, 2.0]), "12", None):
        with pytest.raises(TypeError, match="prompt_ids"):
            minecp.generate(model, bad, 3)
    for bad in (np.zeros((2, 3), dtype=np.int64), torch.zeros(1, 1, 3, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"prompt_ids must be \[T\] or \[1, T\]"):
            minecp.generate(model, bad, 3)


@pytest.mark.parametrize("name", ["dense", "perceiver_ar", "ecp"])
def test_tiny_temperature_is_greedy(name):
    model = make(name)
    prompt = random_ids(C + 1, seed=13)
    greedy = minecp.generate(model, prompt, N, temperature=0)
    for t in (1e-40, 1e-300, 5e-324):          # overflowed to inf / nan before
        assert torch.equal(minecp.generate(model, prompt, N, temperature=t, seed=0), greedy)


def test_sample_next_token_edge_cases():
    logits = torch.tensor([0.5, 2.0, 1.9, -1.0])
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert sample_next_token(logits.to(dtype), 1e-40, generator=g) == 1
    # -inf means "never"; a +inf logit wins outright (inf - inf would be nan)
    masked = torch.tensor([0.0, float("-inf"), 1.0])
    assert {sample_next_token(masked, 1.0, generator=g) for _ in range(100)} == {0, 2}
    assert sample_next_token(torch.tensor([0.0, float("inf"), 1.0]), 1.0, generator=g) == 1
    # top_k >= vocab_size and top_p = 1 keep every token: the same draws as no filter
    draws = [[sample_next_token(logits, 2.0, generator=torch.Generator().manual_seed(s), **kw)
              for s in range(50)] for kw in ({}, {"top_k": 4}, {"top_k": 1000}, {"top_p": 1.0})]
    assert draws[0] == draws[1] == draws[2] == draws[3] and len(set(draws[0])) == 4
    # a tiny top_p keeps only the most likely token
    assert {sample_next_token(logits, 5.0, top_p=1e-9, generator=g) for _ in range(50)} == {1}
    for bad, err, match in [(torch.tensor([0.0, float("nan")]), ValueError, "NaN"),
                            (torch.full((3,), float("-inf")), ValueError, "-inf"),
                            (torch.zeros(2, 3), ValueError, "1-D"),
                            (torch.tensor([1, 2]), TypeError, "floating-point"),
                            ([0.1, 0.2], TypeError, "logits")]:
        with pytest.raises(err, match=match):
            sample_next_token(bad, 1.0)
    for kw, match in [(dict(temperature=-1), "temperature"), (dict(top_k=0), "top_k"),
                      (dict(top_p=0), "top_p"), (dict(generator=3), "generator")]:
        with pytest.raises((ValueError, TypeError), match=match):
            sample_next_token(logits, **kw)


def test_numpy_and_tensor_numbers_give_the_same_text():
    # Tokenizer.encode returns uint16 arrays, so eos_id = tok.encode("\n")[-1] is a numpy int.
    model = make("perceiver_ar")
    kw = dict(temperature=0.5, top_k=5, top_p=0.75, seed=3, pad_id=4, slide=3)
    eos = int(minecp.generate(model, [1, 2, 3], 6, **kw)[5])          # the third new token
    expected = minecp.generate(model, [1, 2, 3], 6, eos_id=eos, **kw)
    assert expected.numel() <= 6                                      # it did stop at eos_id
    for wrap in (lambda x: np.array(x)[()], torch.tensor):            # numpy scalars, 0-d tensors
        numbers = {k: wrap(v) for k, v in dict(kw, max_new_tokens=6, eos_id=np.uint16(eos)).items()}
        assert torch.equal(minecp.generate(model, [1, 2, 3], **numbers), expected)
    logits = torch.randn(V, generator=torch.Generator().manual_seed(0))

    def draws(temperature, top_k, top_p):
        return [sample_next_token(logits, temperature, top_k, top_p, torch.Generator().manual_seed(seed))
                for seed in range(5)]

    assert draws(np.float32(0.5), np.int64(4), np.float64(0.5)) == draws(0.5, 4, 0.5)


def test_flags_that_do_not_apply_are_refused():
    ecp, dense = make("ecp"), make("dense")
    for value in ("no", 0, None):                           # "no" is truthy: it used the cache
        with pytest.raises(TypeError, match="use_cache must be True or False"):
            minecp.generate(dense, [1, 2], 3, use_cache=value)
        with pytest.raises(TypeError, match="use_cache"):
            make_decoder(dense, use_cache=value)
    for model in (ecp, dense):                               # they never pad, but the id is checked
        with pytest.raises(ValueError, match=r"pad_id must be a token id in \[0, vocab_size=61\)"):
            minecp.generate(model, [1, 2], 3, pad_id=V)
    with pytest.raises(ValueError, match="slide applies only.*ecp"):
        minecp.generate(ecp, [1, 2], 3, slide=4)
    with pytest.raises(ValueError, match="slide applies only.*use_cache=False"):
        minecp.generate(dense, [1, 2], 3, slide=4, use_cache=False)
    assert minecp.generate(dense, [1, 2], 3, slide=4).numel() == 5     # where it applies: fine


def test_kv_cache_overflow_is_a_runtime_error():
    from minecp.generation import KVCache

    cache = KVCache(1, 2, 3, torch.float32, "cpu")
    cache.append(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="overflow: 2 \\+ 2 > capacity 3"):
        cache.append(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))


def test_cli_tiny_temperature_prints_the_greedy_text(monkeypatch):
    model = make("ecp")
    fake = types.ModuleType("minecp.checkpoint")
    fake.load_model = lambda path, map_location=None: (model, CharTokenizer(), {})
    monkeypatch.setitem(sys.modules, "minecp.checkpoint", fake)
    parser = argparse.ArgumentParser(prog="minecp")
    register_cli(parser.add_subparsers(dest="command"))
    outputs = []
    for t in ("0", "1e-50"):
        args = parser.parse_args(["generate", "--checkpoint", "x", "--prompt", "abc", "--max-new-tokens", "8",
                                  "--temperature", t, "--seed", "1", "--device", "cpu"])
        outputs.append(io.StringIO())
        assert args.func(args, out=outputs[-1]) == 0
    assert outputs[0].getvalue() == outputs[1].getvalue() and len(outputs[0].getvalue()) == 3 + 8 + 1
