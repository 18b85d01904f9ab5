"""The command line end to end on a small text file, and its handling of bad input."""

import json
import os
import subprocess
import sys

import pytest
import torch

from minecp.cli import build_parser, main



TINY = ["--vocab-size", "300", "--seq-len", "32", "--d-model", "32", "--n-heads", "2", "--n-layers", "1",
        "--num-segments", "4", "--steps", "4", "--batch-size", "4", "--eval-every", "2", "--eval-batches", "1",
        "--save-every", "2", "--warmup-steps", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("MINECP_CACHE_DIR", str(tmp_path / "cache"))
    words = ["the", "whale", "sea", "ship", "captain", "and", "of", "a", "storm", "night", "Ahab", "deck"]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) + "." for i in range(600)]
    path = tmp_path / "book.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_train_then_evaluate(tmp_path, book, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "dense", "--dataset", f"text:{book}", "--out", str(run), *TINY]) == 0
    out = capsys.readouterr().out
    assert "checkpoint:" in out and (run / "checkpoint.pt").is_file()
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4]

    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--split", "test", "--no-progress",
                 "--max-tokens", "400", "--spans", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 spans of 200 tokens" in out
    assert "unigram baseline" in out and "bigram (add-0.05) baseline" in out and "bits/byte" in out
    result = json.loads((run / "eval-test.json").read_text())
    m = result["model"]
    assert m["tokens"] == 2 * (200 - 1) and m["bytes"] > m["tokens"]  # BPE tokens span > 1 byte
    assert 0 < m["bits_per_byte"] < 20 and set(result["baselines"]) == {"unigram", "bigram (add-0.05)"}

    # resume with another architecture: a clear error, and the checkpoint is left as it was
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--model", "ecp", "--dataset", f"text:{book}", "--out", str(run), "--resume",
                 *TINY]) == 2
    assert "trained with --model dense" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before
    # a new run never overwrites an existing one
    assert main(["train", "--model", "dense", "--dataset", f"text:{book}", "--out", str(run), *TINY]) == 2
    assert "already exists" in capsys.readouterr().err
    # a window the model was not built for
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--window", "64", "--no-baselines",
                 "--no-progress"]) == 2
    assert "built for seq_len=32" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"caf\xe9 \xff\xfe", "not valid UTF-8")])
def test_bad_text_files(tmp_path, book, capsys, content, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    rc = main(["train", "--dataset", f"text:{bad}", "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and message in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_bad_options(tmp_path, book, capsys):
    assert main(["train", "--dataset", f"text:{book}", "--out", str(tmp_path / "r"), *TINY,
                 "--num-segments", "5"]) == 2
    assert "must be divisible by num_segments" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "corrupt.pt")]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minecp", "evaluate", "--checkpoint", str(tmp_path / "nope.pt")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2
    assert r.stderr.startswith("error: checkpoint") and "Traceback" not in r.stderr


def test_parser_has_every_command(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"train", "evaluate", "presets"} <= set(commands)
    assert main(["presets"]) == 0
    assert "cpu-small: " in capsys.readouterr().out


def test_copy_task_end_to_end(tmp_path, capsys):
    run = tmp_path / "copy"
    tiny = [a for a in TINY if a not in ("--vocab-size", "300")] + ["--vocab-size", "8"]
    assert main(["train", "--model", "perceiver_ar", "--dataset", "copy", "--out", str(run), *tiny]) == 0
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert 0 <= records[-1]["val_copy_acc"] <= 1
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--max-tokens", "16"]) == 0
    result = json.loads((run / "eval-test.json").read_text())
    assert result["tokens"] == 16 * 16  # 16 sequences x the 16 copied tokens of N = 32
    assert "copy task: accuracy" in capsys.readouterr().out


def test_stop_and_resume_from_the_command_line(tmp_path, book):
    import torch

    common = ["--model", "ecp", "--dataset", f"text:{book}", *TINY, "--dropout", "0.1"]
    assert main(["train", "--out", str(tmp_path / "full"), *common]) == 0
    assert main(["train", "--out", str(tmp_path / "part"), *common, "--stop-at", "2"]) == 0
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["step"] == 2
    assert main(["train", "--out", str(tmp_path / "part"), "--resume", "--no-progress"]) == 0
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
