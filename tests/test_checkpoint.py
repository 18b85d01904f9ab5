"""Checkpoints: atomic writes survive a failing save; bad files give clear errors."""

import collections
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from minecp import ModelConfig, build_model
from minecp.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from minecp.presets import TrainConfig
from minecp.tokenizer import ByteTokenizer
from minecp.tasks import LMTask
from minecp.train import Trainer



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


# --- save refuses what load cannot read back; clear errors on load ------------------------------

READABLE = [None, True, 3, 2 ** 100, 1.5, 1j, "s", b"b", bytearray(b"b"), torch.ones(2),
            torch.nn.Parameter(torch.ones(2)), torch.Size([2]), torch.device("cpu"), torch.bfloat16,
            torch.strided, [1], (1,), {1}, {(1, 2): 3}, collections.OrderedDict(a=1), collections.Counter(a=1)]
UNREADABLE = [Path("runs/x"), np.float64(1.0), np.int64(1), np.ones(2), frozenset([1]),
              collections.defaultdict(int), collections.namedtuple("P", "a")(1), torch.Generator(), slice(1)]


def _weights_only_round_trip(obj):
    buf = io.BytesIO()
    torch.save({"x": obj}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)["x"]


@pytest.mark.parametrize("obj", READABLE, ids=lambda o: type(o).__name__)
def test_save_accepts_what_a_weights_only_load_reads(tmp_path, obj):
    save_checkpoint({"x": {"nested": [obj]}}, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")["x"]["nested"][0]
    assert type(back) is type(obj) or isinstance(obj, torch.Tensor)


@pytest.mark.parametrize("obj", UNREADABLE, ids=lambda o: type(o).__name__)
def test_save_refuses_what_load_cannot_read_and_keeps_the_old_file(tmp_path, obj):
    # the refusal is needed: torch's safe loader really fails on this object
    with pytest.raises(Exception, match="Weights only load failed|Can't pickle"):
        _weights_only_round_trip(obj)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1, "w": torch.arange(3)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"state\['train_config'\]\['out'\]\[1\] is a .*cannot read back"):
        save_checkpoint({"step": 2, "train_config": {"out": ["ok", obj]}}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.pt"]
    # nothing is created for a new path either (not even its directory)
    with pytest.raises(TypeError, match="state"):
        save_checkpoint({"w": obj}, tmp_path / "new" / "c.pt")
    assert not (tmp_path / "new").exists()


def test_save_refuses_other_state_types_and_formats(tmp_path):
    with pytest.raises(TypeError, match="state must be a dict"):
        save_checkpoint([1, 2], tmp_path / "c.pt")
    with pytest.raises(TypeError, match=r"a key of state\['d'\]"):
        save_checkpoint({"d": {Path("k"): 1}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="state\\['version'\\] is 0"):
        save_checkpoint({"version": 0}, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()
    shared = [1]
    save_checkpoint({"a": shared, "b": shared}, tmp_path / "c.pt")     # shared objects are fine
    assert load_checkpoint(tmp_path / "c.pt")["b"] == [1]


def test_file_saved_with_foreign_objects_is_not_called_corrupt(tmp_path):
    torch.save({"format": "minecp-checkpoint", "version": 1, "p": Path("x")}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="pathlib.PosixPath object.*weights_only") as err:
        load_checkpoint(tmp_path / "c.pt")
    assert "corrupt" not in str(err.value)


def test_unavailable_device_is_not_called_corrupt(tmp_path):
    path = save_checkpoint({"step": 1}, tmp_path / "c.pt")
    for device in ("cuda:999", torch.device("cuda", 999), "no-such-device"):
        with pytest.raises(ValueError, match="map_location.*not available") as err:
            load_checkpoint(path, map_location=device)
        assert not isinstance(err.value, CheckpointError) and "corrupt" not in str(err.value)
    with pytest.raises(ValueError, match="map_location"):
        load_model(path, map_location="cuda:999")
    assert load_checkpoint(path, map_location=torch.device("cpu"))["step"] == 1


def _lm_state(tokenizer):
    config = ModelConfig(vocab_size=V, seq_len=16, d_model=16, n_heads=2, n_layers=1, num_segments=2)
    model = build_model("dense", config)
    return {"model_name": "dense", "model_config": config.to_dict(), "task": "lm",
            "model": model.state_dict(), "tokenizer": tokenizer}


@pytest.mark.parametrize("entry,match", [
    ({"kind": "hf", "name": "x"}, "tokenizer_json"),                       # was KeyError
    ({"kind": "hf", "name": "x", "tokenizer_json": "not json"}, "tokenizer.json"),
    ({"kind": "sentencepiece"}, "kind"),
    ({"kind": "bytes", "fingerprint": "0" * 16}, "fingerprint"),
    ("bytes", "dict"),
])
def test_bad_tokenizer_entry_is_a_checkpoint_error_naming_the_file(tmp_path, entry, match):
    path = save_checkpoint(_lm_state(entry), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=f"c.pt.*unusable tokenizer entry.*{match}"):
        load_model(path)


def test_load_model_rebuilds_a_good_tokenizer(tmp_path):
    path = save_checkpoint(_lm_state(ByteTokenizer().to_dict()), tmp_path / "c.pt")
    _model, tokenizer, meta = load_model(path)
    assert isinstance(tokenizer, ByteTokenizer) and meta["model_name"] == "dense"


def test_train_config_of_a_foreign_checkpoint_is_a_checkpoint_error(tmp_path):
    """A checkpoint whose training configuration this minecp cannot read fails as CheckpointError."""
    from minecp.checkpoint import CheckpointError, train_config_of
    from minecp.presets import TrainConfig

    good = {"train_config": TrainConfig().to_dict()}
    assert train_config_of(good, tmp_path / "x.pt") == TrainConfig()
    for bad in ({"train_config": {**good["train_config"], "renamed_field": 1}},
                {"train_config": {**good["train_config"], "lr": -1.0}}, {}):
        with pytest.raises(CheckpointError, match="x.pt.*does not fit this version"):
            train_config_of(bad, tmp_path / "x.pt")
