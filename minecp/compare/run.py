"""Running a study: one cell (:func:`run_cell`) and a whole grid of them (:func:`run_study`)."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch

from ..models import MODEL_NAMES
from ..presets import TrainConfig
from .arms import study_arms
from .cost import activation_bytes, measure_cost, synchronize
from .data import StudyData, load_data
from .report import plot_study
from .scoring import evaluate_cell, headline
from .store import RECORDS_NAME, CompareOptions, ResultStore, cell_key, config_hash


# -- one cell ---------------------------------------------------------------------------------
def run_cell(cfg: TrainConfig, data: StudyData, options: CompareOptions, label: str | None = None,
             run_dir=None, save_checkpoint: bool = False, ecp_backend: str = "auto") -> dict:
    """Train ``cfg.model`` with ``cfg.seed`` under the study budget and measure it.

    Uses :class:`minecp.train.Trainer` (the optimizer, schedule, precision and data order
    of ``minecp train``). Validation points every ``cfg.eval_every`` steps (and at step 0
    if ``options.eval_at_start``); training time excludes evaluation time. ``ecp_backend``
    picks ECP's attention kernel (:func:`minecp.ops.ecp_attention`; same function, other speed).

    Returns:
        The record (no ``key``; :func:`run_study` adds it): config, ``params``,
        ``input_tokens`` (= steps x batch x grad_accum x N), ``targets_per_window``,
        ``target_tokens``, ``train_wall_s`` (s), ``train_tokens_per_s`` (input tokens/s after
        the first step), ``first_step_s``, ``eval_wall_s``, ``memory`` (activation bytes,
        CUDA peak bytes or None), ``curve`` (list of points) and ``final`` (test metrics).
    """
    from ..device import autocast
    from ..train import Trainer

    tmp = None
    if run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="minecp-compare-")
        run_dir = tmp.name
    trainer = Trainer(cfg, data.task, data.vocab_size, run_dir, progress=False)
    model, dev = trainer.model, trainer.device
    core = getattr(model, "backbone", model)  # a classifier wraps the language model
    if hasattr(core, "attention_backend"):
        core.attention_backend = ecp_backend
    per_step = cfg.batch_size * cfg.grad_accum
    if data.kind == "lm":
        targets = model.num_predicted
    elif data.kind == "copy":
        targets = int(data.task.batch("val", torch.Generator().manual_seed(0), 1)[1][0, 1:][-model.num_predicted:].sum())
    else:
        targets = 1  # one label per sequence
    sample = [t.to(dev) for t in data.task.batch("train", torch.Generator().manual_seed(123), cfg.batch_size)]
    with autocast(dev, cfg.precision):
        act = activation_bytes(model, data.task.loss, *sample)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def point(train_loss):
        m = evaluate_cell(model, data, cfg, options, "val")
        return {"step": trainer.step, "input_tokens": trainer.step * per_step * cfg.seq_len,
                "target_tokens": trainer.step * per_step * targets, "train_wall_s": round(train_s, 3),
                "train_loss": None if train_loss is None else round(train_loss, 5),
                "val": round(headline(m, data.kind), 5), "val_loss": round(m.get("nll_per_token", m.get("loss")), 5)}

    train_s = eval_s = first_s = 0.0
    curve, window_losses = [], []
    if options.eval_at_start:
        t = time.perf_counter()
        curve.append(point(None))
        eval_s += time.perf_counter() - t
    while trainer.step < cfg.steps:
        synchronize(dev)
        t = time.perf_counter()
        window_losses.append(trainer.train_step())
        synchronize(dev)
        dt = time.perf_counter() - t
        train_s += dt
        first_s = first_s or dt
        if trainer.step % cfg.eval_every == 0 or trainer.step == cfg.steps:
            t = time.perf_counter()
            curve.append(point(sum(window_losses) / len(window_losses)))
            eval_s += time.perf_counter() - t
            window_losses = []
    peak = int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
    t = time.perf_counter()
    final = evaluate_cell(model, data, cfg, options, "test")
    eval_s += time.perf_counter() - t
    if save_checkpoint:
        trainer.save()
    steady = (cfg.steps - 1) * per_step * cfg.seq_len / max(train_s - first_s, 1e-9) if cfg.steps > 1 else None
    record = {
        "kind": "train", "task": data.kind, "dataset": cfg.dataset, "model": cfg.model, "arm": label or cfg.model,
        "seed": cfg.seed, "config": cfg.to_dict(), "options": dataclasses.asdict(options), "data": data.source,
        "ecp_backend": ecp_backend if cfg.model == "ecp" else None,
        "vocab_size": data.vocab_size, "params": sum(p.numel() for p in model.parameters()), "steps": cfg.steps,
        "input_tokens": cfg.steps * per_step * cfg.seq_len, "targets_per_window": targets,
        "target_tokens": cfg.steps * per_step * targets,
        "train_wall_s": round(train_s, 3), "first_step_s": round(first_s, 3), "eval_wall_s": round(eval_s, 3),
        "train_tokens_per_s": None if steady is None else round(steady, 1),
        "memory": {"activation_bytes": act, "cuda_peak_bytes": peak,
                   "measure": "cuda max_memory_allocated over training" if peak is not None else
                   "CPU: bytes autograd saves for backward in one training micro-batch (params, grads, "
                   "optimizer state and workspace not included)"},
        "curve": curve, "final": {"split": "test", **final},
    }
    del trainer, model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    if tmp is not None:
        tmp.cleanup()
    return record


def _environment(device: torch.device) -> dict:
    import platform

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    return {"device": device.type, "device_name": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "host_cpus": os.cpu_count(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "commit": source_commit()}


def source_commit() -> str | None:
    """The git commit of this checkout now ("+changes" appended when files under minecp/
    differ from it or are untracked, "+unknown" when git cannot tell); None outside a git
    checkout (e.g. an installed wheel). :func:`run_study` records it once, when a study
    starts."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # not a checkout (a site-packages parent may be another repo)
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--", "minecp"], cwd=root, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if status.returncode != 0:
        return head.stdout.strip() + "+unknown"  # the commit is known, the state of the files is not
    return head.stdout.strip() + ("+changes" if status.stdout.strip() else "")


# -- a whole study --------------------------------------------------------------------------------
def run_study(cfg: TrainConfig, models, seeds, out, options: CompareOptions | None = None, data_dir=None,
              bundle=None, cost_lengths=(), cost_tokens: int | None = None, cost_repeats: int = 3,
              time_budget_s: float | None = None, save_checkpoints: bool = False, plots: bool = True,
              train: bool = True, ecp_backend: str = "auto", log=print) -> ResultStore:
    """Run every missing (model, seed) cell, then the cost sweep, then the plots.

    Args:
        cfg: the study's :class:`TrainConfig` (its ``model`` and ``seed`` are replaced per cell).
        models: names from :data:`minecp.MODEL_NAMES`; seeds: ints.
        out: results folder (``records.jsonl`` + PNG plots).
        options: :class:`CompareOptions` (default: its defaults).
        data_dir, bundle: see :func:`load_data`.
        cost_lengths: window lengths N for :func:`measure_cost` (empty = no cost sweep).
        cost_tokens: tokens per forward+backward call in the sweep (default max(cost_lengths)).
        time_budget_s: start no new cell once the elapsed time plus the longest cell so far
            would exceed it (the rest is picked up by the next invocation).
        save_checkpoints: keep ``<out>/runs/<cell>/checkpoint.pt``.
        plots: write the plots of :func:`plot_study`.
        train: False = only the cost sweep (and plots).
        ecp_backend: ECP's attention kernel ("auto", "torch", "flex", "triton").
        log: called with one line of text per event.

    Returns:
        The :class:`ResultStore` of ``<out>/records.jsonl``; ``store.failed`` lists the
        cells that raised (logged and skipped, so one broken kernel does not lose the others).

    Raises:
        ValueError: unknown model names, an empty list, bad options (see the callees).
    """
    from ..device import resolve_device

    options = options or CompareOptions()
    bad = [m for m in models if m not in MODEL_NAMES]
    if bad or not models or not seeds:
        raise ValueError(f"models must be a non-empty list from {', '.join(MODEL_NAMES)} and seeds non-empty; "
                         f"got models={list(models)}, seeds={list(seeds)}")
    out = Path(out)
    store = ResultStore(out / RECORDS_NAME)
    device = resolve_device(cfg.device)
    env = _environment(device)
    t_start, longest = time.perf_counter(), 0.0
    arms = study_arms(models, cfg, options)
    cells = [(seed, label, name, over) for seed in seeds for label, name, over in arms] if train else []
    data, store.failed = None, []
    for i, (seed, label, name, over) in enumerate(cells, 1):
        cell_cfg = dataclasses.replace(cfg, model=name, seed=seed, **over)
        chash = config_hash(cell_cfg, options, device.type)
        key = cell_key(cfg.dataset, name, seed, chash)
        if key in store:
            log(f"[{i}/{len(cells)}] {label} seed {seed}: done before ({key}), skipped")
            continue
        elapsed = time.perf_counter() - t_start
        if time_budget_s is not None and elapsed + longest > time_budget_s:
            log(f"[{i}/{len(cells)}] time budget {time_budget_s:.0f} s reached after {elapsed:.0f} s: "
                "the remaining cells run next time")
            break
        if data is None:
            t = time.perf_counter()
            data = load_data(cfg, options, data_dir, bundle)
            log(f"data ready in {time.perf_counter() - t:.1f} s: {data.source}, vocabulary {data.vocab_size}")
        t = time.perf_counter()
        run_dir = out / "runs" / key.replace("|", "_") if save_checkpoints else None
        try:
            rec = run_cell(cell_cfg, data, options, label, run_dir, save_checkpoints, ecp_backend)
        except Exception as e:  # noqa: BLE001 - report, keep going; the cell reruns next time
            import traceback

            log(f"[{i}/{len(cells)}] {label} seed {seed}: FAILED {type(e).__name__}: {e}\n{traceback.format_exc()}")
            store.failed.append(key)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        rec.update(key=key, config_hash=chash, **env)
        store.add(rec)
        longest = max(longest, time.perf_counter() - t)
        fin = rec["final"]
        what = f"test {fin['bits_per_byte']:.4f} bits/byte" if data.kind == "lm" else f"test accuracy {fin['accuracy']:.4f}"
        log(f"[{i}/{len(cells)}] {label} seed {seed}: {rec['steps']} steps in {rec['train_wall_s']:.1f} s "
            f"({rec['train_tokens_per_s'] or 0:,.0f} tokens/s), {what}")
    if cost_lengths and (time_budget_s is None or time.perf_counter() - t_start < time_budget_s):
        vocab = data.vocab_size if data is not None else _vocab_of(
            store, cfg, lambda: load_data(cfg, options, data_dir, bundle))
        tokens = cost_tokens or max(cost_lengths)
        chash = config_hash(dataclasses.replace(cfg, model="dense", seed=0), options, device.type)
        for name in dict.fromkeys(n for _, n, _ in arms):
            for N in cost_lengths:
                key = f"cost|{env['device_name']}|{name}|N{N}|T{tokens}|{chash}"
                if key in store:
                    continue
                try:
                    r = measure_cost(name, cfg, vocab, N, tokens, device, repeats=cost_repeats,
                                     ecp_backend=ecp_backend)
                except Exception as e:  # noqa: BLE001 - as for cells: report, keep going, retry next time
                    log(f"cost {name} N={N}: FAILED {type(e).__name__}: {e}")
                    store.failed.append(key)
                    continue
                store.add({"key": key, "kind": "cost", "model": name, "dataset": cfg.dataset, "config_hash": chash,
                           "tokens_per_call": tokens, **r, **env})
                log(f"cost {name:>24s} N={N:>6}: " + (r["error"] or f"{r['tokens_per_s']:,.0f} tokens/s, "
                    f"activations {r['activation_bytes'] / 2**20:,.1f} MiB"))
    if plots and len(store):
        for path in plot_study(store.records(), out):
            log(f"plot: {path}")
    return store


def _vocab_of(store: ResultStore, cfg: TrainConfig, load) -> int:
    """Vocabulary of earlier cells of this dataset (when every cell was skipped), else load the data."""
    for r in store.records("train"):
        if r["dataset"] == cfg.dataset and r["config"]["tokenizer"] == cfg.tokenizer:
            return r["vocab_size"]
    return load().vocab_size
