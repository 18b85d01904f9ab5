"""``python -m minecp compare``: the command line of the comparison study."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from ..cli import int_at_least, positive_float, show_progress
from ..models import MODEL_NAMES
from ..presets import PRESETS, get_preset
from .data import export_bundle
from .report import cost_table, markdown_table, plot_study, summary
from .run import run_study
from .store import RECORDS_NAME, SCIFAR_MODELS, CompareOptions, ResultStore

# -- command line -------------------------------------------------------------------------------
#: options that decide the data: a bundle records them at export
_DATA_OPTIONS = ("max_books", "eval_books", "scifar_config", "max_images", "scifar_size")
#: ``--dry-run``: a model and budget that run in seconds on a CPU (checks code paths, not
#: results). The window (seq_len, num_segments) stays as given; the rest is forced.
TINY = dict(d_model=16, n_heads=2, n_layers=2, steps=3, batch_size=2, warmup_steps=1, eval_every=2, eval_batches=1)
TINY_WINDOW = dict(seq_len=32, num_segments=4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``compare`` options (plus every TrainConfig field, as in ``minecp train``)."""
    from ..cli import add_config_options

    p.add_argument("--preset", choices=list(PRESETS), default=None, help="named configuration to start from")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help=f"architectures (default: all six; sCIFAR-10: {' '.join(SCIFAR_MODELS)}); "
                        f"allowed: {' '.join(MODEL_NAMES)}")
    p.add_argument("--seeds", nargs="+", type=int_at_least(0), default=[0], metavar="SEED", help="seeds (default 0)")
    p.add_argument("--out", default=None, help="results folder (default results/<dataset>-<preset>)")
    p.add_argument("--data-dir", default=None, help="hub-layout data root (default $MINECP_DATA_DIR)")
    p.add_argument("--bundle", default=None, help="read the data from a folder made by --export-bundle")
    p.add_argument("--export-bundle", default=None, metavar="DIR",
                   help="write the study's tokenized data to DIR (for a machine without `datasets`) and exit")
    p.add_argument("--max-books", type=int_at_least(1), default=None, help="pg19: train on the first MAX_BOOKS books")
    p.add_argument("--eval-books", type=int_at_least(1), default=None, help="pg19: evaluate on the first EVAL_BOOKS books")
    p.add_argument("--val-tokens", type=int_at_least(1), default=16_384, help="validation tokens per curve point (default 16384)")
    p.add_argument("--test-tokens", type=int_at_least(0), default=None,
                   help="test tokens of the final figure (default: the config's eval_max_tokens, else all)")
    p.add_argument("--eval-spans", type=int_at_least(1), default=4, help="evenly spaced spans a capped evaluation reads")
    p.add_argument("--scifar-config", default="plain_text", choices=["plain_text", "lossless_subset"])
    p.add_argument("--max-images", type=int_at_least(1), default=None, help="sCIFAR-10: images loaded per split")
    p.add_argument("--scifar-size", type=int, default=32, choices=[32, 16], help="sCIFAR-10: 32 (1024 pixels) "
                   "or 16 (2x2 mean-pooled, 256 pixels)")
    p.add_argument("--val-images", type=int_at_least(1), default=1000, help="sCIFAR-10: validation images per curve point")
    p.add_argument("--copy-reach", action="store_true", help="copy task: ECP arms whose receptive field is "
                   "shorter / longer than the copy distance (plus a 1-2-hop arm when L > 2)")
    p.add_argument("--copy-eval-batches", type=int_at_least(1), default=8)
    p.add_argument("--cost-lengths", nargs="*", type=int_at_least(1), default=None, metavar="N",
                   help="window lengths of the cost sweep (default N, 2N, 4N, 8N for text; none otherwise)")
    p.add_argument("--cost-tokens", type=int_at_least(1), default=None, help="tokens per call of the cost sweep "
                   "(default the largest length)")
    p.add_argument("--cost-repeats", type=int_at_least(1), default=3)
    p.add_argument("--time-budget-s", type=positive_float, default=None,
                   help="start no new cell after this many seconds (finished cells are kept)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch CPU threads (1 is often fastest on a busy machine)")
    p.add_argument("--ecp-backend", default="auto", choices=["auto", "torch", "sdpa", "flex", "triton"],
                   help="ECP attention kernel (auto: Triton on CUDA for bf16/fp16, sdpa on a CPU, torch for float64)")
    p.add_argument("--skip-training", action="store_true", help="run only the cost sweep")
    p.add_argument("--plot-only", action="store_true", help="only redraw the plots and tables of --out")
    p.add_argument("--save-checkpoints", action="store_true")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="a tiny configuration that only checks the code paths")
    add_config_options(p, skip=("max_books",))


def cmd_compare(args) -> int:
    """Handler of ``minecp compare``."""
    from ..cli import explicit_overrides

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.plot_only:
        if not args.out:
            raise ValueError("--plot-only needs --out (the folder holding records.jsonl)")
        store = ResultStore(Path(args.out) / RECORDS_NAME)
        if not len(store):
            raise ValueError(f"no records in {store.path}")
        for path in plot_study(store.records(), args.out):
            print(f"plot: {path}")
        for ds in dict.fromkeys(r["dataset"] for r in store.records("train")):
            print(f"\n{ds}\n" + markdown_table(summary(store.records(), ds)))
        if store.records("cost"):
            print("\n" + cost_table(store.records()))
        return 0
    explicit = explicit_overrides(args)
    for single, plural in (("model", "--models"), ("seed", "--seeds")):
        if single in explicit:
            raise ValueError(f"compare takes {plural} (a list), not --{single}")
    if args.bundle:  # the bundle decides the data and its tokenizer unless told otherwise
        meta = json.loads((Path(args.bundle) / "meta.json").read_text())
        for field, value in (("dataset", meta["dataset"]), ("tokenizer", meta["tokenizer_spec"]),
                             ("vocab_size", meta["vocab_size_asked"])):
            explicit.setdefault(field, value)
        if meta["kind"] == "classify":
            explicit.setdefault("seq_len", meta["seq_len"])
        for name in _DATA_OPTIONS:  # what the bundle was cut with (part of the config hash)
            setattr(args, name, meta["options"][name])
    cfg = get_preset(args.preset, **explicit)
    from ..data import SCIFAR_LEN

    if cfg.dataset == "scifar10" and "seq_len" not in explicit:
        explicit["seq_len"] = SCIFAR_LEN if args.scifar_size == 32 else 256
    if args.dry_run:
        explicit = {**TINY_WINDOW, **explicit, **TINY}
        if cfg.dataset not in ("copy", "scifar10") and args.bundle is None:
            explicit["tokenizer"] = "bytes"  # no BPE training
        if cfg.dataset == "copy":
            explicit["vocab_size"] = 8
    cfg = get_preset(args.preset, **explicit)
    options = CompareOptions(
        max_books=args.max_books, eval_books=args.eval_books, val_tokens=args.val_tokens,
        test_tokens=args.test_tokens, eval_spans=args.eval_spans, scifar_config=args.scifar_config,
        max_images=args.max_images, scifar_size=args.scifar_size, val_images=args.val_images,
        copy_eval_batches=args.copy_eval_batches, copy_reach=args.copy_reach)
    if args.dry_run:
        options = dataclasses.replace(options, max_books=options.max_books or (1 if cfg.dataset == "pg19" else None),
                                      eval_books=options.eval_books or (1 if cfg.dataset == "pg19" else None),
                                      val_tokens=(cfg.seq_len + 1) * options.eval_spans,  # one window per span
                                      test_tokens=(cfg.seq_len + 1) * options.eval_spans,
                                      val_images=32, test_images=64, copy_eval_batches=1,
                                      max_images=min(options.max_images or 200, 200))
    if args.export_bundle:
        path = export_bundle(cfg, options, args.export_bundle, args.data_dir)
        print(f"bundle written to {path}: " + ", ".join(f.name for f in sorted(path.iterdir())), flush=True)
        return 0
    models = args.models or (list(SCIFAR_MODELS) if cfg.dataset == "scifar10" else list(MODEL_NAMES))
    lengths = args.cost_lengths
    if lengths is None:
        lengths = [cfg.seq_len * k for k in (1, 2, 4, 8)] if cfg.dataset not in ("copy", "scifar10") else []
    if args.dry_run and lengths:  # tiny model, tiny windows
        lengths, args.cost_tokens = [cfg.seq_len, 2 * cfg.seq_len], 2 * cfg.seq_len
    name = Path(cfg.dataset[5:]).stem if cfg.dataset.startswith("text:") else cfg.dataset
    out = Path(args.out) if args.out else Path("results") / f"{name}-{args.preset or 'default'}"
    print(f"compare: {cfg.dataset}, models {' '.join(models)}, seeds {' '.join(map(str, args.seeds))}, "
          f"N={cfg.seq_len}, d={cfg.d_model}, L={cfg.n_layers}, {cfg.steps} steps x {cfg.batch_size * cfg.grad_accum} "
          f"windows = {cfg.steps * cfg.batch_size * cfg.grad_accum * cfg.seq_len:,} input tokens per cell; "
          f"torch threads {torch.get_num_threads()}; results in {out}", flush=True)
    t0 = time.perf_counter()
    store = run_study(cfg, models, args.seeds, out, options, args.data_dir, args.bundle, lengths,
                      args.cost_tokens, args.cost_repeats, args.time_budget_s, args.save_checkpoints,
                      plots=not args.no_plots, train=not args.skip_training, ecp_backend=args.ecp_backend,
                      log=lambda s: print(s, flush=True))
    rows = summary(store.records(), cfg.dataset)
    if rows:
        print(markdown_table(rows))
    print(f"({time.perf_counter() - t0:.1f} s; {len(store)} records in {store.path})", flush=True)
    if store.failed:
        print(f"error: {len(store.failed)} cell(s) failed: {', '.join(store.failed)}", file=sys.stderr)
        return 1
    return 0


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to ``minecp``'s sub-parsers (``set_defaults(func=cmd_compare)``)."""
    p = subparsers.add_parser("compare", help="train and compare architectures under one budget",
                              description="The comparison study: the six architectures trained and scored under one budget.")
    add_arguments(p)
    p.set_defaults(func=cmd_compare)
    return p


def main(argv=None) -> int:
    """``python -m minecp.compare ...``: exit status 0, or 2 on a user error (as ``minecp``)."""
    parser = argparse.ArgumentParser(prog="minecp")
    register_cli(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "compare":
        argv = ["compare", *argv]
    args = parser.parse_args(argv)
    show_progress()
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as e:
        if os.environ.get("MINECP_DEBUG"):
            raise
        print(f"error: {str(e).strip() or type(e).__name__}", file=sys.stderr)
        return 2
