"""minecp.course: the notebooks' branch choice, and the smoke mode that runs the GPU presets on the CPU.

The GPU-sized presets (``gpu-small``, ``paper``) are taken through the real command line with
``--smoke`` (same code, shapes and steps cut down), so a GPU user never meets a configuration
that has not run anywhere. Offline, ``paper``'s pretrained ``bert-base-cased`` tokenizer cannot be
fetched from the Hub, so its smoke run swaps in the byte tokenizer: the one change, stated here.
"""

import json
import os
from pathlib import Path

import pytest

from minecp import MODEL_NAMES
from minecp.cli import main
from minecp.course import SMOKE_STEPS, CourseScale, course_scale, smoke_config
from minecp.presets import PRESETS, get_preset

# The runs below read real data: the hub-layout mirror (CI: ../shared/data/hf). A clone without it
# and without a network has nothing to train on, so they are skipped there, as in test_compare.
DATA_ROOT = Path(os.environ.get("MINECP_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "hf")
needs_data = pytest.mark.skipif(not (DATA_ROOT / "deepmind" / "pg19").is_dir(),
                                reason=f"offline data root {DATA_ROOT} not found (set MINECP_DATA_DIR)")


def test_scale_from_environment(monkeypatch):
    monkeypatch.delenv("MINECP_SMALL", raising=False)
    monkeypatch.setenv("MINECP_GPU_SMOKE", "1")
    scale = course_scale()
    assert scale == CourseScale(device="cpu", small=False, smoke=True)
    assert scale.steps(gpu=2000, cpu=200) == SMOKE_STEPS
    assert scale.pick(gpu=1024, cpu=128, smoke=64) == 64 and scale.pick(gpu="bf16", cpu="fp32") == "bf16"
    monkeypatch.setenv("MINECP_GPU_SMOKE", "0")
    monkeypatch.setenv("MINECP_SMALL", "1")
    scale = course_scale()
    assert scale.small and not scale.smoke
    assert scale.steps(gpu=2000, cpu=200) == 200 and scale.pick(gpu=1024, cpu=128, smoke=64) == 128
    gpu = CourseScale(device="cuda", small=False, smoke=False)
    assert gpu.steps(gpu=2000, cpu=200) == 2000 and gpu.pick(gpu=1024, cpu=128, smoke=64) == 1024


@pytest.mark.parametrize("env, message", [({"MINECP_GPU_SMOKE": "yes"}, "MINECP_GPU_SMOKE must be 0 or 1"),
                                          ({"MINECP_SMALL": "1", "MINECP_GPU_SMOKE": "1"}, "contradict")])
def test_bad_environment_is_refused(monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        course_scale()


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_smoke_config_keeps_the_structure(preset, model):
    full = get_preset(preset, model=model)
    small = smoke_config(full)
    assert small.model == full.model and small.dataset == full.dataset and small.tokenizer == full.tokenizer
    assert small.num_segments == full.num_segments and small.precision == full.precision
    assert small.dropout == full.dropout and small.compile == full.compile
    assert 64 <= small.seq_len <= full.seq_len and full.seq_len % small.seq_len == 0
    factor = full.seq_len // small.seq_len
    for name in ("latent_len", "compressed_len", "context_shift"):
        assert getattr(small, name) == (None if getattr(full, name) is None else getattr(full, name) // factor)
    assert small.steps == SMOKE_STEPS and small.n_layers <= 2 and small.device == "cpu"
    small.model_config(vocab_size=small.vocab_size)  # a valid model of the same kind


def test_smoke_config_refuses_a_tiny_target():
    with pytest.raises(ValueError, match="target_len"):
        smoke_config(get_preset("gpu-small"), target_len=4)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("preset, model, extra", [
    *[("gpu-small", m, []) for m in MODEL_NAMES],
    ("paper", "ecp", ["--tokenizer", "bytes"]),
    ("paper", "dense", ["--tokenizer", "bytes"]),
])
@needs_data
def test_gpu_presets_run_in_smoke_mode(tmp_path, monkeypatch, cache, capsys, preset, model, extra):
    monkeypatch.setenv("MINECP_DATA_DIR", str(DATA_ROOT))
    monkeypatch.setenv("MINECP_CACHE_DIR", str(cache))
    run = tmp_path / "run"
    assert main(["train", "--preset", preset, "--model", model, "--smoke", "--out", str(run),
                 "--no-progress", *extra]) == 0
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == SMOKE_STEPS
    assert any("val_loss" in r for r in records)
    if model == "ecp":  # the trained smoke model goes through evaluation like a real run
        capsys.readouterr()
        assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--split", "test",
                     "--max-tokens", "256", "--no-progress", "--no-baselines"]) == 0
        assert "bits/byte" in capsys.readouterr().out


def test_smoke_cannot_resume(tmp_path, capsys):
    assert main(["train", "--preset", "gpu-small", "--smoke", "--resume", "--out", str(tmp_path)]) != 0
    assert "--smoke" in capsys.readouterr().err


def test_max_books_caps_pg19_only(tmp_path, monkeypatch, capsys):
    assert get_preset("cpu-small").max_books == 24
    assert get_preset("cpu-small", dataset="wikitext-103").max_books is None  # the preset's cap is PG-19's
    with pytest.raises(ValueError, match="max_books"):
        get_preset("cpu-small", dataset="wikitext-103", max_books=3)
    with pytest.raises(ValueError, match="max_books"):
        get_preset("cpu-small", max_books=0)
    assert smoke_config(get_preset("gpu-small")).max_books == 2
    assert smoke_config(get_preset("paper")).max_books is None  # WikiText-103: no books


@needs_data
def test_max_books_reads_only_those_books(tmp_path, monkeypatch):
    from minecp.presets import TrainConfig
    from minecp.tasks import prepare_task

    monkeypatch.setenv("MINECP_DATA_DIR", str(DATA_ROOT))
    monkeypatch.setenv("MINECP_CACHE_DIR", str(tmp_path))
    cfg = TrainConfig(dataset="pg19", tokenizer="bytes", vocab_size=256, seq_len=64, num_segments=4)
    one, _, _, _ = prepare_task(TrainConfig(**{**cfg.to_dict(), "max_books": 1}))
    two, _, _, _ = prepare_task(TrainConfig(**{**cfg.to_dict(), "max_books": 2}))
    a, b = one.tokens["train"], two.tokens["train"]
    assert 0 < len(a) < len(b) and (b[:len(a)] == a).all()  # the first book, then more
