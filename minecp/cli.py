"""Command line: ``python -m minecp train | evaluate | generate | presets``.

Examples::

    MINECP_DATA_DIR=/path/to/hf-mirror python -m minecp train --preset cpu-small --model ecp --dataset pg19
    python -m minecp evaluate --checkpoint runs/pg19-ecp/checkpoint.pt --split test
    torchrun --nproc_per_node=2 -m minecp train --preset gpu-small --model ecp --dataset pg19

Every :class:`minecp.presets.TrainConfig` field is an option (``seq_len`` -> ``--seq-len``);
given options override the preset. User errors (bad option values, missing or corrupt
files, incompatible checkpoints) print ``error: ...`` and exit with status 2; set
``MINECP_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import types
import typing
from dataclasses import fields, replace
from pathlib import Path

from .presets import PRESETS, TrainConfig

_NONE = "none"  # "--eval-max-tokens none": explicitly unset an optional value


# -- argument parsing ------------------------------------------------------------------------
def _parse_for(tp):
    """argparse ``type`` for a dataclass field type (int | None accepts "none")."""
    optional = isinstance(tp, types.UnionType) and type(None) in typing.get_args(tp)
    base = next(t for t in typing.get_args(tp) if t is not type(None)) if optional else tp

    def parse(text: str):
        if optional and text.lower() == _NONE:
            return _NONE
        return base(text)

    parse.__name__ = base.__name__  # argparse names the type in its error messages
    return parse


def int_at_least(minimum: int):
    """argparse ``type``: an int >= ``minimum`` (argparse names the option in the error)."""
    def parse(text: str) -> int:
        value = int(text)  # a ValueError becomes argparse's "invalid int value"
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def positive_float(text: str) -> float:
    """argparse ``type``: a finite float > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


positive_float.__name__ = "float"


def add_config_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One option per TrainConfig field, default None (= keep the preset's value).

    ``skip``: fields the command defines its own option for (``minecp compare`` has a
    ``--max-books`` of its own, a data option of the study).
    """
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group("run configuration (override the preset)")
    for f in fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            group.add_argument(flag, type=_parse_for(hints[f.name]), default=None, metavar=f.name.upper(),
                               help=f"default {f.default!r}" + (" ('none' to unset)" if f.default is None else ""))


def explicit_overrides(args) -> dict:
    """The TrainConfig fields given on the command line ('none' -> None)."""
    out = {}
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            out[f.name] = None if v == _NONE else v
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``minecp`` argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="minecp", description="Train and evaluate the ECP family of "
                                     "long-context language models (arXiv 2412.06106).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model", description="Train a model; see --preset.")
    p.add_argument("--preset", choices=list(PRESETS), default=None, help="named configuration to start from")
    p.add_argument("--out", default=None, help="run directory (default runs/<dataset>-<model>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--stop-at", type=int_at_least(1), default=None, metavar="STEP",
                   help="stop after this step as if interrupted (the schedule still ends at --steps)")
    p.add_argument("--data-dir", default=None, help="hub-layout data root (default $MINECP_DATA_DIR)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="CPU threads for torch (default: all cores)")
    p.add_argument("--smoke", action="store_true",
                   help="smoke test: the same configuration and code cut down to seconds on the CPU "
                        "(minecp.course.smoke_config): checks that a preset runs before you rent a GPU")
    add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint",
                       description="Sliding-window evaluation: every token scored once with as much left "
                                   "context as the window allows; prints bits per byte, token and word "
                                   "perplexity beside unigram and add-k bigram baselines.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--split", default="test", choices=["train", "validation", "test"])
    p.add_argument("--dataset", default=None, help="evaluate on another dataset (e.g. text:<path>)")
    p.add_argument("--stride", type=int_at_least(1), default=None, help="window step (default: training eval_stride, "
                   "else min(N/2, T))")
    p.add_argument("--window", type=int_at_least(1), default=None, help="window length (default the model's seq_len)")
    p.add_argument("--max-tokens", type=int_at_least(0), default=None,
                   help="cap on evaluated tokens (default: the run's eval_max_tokens; 0 = all); for "
                   "sCIFAR-10 on images, for the copy task the number of sequences (default 512)")
    p.add_argument("--spans", type=int_at_least(1), default=4, help="a capped evaluation reads this many evenly "
                   "spaced spans of the split (default 4)")
    p.add_argument("--bigram-k", type=positive_float, default=0.05, help="add-k smoothing of the bigram baseline")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="windows per forward pass")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--json", default=None, help="also write the results here "
                   "(default <checkpoint dir>/eval-<split>.json)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--threads", type=int_at_least(1), default=None,
                   help="CPU threads for torch (default: all cores)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    # Subcommands that live beside their code (imported here, not at the top, because
    # they import helpers from this module).
    from .compare import register_cli as register_compare
    from .generation import register_cli as register_generate

    register_generate(sub)
    register_compare(sub)
    return parser


# -- commands ------------------------------------------------------------------------------------
def _say(*parts) -> None:
    print(*parts, flush=True)


def default_run_dir(cfg: TrainConfig) -> Path:
    """runs/<dataset>-<model> (a text:<path> dataset uses the file's stem)."""
    name = Path(cfg.dataset[5:]).stem if cfg.dataset.startswith("text:") else cfg.dataset
    return Path("runs") / f"{name}-{cfg.model}"


def check_writable_dir(path: Path, flag: str) -> None:
    """Fail now, before any long work, if ``path`` cannot be (or become) a directory we write into.

    Args:
        path: the directory (it may not exist yet; nothing is created here).
        flag: how the user named it, for the message (e.g. "--out").

    Raises:
        NotADirectoryError: ``path`` or its nearest existing ancestor is not a directory.
        PermissionError: that directory is not writable.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{flag} {str(path)!r}: {str(existing)!r} exists and is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {str(path)!r}: cannot write into the directory {str(existing)!r}")


def cmd_train(args) -> int:
    """Handler of ``minecp train``."""
    from . import distributed as D
    from .checkpoint import CheckpointError, load_checkpoint, train_config_of
    from .presets import get_preset
    from .tasks import prepare_task
    from .device import resolve_device
    from .train import CHECKPOINT_NAME, Trainer

    explicit = explicit_overrides(args)
    cfg = get_preset(args.preset, **explicit)
    if cfg.dataset == "scifar10" and "seq_len" not in explicit:
        from .data import SCIFAR_LEN
        cfg = TrainConfig(**{**cfg.to_dict(), "seq_len": SCIFAR_LEN})
    if args.smoke:
        if args.resume:
            raise ValueError("--smoke starts a new cut-down run; it cannot be combined with --resume")
        from .course import smoke_config
        cfg = smoke_config(cfg)
    run_dir = Path(args.out) if args.out else default_run_dir(cfg)
    check_writable_dir(run_dir, "--out")
    ckpt = run_dir / CHECKPOINT_NAME
    if args.resume:
        # The run's own configuration, with the options given now on top (a preset is
        # ignored: its values would silently replace the ones the run was started with).
        saved = load_checkpoint(ckpt)
        cfg = replace(train_config_of(saved, ckpt), **explicit)
    elif ckpt.exists():  # check before spending minutes on data preparation
        raise CheckpointError(f"{str(ckpt)!r} already exists; pass --resume to continue that run or "
                              "choose another --out directory")
    t0 = time.time()
    # Under torchrun, rank 0 builds the data caches (tokenizer, token ids) first; the other
    # ranks wait, then find everything cached instead of all tokenizing at once.
    info = D.init_distributed(resolve_device(cfg.device).type)
    if not info.is_main:
        D.barrier(info)
    task, vocab_size, tokenizer, extra = prepare_task(cfg, args.data_dir)
    if info.is_main:
        D.barrier(info)
        _say(f"data ready in {time.time() - t0:.1f} s: {cfg.dataset}, vocabulary {vocab_size}")
    trainer = Trainer(cfg, task, vocab_size, run_dir, tokenizer=tokenizer, resume=args.resume, extra=extra,
                      progress=not args.no_progress)
    if trainer.dist.is_main:
        n_params = sum(p.numel() for p in trainer.model.parameters())
        _say(f"run directory: {run_dir}  ({cfg.model}, {n_params / 1e6:.2f} M parameters, device "
             f"{trainer.device}, {trainer.dist.world_size} process(es), starting at step {trainer.step})")
    t1 = time.time()
    last = trainer.fit(stop_at=args.stop_at)
    D.shutdown_distributed()
    if trainer.dist.is_main:
        shown = ", ".join(f"{k} {v}" for k, v in last.items() if k not in ("lr", "elapsed_s"))
        if shown:  # empty when --resume finds the run already finished
            _say(f"trained to step {trainer.step} in {time.time() - t1:.1f} s ({shown})")
        else:
            _say(f"nothing to train: the run is already at step {trainer.step} of {cfg.steps}")
        _say(f"checkpoint: {trainer.ckpt_path}")
    return 0


def _fmt(x, digits=3):
    return f"{x:,.{digits}f}" if x is not None else "-"


def cmd_evaluate(args) -> int:
    """Handler of ``minecp evaluate``."""
    from .checkpoint import load_model, train_config_of
    from .device import resolve_device

    t0 = time.time()
    out = Path(args.json) if args.json else Path(args.checkpoint).parent / f"eval-{args.split}.json"
    flag = "--json" if args.json else "results file (--json)"
    if out.is_dir():
        raise IsADirectoryError(f"{flag} {str(out)!r} is a directory; give a file name")
    check_writable_dir(out.parent, flag)  # before the evaluation, not after it
    device = resolve_device(args.device)
    model, tokenizer, meta = load_model(args.checkpoint, map_location=str(device))
    cfg = train_config_of(meta, args.checkpoint)
    dataset = args.dataset or cfg.dataset
    task = meta.get("task", "lm")
    head = (f"checkpoint {args.checkpoint}: {meta['model_name']}, step {meta.get('step')}, "
            f"trained on {cfg.dataset}")
    _say(head)
    if task == "classify":
        result = _evaluate_classifier(model, args, device)
    elif task == "copy":
        result = _evaluate_copy(model, args, device)
    else:
        result = _evaluate_text(model, tokenizer, cfg, args, dataset)
    result.update(checkpoint=str(args.checkpoint), model_name=meta["model_name"], step=meta.get("step"),
                  dataset=dataset, split=args.split, seconds=round(time.time() - t0, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:  # atomic: an older file at --json stays whole until the new one is complete
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    _say(f"({result['seconds']} s; results written to {out})")
    return 0


def _evaluate_text(model, tokenizer, cfg: TrainConfig, args, dataset: str) -> dict:
    from .baselines import BigramBaseline, UnigramBaseline
    from .evaluate import evaluate_lm
    from .tasks import load_lm_ids

    if tokenizer is None:
        raise ValueError("this checkpoint has no tokenizer, so it cannot be evaluated on text")
    ids, _ = load_lm_ids(dataset, args.split, tokenizer, args.data_dir)
    cap = (cfg.eval_max_tokens if args.max_tokens is None else args.max_tokens) or None  # 0 = all
    stride = args.stride if args.stride is not None else cfg.eval_stride
    baselines = {}
    if not args.no_baselines:
        train_ids, _ = load_lm_ids(dataset, "train", tokenizer, args.data_dir)
        baselines = {"unigram": UnigramBaseline(train_ids, tokenizer.vocab_size),
                     f"bigram (add-{args.bigram_k:g})": BigramBaseline(train_ids, tokenizer.vocab_size,
                                                                       k=args.bigram_k)}
    r = evaluate_lm(model, ids, tokenizer, stride=stride, max_tokens=cap, num_spans=args.spans,
                    baselines=baselines, batch_size=args.batch_size, progress=not args.no_progress,
                    window=args.window)
    m, spans = r["model"], r["spans"]
    N = args.window or model.config.seq_len
    T = model.num_predicted if N == model.config.seq_len else N
    stride = stride or max(1, min(N // 2, T))  # the default of minecp.evaluate.window_plan
    if len(spans) == 1:
        what = f"all {r['stream_tokens']:,} tokens of {dataset} {args.split}"
    else:
        what = (f"{len(spans)} spans of {spans[0][1] - spans[0][0]:,} tokens centred at evenly spaced points "
                f"of the {r['stream_tokens']:,}-token {dataset} {args.split} stream (cap --max-tokens "
                f"{cap:,}; pass --max-tokens 0 for all)")
    _say(f"evaluated {what}")
    _say(f"scored {m['tokens']:,} tokens = {m['bytes']:,} UTF-8 bytes, {m.get('words', 0):,} words; window "
         f"{N}, stride {stride}; not scored: the first {N - T + 1} token(s) of each span, which no window "
         "can predict")
    _say(f"{'':28s} {'bits/byte':>10s} {'token ppl':>10s} {'word ppl':>12s}")
    rows = [(f"model ({model.__class__.__name__})", m)] + [(f"{k} baseline", v) for k, v in r["baselines"].items()]
    for name, v in rows:
        _say(f"{name:28s} {_fmt(v['bits_per_byte']):>10s} {_fmt(v['token_ppl'], 2):>10s} "
             f"{_fmt(v.get('word_ppl'), 1):>12s}")
    if "unigram" in r["baselines"]:
        gain = 1 - m["bits_per_byte"] / r["baselines"]["unigram"]["bits_per_byte"]
        _say(f"model is {100 * abs(gain):.1f} % {'below' if gain >= 0 else 'above'} the unigram baseline "
             "in bits per byte")
        r["below_unigram"] = gain
    return r


def _evaluate_classifier(model, args, device) -> dict:
    import torch

    from .classify import accuracy
    from .tasks import load_scifar

    split = args.split
    tokens, labels = load_scifar(split, args.data_dir)  # max_tokens caps the number of images
    n = len(labels) if not args.max_tokens else min(len(labels), args.max_tokens)
    correct = 0
    for i in range(0, n, args.batch_size):
        x = torch.from_numpy(tokens[i:min(n, i + args.batch_size)].astype("int64")).to(device)
        y = torch.from_numpy(labels[i:min(n, i + args.batch_size)].astype("int64")).to(device)
        correct += accuracy(model, x, y)[0]
    _say(f"sCIFAR-10 {split}: accuracy {correct / n:.4f} on {n:,} images")
    return {"accuracy": correct / n, "images": n}


def _evaluate_copy(model, args, device) -> dict:
    import torch

    from .tasks import CopyTask

    task = CopyTask(model.config.seq_len, model.config.vocab_size)
    # fresh sequences from a fixed seed per split, so every evaluation sees the same ones
    gen = torch.Generator().manual_seed(10_000 + ("train", "validation", "test").index(args.split))
    n_seq = args.max_tokens or 512
    correct = total = 0
    with torch.no_grad():
        for done in range(0, n_seq, args.batch_size):
            window, mask = (t.to(device) for t in task.batch("val", gen, min(args.batch_size, n_seq - done)))
            logits, targets = task._scored(model, window, mask)
            correct += int((logits.argmax(-1) == targets).sum())
            total += targets.numel()
    _say(f"copy task: accuracy {correct / total:.4f} on {total:,} copied tokens")
    return {"copy_accuracy": correct / total, "tokens": total}


def cmd_presets(args) -> int:
    """Handler of ``minecp presets``: print every preset's overrides."""
    for name, values in PRESETS.items():
        _say(f"{name}: " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in values.items()))
    return 0


# -- entry point ----------------------------------------------------------------------------------
def show_progress() -> None:
    """Print minecp's INFO log lines (data reading / tokenizing progress) on stderr as
    ``[minecp.data] ...``. Called by the command-line entry points; a library user or
    notebook opts in with ``logging`` itself. Idempotent."""
    log = logging.getLogger("minecp")
    if not any(getattr(h, "_minecp", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        handler._minecp = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # printed once here, not again by a handler on the root logger


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    show_progress()
    try:
        threads = getattr(args, "threads", None)
        if threads is not None:  # parsed as an int >= 1 by every command's parser
            import torch
            torch.set_num_threads(threads)  # on a busy machine fewer threads can be faster
        if getattr(args, "device", None) is not None:  # every command, before any work
            from .device import resolve_device
            resolve_device(args.device)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError, FloatingPointError) as e:  # user-facing: no traceback spam
        if os.environ.get("MINECP_DEBUG"):
            raise
        msg = str(e).strip() or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
