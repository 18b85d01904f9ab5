"""The comparison study (minecp.compare) end to end at a tiny configuration, offline.

Data root: $MINECP_DATA_DIR if set, else ../shared/data/hf next to the repository (the
hub-layout mirror); the text tests are skipped when neither exists. Tokenized data go to
a temporary cache, so the tests never touch the repository's data/cache.
"""

import json
import math
import os
import re
from pathlib import Path

import pytest
import torch

import minecp
from minecp import compare
from minecp.compare import (ResultStore, copy_reach_arms, copy_reachable_fraction, cost_model_config, downsample_gray,
                            ecp_reach, main)
from minecp.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("MINECP_DATA_DIR") or ROOT.parent / "shared" / "data" / "hf")
needs_data = pytest.mark.skipif(not (DATA_ROOT / "deepmind" / "pg19").is_dir(),
                                reason=f"offline data root {DATA_ROOT} not found (set MINECP_DATA_DIR)")
TINY = ["--dataset", "pg19", "--preset", "cpu-small", "--models", "ecp", "perceiver_ar", "--dry-run",
        "--threads", "1", "--cost-lengths", "32", "64"]


@pytest.fixture(autouse=True)
def keep_threads():
    """``--threads 1`` changes a process-wide torch setting: restore it for the other tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("MINECP_DATA_DIR", str(DATA_ROOT))
    monkeypatch.setenv("MINECP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@needs_data
def test_compare_records_skip_and_plots(offline, capsys):
    out = offline / "results"
    assert main([*TINY, "--out", str(out)]) == 0
    recs = records(out / "records.jsonl")
    train = {r["model"]: r for r in recs if r["kind"] == "train"}
    cost = [r for r in recs if r["kind"] == "cost"]
    assert set(train) == {"ecp", "perceiver_ar"} and len(cost) == 4  # 2 models x 2 lengths

    ecp, par = train["ecp"], train["perceiver_ar"]
    for r in (ecp, par):
        assert r["key"] == f"pg19|{r['model']}|seed0|{r['config_hash']}"
        assert r["steps"] == 3 and r["device"] == "cpu" and r["threads"] == 1
        assert [p["step"] for p in r["curve"]] == [0, 2, 3]  # step 0, every eval_every=2, the end
        assert all(0 < p["val"] < 9 and math.isfinite(p["val_loss"]) for p in r["curve"])
        assert r["train_wall_s"] > 0 and r["train_tokens_per_s"] > 0 and r["memory"]["activation_bytes"] > 0
        assert r["memory"]["cuda_peak_bytes"] is None and "autograd" in r["memory"]["measure"]
        fin = r["final"]
        assert 0 < fin["bits_per_byte"] < 9 and fin["tokens"] > 0 and fin["bytes"] >= fin["tokens"]
        assert 3.5 < fin["baselines"]["unigram"] < 5.5  # English letters: a unigram model needs ~4.5 bits
    # same input budget and same data; PerceiverAR trains on its M = N/2 latents only
    assert ecp["config_hash"] == par["config_hash"] and ecp["input_tokens"] == par["input_tokens"] == 3 * 2 * 32
    assert ecp["targets_per_window"] == 32 and par["targets_per_window"] == 16
    assert ecp["target_tokens"] == 2 * par["target_tokens"]
    # both scored exactly the same test tokens
    assert (ecp["final"]["tokens"], ecp["final"]["bytes"]) == (par["final"]["tokens"], par["final"]["bytes"])
    assert ecp["final"]["baselines"] == par["final"]["baselines"]
    for r in cost:
        assert r["error"] is None and r["tokens_per_s"] > 0 and r["activation_bytes"] > 0
        assert r["batch"] == 64 // r["seq_len"]
    for name in ("pg19_val_vs_tokens.png", "pg19_val_vs_time.png", "cost_tokens_per_s.png", "cost_memory.png"):
        assert (out / name).stat().st_size > 1000, name

    # a second invocation finds every cell and every cost point done: nothing is appended
    size = (out / "records.jsonl").stat().st_size
    capsys.readouterr()
    assert main([*TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("skipped") == 2 and "cost " not in text
    assert (out / "records.jsonl").stat().st_size == size

    # another seed adds only its own cells
    assert main([*TINY, "--out", str(out), "--seeds", "0", "1", "--no-plots"]) == 0
    keys = [r["key"] for r in records(out / "records.jsonl")]
    assert len(keys) == len(set(keys)) == 8 and sum("|seed1|" in k for k in keys) == 2


@needs_data
def test_bundle_gives_the_same_results(offline):
    """Data exported to a bundle (numpy only) train and score exactly like the mirror."""
    args = ["--dataset", "pg19", "--preset", "cpu-small", "--models", "ecp", "--dry-run", "--threads", "1",
            "--cost-lengths", "--no-plots"]
    assert main([*args, "--export-bundle", str(offline / "bundle")]) == 0
    assert main([*args, "--out", str(offline / "a")]) == 0
    assert main([*args, "--out", str(offline / "b"), "--bundle", str(offline / "bundle")]) == 0
    a, b = records(offline / "a" / "records.jsonl")[0], records(offline / "b" / "records.jsonl")[0]
    assert a["key"] == b["key"] and a["final"] == b["final"] and a["curve"][-1]["val"] == b["curve"][-1]["val"]


def test_copy_study_and_errors(tmp_path, capsys):
    out = tmp_path / "copy"
    assert main(["--dataset", "copy", "--preset", "cpu-small", "--models", "ecp", "dense", "--copy-reach",
                 "--dry-run", "--threads", "1", "--seq-len", "64", "--out", str(out)]) == 0
    recs = records(out / "records.jsonl")
    arms = [r["arm"] for r in recs]
    assert len(recs) == 3 and arms[-1] == "dense" and all(a.startswith("ecp S=") for a in arms[:2])
    # 2 layers: S = 8 sees at most (L+1)S - 1 = 23 < 31 positions back, S = 16 at least L*S = 32
    assert [r["config"]["num_segments"] for r in recs[:2]] == [8, 4]
    assert all(0 <= r["final"]["accuracy"] <= 1 and r["targets_per_window"] == 32 for r in recs)
    assert (out / "copy_val_vs_tokens.png").is_file()
    # provenance: the commit that ran (this test runs in a git checkout: CI clones one)
    if (ROOT / ".git").exists():
        assert all(re.fullmatch(r"[0-9a-f]{7,40}(\+changes)?", r["commit"]) for r in recs)
    capsys.readouterr()
    assert main(["--model", "ecp", "--out", str(tmp_path / "x")]) == 2
    assert "--models" in capsys.readouterr().err
    assert main(["--dataset", "copy", "--models", "nope", "--dry-run", "--out", str(tmp_path / "y")]) == 2
    assert "nope" in capsys.readouterr().err


def test_register_cli_adds_compare():
    import argparse

    parser = argparse.ArgumentParser()
    compare.register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "--models", "ecp", "dense", "--seeds", "0", "1", "--steps", "5"])
    assert args.func is compare.cmd_compare and args.models == ["ecp", "dense"] and args.seeds == [0, 1]
    assert args.steps == 5


def test_copy_reach_matches_the_model():
    """The analytic receptive field of the copy study agrees with autograd on a real ECP."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # many tiny backward passes: one thread is faster (restored by keep_threads)
    for N, S, L in [(64, 8, 1), (64, 16, 1), (64, 32, 1), (64, 8, 3)]:
        cfg = minecp.ModelConfig(vocab_size=8, seq_len=N, d_model=16, n_heads=2, n_layers=L, num_segments=N // S)
        model = minecp.build_model("ecp", cfg).eval()
        emb = model.embed(torch.randint(0, 8, (1, N))).detach().requires_grad_(True)
        h = model.ln_final(model.trunk(emb)) @ torch.randn(16)  # a random read-out of every position
        seen = 0
        for j in range(N // 2, N):
            (g,) = torch.autograd.grad(h[0, j], emb, retain_graph=True)
            seen += bool(g[0, j - N // 2 + 1].abs().sum() > 0)  # the copy source of target j
        assert seen / (N // 2) == copy_reachable_fraction(N, S, L), (N, S, L)
    assert ecp_reach(256, 12) == (3072, 3327)


def test_copy_reach_arms():
    """Out of reach, in reach at the smallest S (the longest relay) and, when that S < N/4, in reach
    within 1-2 hops (S = N/4)."""
    def arms(**kw):
        return [o["num_segments"] for _, o in copy_reach_arms(get_preset("cpu-small", dataset="copy", **kw))]

    assert arms(seq_len=128, n_layers=2) == [8, 4]       # S = 16 out of reach; S = 32 in reach, 2 hops
    assert arms(seq_len=128, n_layers=4) == [16, 8, 4]   # S = 8 out; S = 16 in reach (3-4 hops); S = 32 (1-2)
    assert arms(seq_len=128, n_layers=3) == [16, 4]      # S = 32 is already the smallest S in reach
    assert arms(seq_len=128, n_layers=6) == [16, 8, 4]   # (L+1)S - 1 = 55 < 63 at S = 8; S = 16: 3-4 of 6 layers
    for L, segments in [(2, [8, 4]), (4, [16, 8, 4])]:
        assert [copy_reachable_fraction(128, 128 // s, L) for s in segments] == [0.0] + [1.0] * (len(segments) - 1)


def test_store_ignores_a_torn_line(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    assert store.add({"key": "a", "kind": "train", "x": 1}) and not store.add({"key": "a", "x": 2})
    with open(path, "a") as f:
        f.write('{"key": "b", "kin')  # a crash in the middle of a write
    again = ResultStore(path)
    assert len(again) == 1 and "a" in again and again.records()[0]["x"] == 1


def test_cost_config_and_downsample():
    cfg = get_preset("cpu-small")  # N = 128, S = 32, M = 64, 4 context segments of 16
    mc = cost_model_config(cfg, 100, 512)
    assert (mc.seq_len, mc.segment_len, mc.latent_len, mc.context_len // mc.context_segments) == (512, 32, 64, 16)
    assert mc.compressed_len == 128
    with pytest.raises(ValueError, match="multiple of S=32"):
        cost_model_config(cfg, 100, 100)
    import numpy as np

    x = np.arange(1024, dtype=np.int64).reshape(1, 1024) % 256
    y = downsample_gray(x.astype(np.uint8), 16)
    assert y.shape == (1, 256) and y[0, 0] == (0 + 1 + 32 + 33 + 2) // 4


def test_arm_labels_tell_configurations_apart():
    """One arm under two configurations gets the differing fields in its label, in plots and tables."""
    def rec(arm, seed, segments, **extra):  # run_cell records carry no key or hash: only the config counts
        return {"kind": "train", "dataset": "scifar10", "arm": arm, "model": arm, "seed": seed,
                "config": {"num_segments": segments, "seed": seed, "d_model": 64, **extra}}
    recs = [rec("ecp", 0, 8), rec("ecp", 1, 8), rec("ecp", 0, 4), rec("dense", 0, 8), {"kind": "cost"}]
    assert compare.arm_labels(recs) == ["ecp (num_segments=8)", "ecp (num_segments=8)", "ecp (num_segments=4)",
                                        "dense", None]
    # a field only some configs have counts as a difference, whatever the order
    two = [rec("ecp", 0, 8), rec("ecp", 0, 8, dropout=0.1)]
    assert compare.arm_labels(two) == ["ecp (dropout=None)", "ecp (dropout=0.1)"]
    assert compare.arm_labels(two[::-1]) == ["ecp (dropout=0.1)", "ecp (dropout=None)"]
