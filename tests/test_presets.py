"""TrainConfig validation and presets: explicit None unsets, every bad field is named."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from minecp.checkpoint import save_checkpoint
from minecp.cli import build_parser, explicit_overrides
from minecp.presets import PRESETS, TrainConfig, get_preset, with_overrides


def test_explicit_none_unsets_a_preset_value():
    assert get_preset("cpu-small").eval_max_tokens == PRESETS["cpu-small"]["eval_max_tokens"] == 100_000
    assert get_preset("cpu-small", eval_max_tokens=None).eval_max_tokens is None
    assert with_overrides(get_preset("cpu-small"), eval_max_tokens=None).eval_max_tokens is None
    # None is not a way to say "keep the preset's value" for a required field
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got None"):
        get_preset("cpu-small", lr=None)


def test_command_line_none_reaches_the_config():
    """What cmd_train does with the parsed options (the CLI run itself: tests/test_cli.py)."""
    args = build_parser().parse_args(["train", "--preset", "cpu-small", "--eval-max-tokens", "none",
                                      "--lr", "0.01"])
    explicit = explicit_overrides(args)
    assert explicit == {"eval_max_tokens": None, "lr": 0.01}
    cfg = get_preset(args.preset, **explicit)
    assert cfg.eval_max_tokens is None and cfg.lr == 0.01 and cfg.d_model == PRESETS["cpu-small"]["d_model"]


@pytest.mark.parametrize("field, value", [
    ("lr", math.inf), ("lr", math.nan), ("lr", 0), ("lr", -1e-3), ("lr", "1e-3"),
    ("weight_decay", -1), ("weight_decay", math.inf),
    ("grad_clip", -1), ("grad_clip", math.inf),
    ("beta1", 2), ("beta1", 1.0), ("beta1", -0.1), ("beta2", 1.0),
    ("min_lr_ratio", 1.5), ("min_lr_ratio", math.nan),
    ("eval_stride", 0), ("eval_stride", -3), ("eval_stride", 2.0),
    ("eval_max_tokens", -5), ("eval_max_tokens", 1.5),
    ("steps", 0), ("steps", True), ("steps", 10.0), ("batch_size", -1), ("log_every", 0),
    ("warmup_steps", -1), ("warmup_steps", 1.5), ("seed", -1), ("seed", None),
    ("device", "tpu"), ("device", "cuda:"), ("device", "cuda:x"), ("device", None),
    ("precision", "fp16"), ("compile", "yes"), ("dataset", "imagenet"), ("dataset", "text:"),
    ("dataset", None), ("model", "gpt"),
    ("steps", np.bool_(True)), ("steps", np.float64(2.0)), ("lr", np.bool_(True)), ("lr", np.float64("nan")),
    # model fields: a wrong type is a ValueError too (the CLI prints ValueErrors as "error: ...")
    ("d_model", 16.0), ("n_heads", True), ("latent_len", 4.0), ("dropout", "0.1"), ("dropout", 1.0),
])
def test_bad_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainConfig(**{field: value})


def test_numpy_numbers_are_accepted_and_stored_as_builtins(tmp_path):
    cfg = TrainConfig(steps=np.int64(2), lr=np.float64(3e-3), seed=np.uint16(7), eval_stride=np.int32(16),
                      dropout=np.float64(0.0), d_model=np.int64(64), latent_len=torch.tensor(128),
                      beta2=np.float32(0.5), warmup_steps=torch.tensor(0))
    assert cfg == TrainConfig(steps=2, lr=3e-3, seed=7, eval_stride=16, dropout=0.0, d_model=64,
                              latent_len=128, beta2=0.5, warmup_steps=0)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        assert value is None or type(value) in (int, float, str, bool), (f.name, type(value))
    assert (type(cfg.steps), type(cfg.lr), type(cfg.dropout), type(cfg.latent_len)) == (int, float, float, int)
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()
    save_checkpoint({"train_config": cfg.to_dict()}, tmp_path / "c.pt")   # refuses numpy scalars
    assert type(with_overrides(cfg, grad_clip=np.int64(1)).grad_clip) is float


def test_copy_task_needs_two_symbols():
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2 for the copy task"):
        TrainConfig(dataset="copy", vocab_size=1)
    assert TrainConfig(dataset="copy", vocab_size=2).vocab_size == 2


def test_boundary_values_are_accepted():
    cfg = TrainConfig(grad_clip=0, weight_decay=0, beta1=0, beta2=0.999, min_lr_ratio=0, warmup_steps=0,
                      eval_stride=1, eval_max_tokens=0, device="cuda:1", dataset="text:notes.txt")
    assert cfg.grad_clip == 0 and cfg.eval_max_tokens == 0  # 0 = no clipping / all tokens
    for device in ("auto", "cpu", "cuda", "mps"):  # only the spelling is checked here
        assert TrainConfig(device=device).device == device


def test_presets_are_valid_and_unknown_names_listed():
    for name in PRESETS:
        get_preset(name).model_config(1000)
    with pytest.raises(ValueError, match="allowed presets: paper, gpu-small, cpu-small"):
        get_preset("huge")
