"""Checkpoints: atomic writes survive a failing save; bad files give clear errors."""

import os

import pytest
import torch

from minecp.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from minecp.presets import TrainConfig
from minecp.train import LMTask, Trainer



V = 50


def small_cfg(**kw):
    base = dict(model="ecp", seq_len=16, d_model=16, n_heads=2, n_layers=1, num_segments=2, steps=2,
                batch_size=2, eval_every=100, save_every=100, log_every=1, eval_batches=1, vocab_size=V,
                warmup_steps=1, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def run(tmp_path, **kw):
    tokens = torch.randint(0, V, (500,), generator=torch.Generator().manual_seed(0)).numpy()
    cfg = small_cfg(**kw)
    trainer = Trainer(cfg, LMTask(tokens, tokens, cfg.seq_len), V, tmp_path, progress=False)
    trainer.fit()
    return trainer


def test_failed_save_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1, "w": torch.arange(5)}, path)
    before = path.read_bytes()

    real_save = torch.save

    def broken_save(obj, f, *a, **k):  # write part of a file, then fail like a full disk
        real_save(obj, f, *a, **k)
        f.truncate(10)
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.pt"], "the temporary file is cleaned up"


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    good = save_checkpoint({"step": 3}, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(truncated)
    (tmp_path / "noise.pt").write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a minecp checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_load_model_round_trip(tmp_path):
    trainer = run(tmp_path)
    model, tokenizer, meta = load_model(tmp_path / "checkpoint.pt")
    assert tokenizer is None and meta["model_name"] == "ecp" and meta["step"] == 2
    assert "optimizer" not in meta and not model.training
    x = torch.randint(0, V, (2, 16))
    trainer.model.eval()
    assert torch.equal(model(x), trainer.model(x))


def test_resume_refuses_other_architecture_or_vocab(tmp_path):
    run(tmp_path)
    tokens = torch.randint(0, V, (500,)).numpy()
    for change, flag in ((dict(model="dense"), "--model ecp"), (dict(vocab_size=64), "--vocab-size 50")):
        cfg = small_cfg(steps=4, **change)
        with pytest.raises(CheckpointError, match=flag):
            Trainer(cfg, LMTask(tokens, tokens, 16), cfg.vocab_size, tmp_path, resume=True, progress=False)
    # a new run never silently replaces an existing checkpoint
    with pytest.raises(CheckpointError, match="already exists"):
        Trainer(small_cfg(), LMTask(tokens, tokens, 16), V, tmp_path, progress=False)
