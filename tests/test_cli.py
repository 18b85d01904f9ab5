"""The command line end to end on a small text file, and its handling of bad input."""

import io
import json
import os
import subprocess
import sys

import pytest
import torch

from minecp.cli import build_parser, explicit_overrides, main
from minecp.presets import PRESETS, get_preset



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
    buf = io.BytesIO()
    torch.save({"weights": torch.zeros(100)}, buf)
    (tmp_path / "corrupt.pt").write_bytes(buf.getvalue()[:200])  # a truncated file
    assert main(["evaluate", "--checkpoint", str(tmp_path / "corrupt.pt")]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_subprocess_error_has_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minecp", "evaluate", "--checkpoint", str(tmp_path / "nope.pt")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2
    assert r.stderr.startswith("error: checkpoint") and "Traceback" not in r.stderr


def test_parser_has_every_command(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "evaluate", "presets", "generate", "compare"}
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == list(PRESETS)
    # each line is a valid set of train options that rebuilds the preset
    for name, line in zip(PRESETS, lines):
        args = build_parser().parse_args(["train", *line.split(":", 1)[1].split()])
        assert get_preset(None, **explicit_overrides(args)) == get_preset(name)


def test_copy_task_end_to_end(tmp_path, capsys):
    run = tmp_path / "copy"
    tiny = [a for a in TINY if a not in ("--vocab-size", "300")] + ["--vocab-size", "8"]
    assert main(["train", "--model", "perceiver_ar", "--dataset", "copy", "--out", str(run), *tiny]) == 0
    records = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    # recompute the logged validation accuracy by hand: the validation batch (seed + 1) scored on
    # the copied half only (window positions 17..32 are the copy of 1..16)
    from minecp.checkpoint import load_model
    from minecp.data import copy_task_batch

    model, _, _ = load_model(run / "checkpoint.pt")
    x, _ = copy_task_batch(4, 32, 8, torch.Generator().manual_seed(1))
    assert torch.equal(x[:, 16:], x[:, :16])
    with torch.no_grad():
        logits = model(torch.cat([torch.zeros(4, 1, dtype=torch.long), x[:, :-1]], 1))  # [0] + x, minus last
    hits = (logits[:, -16:].argmax(-1) == x[:, 16:]).float().mean().item()
    assert records[-1]["val_copy_acc"] == pytest.approx(hits, abs=1e-5)
    assert main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), "--max-tokens", "16",
                 "--batch-size", "5"]) == 0
    result = json.loads((run / "eval-test.json").read_text())
    assert result["tokens"] == 16 * 16  # exactly 16 sequences (5 + 5 + 5 + 1) x 16 copied tokens of N = 32
    assert "copy task: accuracy" in capsys.readouterr().out
    # --batch-size 0 and --max-tokens -3 are refused by the parser, naming the option
    for bad in (["--batch-size", "0"], ["--max-tokens", "-3"]):
        with pytest.raises(SystemExit) as e:
            main(["evaluate", "--checkpoint", str(run / "checkpoint.pt"), *bad])
        assert e.value.code == 2 and f"argument {bad[0]}: must be an int >= " in capsys.readouterr().err
    # one symbol leaves nothing to copy
    assert main(["train", "--dataset", "copy", "--out", str(tmp_path / "one"), *tiny, "--vocab-size", "1"]) == 2
    assert "vocab_size must be an int >= 2 for the copy task" in capsys.readouterr().err


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


COPY_TINY = [a for a in TINY if a not in ("--vocab-size", "300")] + ["--vocab-size", "8", "--dataset", "copy",
                                                                    "--model", "dense"]


@pytest.fixture
def copy_ckpt(tmp_path):
    assert main(["train", "--out", str(tmp_path / "copy"), *COPY_TINY]) == 0
    return tmp_path / "copy" / "checkpoint.pt"


def test_none_unsets_a_preset_value(tmp_path, copy_ckpt):
    out = tmp_path / "unset"
    assert main(["train", "--preset", "cpu-small", "--eval-max-tokens", "none", "--out", str(out), *COPY_TINY]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["train_config"]["eval_max_tokens"] is None
    # without "none" the preset's cap is kept (so the assertion above can fail)
    assert main(["train", "--preset", "cpu-small", "--out", str(tmp_path / "kept"), *COPY_TINY]) == 0
    assert torch.load(tmp_path / "kept" / "checkpoint.pt", weights_only=True)["train_config"][
        "eval_max_tokens"] == PRESETS["cpu-small"]["eval_max_tokens"]


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "inf", "lr must be a finite number > 0, got inf"),
    ("--weight-decay", "-1", "weight_decay must be a finite number >= 0, got -1.0"),
    ("--grad-clip", "-1", "grad_clip must be a finite number >= 0 (0 = no clipping), got -1.0"),
    ("--eval-stride", "0", "eval_stride must be None (default) or an int >= 1, got 0"),
    ("--eval-max-tokens", "-5", "eval_max_tokens must be None or an int >= 0 (None and 0 = all tokens), got -5"),
    ("--beta1", "2", "beta1 must be a number in [0, 1), got 2.0"),
    ("--device", "tpu", "device must be one of auto, cpu, cuda, cuda:<index>, mps; got 'tpu'"),
])
def test_bad_config_values_fail_before_any_work(tmp_path, capsys, option, value, message):
    assert main(["train", "--out", str(tmp_path / "r"), *COPY_TINY, option, value]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, option", [
    (["train", "--stop-at", "0"], "--stop-at"), (["train", "--stop-at", "-1"], "--stop-at"),
    (["train", "--threads", "0"], "--threads"), (["train", "--threads", "-1"], "--threads"),
    (["evaluate", "--checkpoint", "x.pt", "--spans", "0"], "--spans"),
    (["evaluate", "--checkpoint", "x.pt", "--spans", "-1"], "--spans"),
    (["evaluate", "--checkpoint", "x.pt", "--threads", "-1"], "--threads"),
    (["evaluate", "--checkpoint", "x.pt", "--stride", "0"], "--stride"),
    (["evaluate", "--checkpoint", "x.pt", "--bigram-k", "0"], "--bigram-k"),
])
def test_bad_numbers_are_refused_by_the_parser(capsys, argv, option):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"error: argument {option}: must be a" in err and "Traceback" not in err


def test_bad_device_and_threads_everywhere(tmp_path, capsys):
    for argv in (["evaluate", "--checkpoint", "x.pt", "--device", "tpu"],
                 ["generate", "--checkpoint", "x.pt", "--prompt", "hi", "--device", "tpu"]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: device must be one of auto, cpu, cuda")
    with pytest.raises(SystemExit) as exit_:  # compare's own --threads option, checked by its parser
        main(["compare", "--threads", "-1", "--out", str(tmp_path / "c")])
    assert exit_.value.code == 2
    assert "argument --threads: must be an int >= 1, got -1" in capsys.readouterr().err


def test_out_that_is_a_file_fails_before_data_preparation(tmp_path, book, capsys):
    out = tmp_path / "taken"
    out.write_text("not a directory")
    assert main(["train", "--dataset", f"text:{book}", "--out", str(out), *TINY]) == 2
    assert "--out" in (err := capsys.readouterr().err) and "is not a directory" in err
    assert not (tmp_path / "cache").exists(), "no data was prepared"
    assert out.read_text() == "not a directory"
    assert main(["train", "--dataset", f"text:{book}", "--out", str(out / "run"), *TINY]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_evaluate_json_path(tmp_path, copy_ckpt, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["evaluate", "--checkpoint", str(copy_ckpt), "--json", str(blocker / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --json") and "is not a directory" in err
    assert "copy task" not in capsys.readouterr().out  # refused before evaluating
    assert main(["evaluate", "--checkpoint", str(copy_ckpt), "--json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    # a missing folder is created; the write leaves no temporary file behind
    target = tmp_path / "new" / "deeper" / "r.json"
    assert main(["evaluate", "--checkpoint", str(copy_ckpt), "--json", str(target), "--max-tokens", "8"]) == 0
    assert json.loads(target.read_text())["tokens"] == 8 * 16
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_diverging_training_exits_2_without_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "nan"
    assert main(["train", "--out", str(out), *COPY_TINY, "--lr", "1e30", "--grad-clip", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged") and "--lr" in err
    assert not (out / "checkpoint.pt").exists()
