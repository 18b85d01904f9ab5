"""The model contract: shapes, causality, ECP's receptive field, input validation."""

import pytest
import torch

import minecp
from minecp import MODEL_NAMES, ModelConfig, build_model, lm_loss
from minecp.models import (
    ECP,
    CompressedPerceiverAR,
    DenseTransformer,
    EnhancedPerceiverAR,
    PerceiverAR,
    SegmentedPerceiverAR,
)

V, N = 61, 32


def small_config(**overrides):
    base = dict(vocab_size=V, seq_len=N, d_model=32, n_heads=2, n_layers=2, num_segments=4,
                latent_len=12, context_segments=4, compressed_len=10, context_shift=2)
    base.update(overrides)
    return ModelConfig(**base)


def make(name, **overrides):
    torch.manual_seed(0)
    return build_model(name, small_config(**overrides)).eval()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_and_loss(name):
    model = make(name)
    expected_T = N if name in ("dense", "ecp") else 12
    assert model.num_predicted == expected_T
    window = torch.randint(0, V, (3, N + 1))
    logits = model(window[:, :-1])
    assert logits.shape == (3, expected_T, V) and logits.dtype == torch.float32
    loss = lm_loss(model, window)
    # the loss is the CE of the last T targets, and at initialisation close to log(V)
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, V), window[:, -expected_T:].reshape(-1))
    torch.testing.assert_close(loss, manual)
    assert abs(loss.item() - torch.log(torch.tensor(float(V))).item()) < 0.5
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("scale", [1.0, 100.0])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_causality_bit_identical(name, scale):
    """Changing any token after position t leaves every logit at a position <= t unchanged."""
    model = make(name)
    with torch.no_grad():
        model.embed.weight.mul_(scale)
    T = model.num_predicted
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, V, (2, N), generator=g)
    with torch.no_grad():
        base = model(idx)
        for t in range(N - 1):
            changed = idx.clone()
            changed[:, t + 1:] = torch.randint(0, V, (2, N - t - 1), generator=g)
            out = model(changed)
            rows = t - (N - T) + 1          # logit rows j with position N - T + j <= t
            if rows > 0:
                assert torch.equal(out[:, :rows], base[:, :rows]), f"position <= {t} saw the future"
            # and the future does matter somewhere (the test can fail)
            assert not torch.equal(out, base) or rows == T


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_ecp_receptive_field(layers):
    """After l layers position i depends on tokens from segment i//S - l on, and no earlier."""
    S = N // 8
    model = make("ecp", n_layers=layers, num_segments=8)
    idx = torch.randint(0, V, (1, N), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(idx)[0]
        for i in range(N):
            first = max(i // S - layers, 0) * S        # first position i may depend on
            for j in range(0, i + 1):
                changed = idx.clone()
                changed[0, j] = (changed[0, j] + 1) % V
                differs = not torch.equal(model(changed)[0, i], base[i])
                if j < first:
                    assert not differs, f"position {i} depends on token {j} < {first} after {layers} layers"
                elif j == first:
                    assert differs, f"position {i} does not depend on token {first} after {layers} layers"


@pytest.mark.parametrize("name", ["dense", "ecp"])
def test_shorter_windows_match_prefix(name):
    model = make(name)
    idx = torch.randint(0, V, (1, N))
    with torch.no_grad():
        full = model(idx)
        for T in (1, 5, 8, 19):
            torch.testing.assert_close(model(idx[:, :T]), full[:, :T], atol=1e-5, rtol=0)


def test_perceiver_family_requires_full_window():
    model = make("perceiver_ar")
    with pytest.raises(ValueError, match="exactly seq_len=32"):
        model(torch.zeros(1, 20, dtype=torch.long))


def test_compressed_map_starts_as_average_pooling():
    model = make("compressed_perceiver_ar")
    W = model.compress.weight                        # [C', C] = [10, 20]
    assert W.shape == (10, 20)
    torch.testing.assert_close(W.sum(1), torch.ones(10))
    assert (W > 0).sum(1).tolist() == [2] * 10


# --- bad input -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(num_segments=5), "divisible by num_segments"),
    (dict(latent_len=32), "latent_len"),
    (dict(latent_len=0), "latent_len"),
    (dict(latent_len=-4), "latent_len"),
    (dict(d_model=30, n_heads=4), "divisible by n_heads"),
    (dict(d_model=12, n_heads=4), "even"),
    (dict(context_segments=3), "context_segments"),
    (dict(compressed_len=21), "compressed_len"),
    (dict(dropout=1.0), "dropout"),
    (dict(vocab_size=0), "vocab_size"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_config(**kwargs)


def test_config_rejects_wrong_types():
    with pytest.raises(TypeError, match="seq_len"):
        small_config(seq_len=32.0)
    with pytest.raises(TypeError, match="config"):
        build_model("ecp", {"vocab_size": 3})


def test_unknown_model_name_lists_allowed():
    with pytest.raises(ValueError, match="allowed names: dense, perceiver_ar"):
        build_model("transformer-xl", small_config())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bad_token_ids(name):
    model = make(name)
    with pytest.raises(ValueError, match=r"\[0, vocab_size=61\)"):
        model(torch.full((1, N), V, dtype=torch.long))
    with pytest.raises(ValueError, match=r"vocab_size"):
        model(torch.full((1, N), -1, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, N))
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        model(torch.zeros(N, dtype=torch.long))


def test_public_api_builds_the_six_architectures():
    """minecp exports exactly the six models of docs/architectures.md, simplest first, by name."""
    expected = {"dense": DenseTransformer, "perceiver_ar": PerceiverAR,
                "enhanced_perceiver_ar": EnhancedPerceiverAR,
                "compressed_perceiver_ar": CompressedPerceiverAR,
                "segmented_perceiver_ar": SegmentedPerceiverAR, "ecp": ECP}
    assert minecp.MODEL_NAMES == MODEL_NAMES == tuple(expected)
    for name, cls in expected.items():
        model = minecp.build_model(name, small_config())
        assert type(model) is cls and model.name == name
    assert minecp.lm_loss is lm_loss and minecp.ModelConfig is ModelConfig


def test_ecp_backend_name_checked_at_construction():
    with pytest.raises(ValueError, match=r"attention_backend must be one of \('auto', 'torch', 'sdpa', 'flex', 'triton'\)"):
        build_model("ecp", small_config(), attention_backend="cuda")
    model = make("ecp")
    with pytest.raises(ValueError, match="attention_backend must be one of"):
        model.attention_backend = "cuda"
    assert model.attention_backend == "auto"
    idx = torch.randint(0, V, (2, N))
    from minecp.ops import resolve_backend

    chosen = resolve_backend("auto", idx.device, torch.float32, model.config.d_model // model.config.n_heads,
                             N // model.config.num_segments)
    with torch.no_grad():
        auto = model(idx)
        model.attention_backend = chosen        # what "auto" means here: the same numbers
        assert torch.equal(model(idx), auto)
        model.attention_backend = "torch"       # the readable reference: equal up to rounding
        torch.testing.assert_close(model(idx), auto, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,length,match", [
    ("perceiver_ar", N, r"window must have shape \[B, seq_len \+ 1\] = \[B, 33\].*got length 32"),
    ("perceiver_ar", N + 2, r"\[B, 33\].*got length 34"),
    ("ecp", N + 2, r"window must have shape \[B, T \+ 1\] with 1 <= T <= seq_len=32.*got length 34"),
    ("dense", 1, r"length in \[2, 33\], got length 1"),
])
def test_lm_loss_names_the_window(name, length, match):
    model = make(name)
    with pytest.raises(ValueError, match=match):
        lm_loss(model, torch.zeros(2, length, dtype=torch.long))


def test_lm_loss_rejects_non_integer_windows_and_non_models():
    with pytest.raises(TypeError, match="window must be an integer"):
        lm_loss(make("dense"), torch.zeros(2, N + 1))
    with pytest.raises(TypeError, match="model must be a minecp LanguageModel"):
        lm_loss(torch.nn.Linear(2, 2), torch.zeros(2, N + 1, dtype=torch.long))


def test_lm_loss_on_shorter_windows_scores_them():
    """Dense/ECP take [B, T + 1] windows: the loss is the CE over those T targets."""
    model = make("ecp")
    window = torch.randint(0, V, (2, 10), generator=torch.Generator().manual_seed(3))
    logits = model(window[:, :-1])
    manual = torch.nn.functional.cross_entropy(logits.reshape(-1, V), window[:, 1:].reshape(-1))
    torch.testing.assert_close(lm_loss(model, window), manual)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_recorded_attention_respects_the_pattern(name):
    """record_attention gives per-layer probabilities that follow each layer's mask."""
    from minecp.attention import record_attention

    model = make(name)
    with torch.no_grad(), record_attention() as maps:
        model(torch.randint(0, V, (1, N)))
    assert len(maps) == model.config.n_layers
    for probs in maps:
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    if name == "ecp":       # the first layer of ECP never looks further back than one segment
        S = model.config.segment_len
        i, j = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
        outside = (j > i) | (i // S - j // S > 1)
        assert maps[0][..., outside].abs().max() == 0
    if name == "perceiver_ar":
        assert maps[0].shape[-2:] == (12, N) and maps[1].shape[-2:] == (12, 12)


def test_compressed_rope_positions_survive_a_bf16_cast():
    """The compressed model's fractional RoPE positions are not a float buffer that .to(bf16) rounds."""
    cfg = minecp.ModelConfig(vocab_size=16, seq_len=2048, d_model=16, n_heads=2, n_layers=2, num_segments=8)
    model = minecp.build_model("compressed_perceiver_ar", cfg).to(torch.bfloat16)
    pos = model.compressed_positions
    assert pos.dtype == torch.float64 and pos[-5:].tolist() == [2043.0, 2044.0, 2045.0, 2046.0, 2047.0]
    C, Cc = cfg.context_len, cfg.compressed_len
    assert pos[0].item() == 0.5 * C / Cc - 0.5 and torch.all(pos.diff() > 0)
