"""TrainConfig validation and presets: explicit None unsets, every bad field is named."""

import math

import pytest

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
])
def test_bad_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainConfig(**{field: value})


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
