"""The trainer: parameter groups, schedule, accumulation, exact resume, metrics, tasks."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from minecp import ModelConfig, build_model
from minecp.presets import PRESETS, TrainConfig, get_preset
from minecp.tasks import CopyTask, LMTask, sample_windows
from minecp.device import resolve_device
from minecp.train import Trainer, lr_factor, param_groups



V = 40


def cfg(**kw):
    base = dict(model="ecp", seq_len=16, d_model=16, n_heads=2, n_layers=2, num_segments=2, steps=6,
                batch_size=4, lr=3e-3, warmup_steps=2, eval_every=3, save_every=2, log_every=1,
                eval_batches=2, vocab_size=V, device="cpu", dropout=0.1)
    base.update(kw)
    return TrainConfig(**base)


def tokens(n=2000, seed=0):
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed)).numpy()


def train(run_dir, config, resume=False, stop_at=None):
    data = tokens()
    t = Trainer(config, LMTask(data, data[:300], config.seq_len), V, run_dir, resume=resume, progress=False)
    t.fit(stop_at=stop_at)
    return t


def test_param_groups_decay_linear_weights_only():
    model = build_model("dense", ModelConfig(vocab_size=V, seq_len=16, d_model=16, n_heads=2, n_layers=2))
    decay, rest = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in rest["params"]}
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert "embed.weight" in kept, "the tied embedding / lm_head is not decayed"
    assert all(n.endswith(".weight") and "ln" not in n for n in decayed)
    assert {n for n in kept if "ln" in n} == {n for n, _ in model.named_parameters() if "ln" in n}
    assert "blocks.0.attn.query.weight" in decayed and "blocks.1.mlp.down.weight" in decayed
    assert len(decayed) + len(kept) == len(list(model.parameters())), "each parameter once"


def test_schedule_warmup_then_cosine():
    f = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(25)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == pytest.approx(1.0) and f[12] == pytest.approx(0.55)
    assert f[20] == pytest.approx(0.1) and f[24] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[3:], f[4:]))


def test_exact_resume(tmp_path):
    """Stopping at step 3 and resuming gives bit-identical parameters (CPU, dropout on)."""
    full = train(tmp_path / "full", cfg())
    train(tmp_path / "split", cfg(), stop_at=3)
    part = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert part["step"] == 3
    resumed = train(tmp_path / "split", cfg(), resume=True)
    assert resumed.step == 6
    for (n, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), n
    # ... and the resume is not trivially equal: the first half alone differs from the end
    assert not torch.equal(part["model"]["embed.weight"], full.model.embed.weight)


def test_accumulation_equals_bigger_batch(tmp_path):
    """2 micro-batches of 2 = one batch of 4 (the data generator draws the same windows)."""
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    data = tokens()
    assert torch.equal(sample_windows(data, 4, 17, g1),
                       torch.cat([sample_windows(data, 2, 17, g2), sample_windows(data, 2, 17, g2)]))
    a = train(tmp_path / "a", cfg(dropout=0.0, batch_size=4, grad_accum=1, steps=3))
    b = train(tmp_path / "b", cfg(dropout=0.0, batch_size=2, grad_accum=2, steps=3))
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_metrics_and_learning(tmp_path):
    """Loss falls on a learnable stream; metrics.jsonl holds train and validation records."""
    stream = torch.arange(4000).remainder(7).numpy()  # 0 1 2 .. 6 0 1 ..: trivially predictable
    config = cfg(steps=30, eval_every=15, dropout=0.0, lr=2e-2)
    t = Trainer(config, LMTask(stream, stream, 16), V, tmp_path, progress=False)
    last = t.fit()
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if "loss" in r]
    assert [r["step"] for r in train_lines] == list(range(1, 31))
    assert {"lr", "tokens_per_s", "elapsed_s"} <= set(train_lines[0])
    assert [r["step"] for r in lines if "val_loss" in r] == [15, 30]
    assert train_lines[0]["loss"] > math.log(V) - 0.5 and last["val_loss"] < 0.5
    assert t.history == lines and t.train_losses == [r["loss"] for r in train_lines]


def test_in_memory_run_writes_nothing(tmp_path, monkeypatch):
    """run_dir=None: history and model in memory, no file anywhere; resume needs a run_dir."""
    monkeypatch.chdir(tmp_path)
    data = tokens()
    t = Trainer(cfg(steps=4, save_every=2), LMTask(data, data[:300], 16), V, progress=False)
    last = t.fit()
    assert list(tmp_path.iterdir()) == []
    assert [r["step"] for r in t.history if "loss" in r] == [1, 2, 3, 4] and len(t.train_losses) == 4
    assert last["step"] == 4 and "val_loss" in last
    with pytest.raises(ValueError, match="resume=True needs run_dir"):
        Trainer(cfg(), LMTask(data, data[:300], 16), V, None, resume=True)


@pytest.mark.parametrize("name", ["dense", "perceiver_ar"])
def test_copy_task_scores_copied_half_only(name):
    torch.manual_seed(0)
    model = build_model(name, ModelConfig(vocab_size=V, seq_len=16, d_model=16, n_heads=2, n_layers=1))
    task = CopyTask(seq_len=16, vocab_size=V)
    window, mask = task.batch("train", torch.Generator().manual_seed(0), 3)
    assert window.shape == (3, 17) and torch.equal(window[:, 1:9], window[:, 9:]), "[0] + x + x"
    assert torch.equal(mask[0], torch.arange(17) >= 9)
    logits = model(window[:, :-1])  # target at window position p is predicted by input p - 1
    first = 17 - logits.shape[1]  # window position of the first predicted target
    manual = F.cross_entropy(logits[:, 9 - first:].reshape(-1, V), window[:, 9:].reshape(-1))
    torch.testing.assert_close(task.loss(model, window, mask), manual)
    with pytest.raises(ValueError, match="even --seq-len"):
        CopyTask(seq_len=15, vocab_size=V)


def test_presets():
    paper = get_preset("paper")
    assert (paper.n_layers, paper.d_model, paper.n_heads, paper.seq_len, paper.num_segments) == (12, 768, 6, 2048, 8)
    assert (paper.dropout, paper.lr, paper.batch_size, paper.grad_accum) == (0.05, 2e-4, 8, 2)
    assert get_preset("cpu-small", lr=0.5, model="dense").lr == 0.5
    assert get_preset("cpu-small", model="dense").lr == PRESETS["cpu-small"]["lr"]
    for name in PRESETS:
        get_preset(name).model_config(1000)  # every preset builds a valid model config
    with pytest.raises(ValueError, match="allowed presets: paper, gpu-small, cpu-small"):
        get_preset("huge")
    with pytest.raises(ValueError, match="model must be one of dense, perceiver_ar"):
        TrainConfig(model="gpt")


def test_classification_task(tmp_path):
    """sCIFAR-style training: a linear head on the last position's features learns the labels."""
    from minecp.checkpoint import load_model
    from minecp.classify import ClassifyTask, SequenceClassifier

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (512, 16), generator=g).numpy()
    y = (x[:, -1] % 2).astype("int64")  # parity of the last token: a non-linear function of its id
    config = cfg(model="dense", steps=30, eval_every=30, dropout=0.0, lr=1e-2, batch_size=32)
    t = Trainer(config, ClassifyTask((x[:400], y[:400]), (x[400:], y[400:]), 2), V, tmp_path,
                extra={"num_classes": 2}, progress=False)
    last = t.fit()
    assert last["val_acc"] > 0.9 and last["val_loss"] < 0.4
    model, tokenizer, meta = load_model(tmp_path / "checkpoint.pt")
    assert isinstance(model, SequenceClassifier) and meta["task"] == "classify" and tokenizer is None
    assert model(torch.as_tensor(x[:3]).long()).shape == (3, 2)


def test_bf16_autocast_path_runs(tmp_path):
    """The GPU default (bf16 autocast) exercised on the CPU: the loss stays finite."""
    last = train(tmp_path, cfg(precision="bf16", steps=2, eval_every=2))
    assert math.isfinite(last.validate()["val_loss"])


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "CPU", "cuda:", "cuda:-1", "gpu0", ""):
        with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, cuda:<index>, mps"):
            resolve_device(bad)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="MPS"):
            resolve_device("mps")


class _InfGrad(torch.autograd.Function):
    """Identity forward, infinite gradient backward: a finite loss whose backward overflows."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * math.inf


class FaultyTask(LMTask):
    """An LM task whose loss goes wrong from training step ``bad_step`` (1-based) on:
    ``fault="nan"`` makes the loss NaN, ``fault="inf_grad"`` keeps it finite but makes its
    gradient infinite (an overflow in the backward pass)."""

    def __init__(self, *args, bad_step, fault):
        super().__init__(*args)
        self.calls, self.bad_step, self.fault = 0, bad_step, fault

    def loss(self, model, window):
        self.calls += 1
        loss = super().loss(model, window)
        if self.calls < self.bad_step:
            return loss
        return loss * math.nan if self.fault == "nan" else _InfGrad.apply(loss)


@pytest.mark.parametrize("fault,grad_clip", [("nan", 1.0), ("inf_grad", 1.0), ("inf_grad", 0.0)])
def test_non_finite_update_is_never_applied_or_saved(tmp_path, fault, grad_clip):
    """NaN loss, or a finite loss with an overflowing backward: the update is refused, the
    weights stay finite, and the step-2 checkpoint is not replaced."""
    data = tokens()
    config = cfg(steps=6, save_every=2, log_every=5, eval_every=100, dropout=0.0, grad_clip=grad_clip)
    t = Trainer(config, FaultyTask(data, data[:300], 16, bad_step=3, fault=fault), V, tmp_path, progress=False)
    with pytest.raises(FloatingPointError, match=r"training diverged: the gradient norm became (inf|nan) at step 3"):
        t.fit()
    assert all(p.isfinite().all() for p in t.model.parameters())      # the bad update was not applied
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 2 and all(v.isfinite().all() for v in saved["model"].values())


def test_stop_at_must_be_a_positive_int(tmp_path):
    data = tokens()
    t = Trainer(cfg(), LMTask(data, data[:300], 16), V, tmp_path, progress=False)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="stop_at must be None or an int >= 1"):
            t.fit(stop_at=bad)
    assert not (tmp_path / "checkpoint.pt").exists()
