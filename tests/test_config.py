"""ModelConfig: frozen after validation, and every field checked for type and range."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from minecp import ModelConfig, build_model

BASE = dict(vocab_size=61, seq_len=32, d_model=32, n_heads=2, n_layers=2, num_segments=4,
            latent_len=12, context_segments=4, compressed_len=10, context_shift=2)


def config(**overrides):
    return ModelConfig(**{**BASE, **overrides})


def test_frozen_after_validation():
    c = config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.num_segments = 3            # would give S = 32/3 without any check
    assert c.num_segments == 4 and c.segment_len == 8


def test_replace_validates_and_derived_defaults_are_filled():
    c = ModelConfig(vocab_size=10, seq_len=64)
    assert (c.latent_len, c.compressed_len) == (32, 16)     # N // 2 and N // 4
    assert dataclasses.replace(c, num_segments=4).segment_len == 16
    with pytest.raises(ValueError, match="divisible by num_segments"):
        dataclasses.replace(c, num_segments=3)
    # replace copies the filled-in defaults; None recomputes them for a new seq_len
    c2 = dataclasses.replace(c, seq_len=128, latent_len=None, compressed_len=None)
    assert (c2.latent_len, c2.compressed_len) == (64, 32)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1.0, 0.5])
def test_rope_base_must_be_finite_and_above_one(value):
    with pytest.raises(ValueError, match="rope_base must be a finite number > 1"):
        config(rope_base=value)


@pytest.mark.parametrize("field,value", [
    ("rope_base", "10000"), ("rope_base", True),
    ("tie_embeddings", "no"), ("tie_embeddings", 1), ("tie_embeddings", None),
    ("n_heads", True), ("vocab_size", True), ("latent_len", True), ("compressed_len", 10.0),
    ("context_shift", False), ("dropout", True), ("dropout", "0.1"),
    ("n_heads", np.bool_(True)), ("n_heads", torch.tensor(True)), ("d_model", np.float64(32.0)),
    ("d_model", torch.tensor([32])), ("dropout", np.bool_(False)), ("rope_base", 1e4 + 0j),
])
def test_wrong_types_name_the_field(field, value):
    with pytest.raises(TypeError, match=field):
        config(**{field: value})


def test_tie_embeddings_false_unties():
    torch.manual_seed(0)
    tied = build_model("dense", config())
    untied = build_model("dense", config(tie_embeddings=False))
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.lm_head.weight is not untied.embed.weight


def test_context_shift_needs_two_heads():
    """LongLoRA shifts half of the heads (docs/architectures.md Sec. 5); one head has no half."""
    with pytest.raises(ValueError, match=r"context_shift > 0 needs n_heads >= 2.*context_shift=2, n_heads=1"):
        config(d_model=16, n_heads=1)
    assert config(d_model=16, n_heads=1, context_shift=0).n_heads == 1


def test_context_shift_changes_only_the_second_half_of_the_heads():
    model = build_model("segmented_perceiver_ar", config(d_model=64, n_heads=4))
    unshifted = build_model("segmented_perceiver_ar", config(d_model=64, n_heads=4, context_shift=0))
    assert torch.equal(model.mask[:2], unshifted.mask[:2])
    assert torch.equal(model.mask[2], model.mask[3]) and not torch.equal(model.mask[2], model.mask[0])


def test_numpy_and_tensor_numbers_are_accepted_and_stored_as_builtins():
    # Stored as plain Python numbers: checkpoints refuse numpy scalars, JSON refuses tensors.
    c = config(vocab_size=np.uint16(61), d_model=np.int64(32), n_heads=np.int32(2), latent_len=np.int64(12),
               context_shift=torch.tensor(2), dropout=np.float64(0.1), rope_base=np.float32(500.0))
    assert c == config(dropout=0.1, rope_base=500.0)
    for f in dataclasses.fields(c):
        expected = {"dropout": float, "rope_base": float, "tie_embeddings": bool}.get(f.name, int)
        assert type(getattr(c, f.name)) is expected, f.name
    json.dumps(c.to_dict())
    # ints given for float fields become floats too
    assert type(config(dropout=0, rope_base=10).rope_base) is float
