"""The comparison study: the six architectures trained and scored under one budget.

``python -m minecp compare --dataset pg19 --preset cpu-small --models ecp dense --seeds 0 1 --out results/x``
(or ``python -m minecp.compare ...``) trains every (model, seed) *cell* with

* the same data, tokenizer, width, depth, window N, optimizer, schedule and seed (the
  seed fixes the data order: every model of seed s sees exactly the same batches);
* the same **input** token budget: steps x batch x grad_accum x N tokens are read by
  every model. The PerceiverAR family turns only its M latents into training targets,
  so it trains on M / N of the target positions dense and ECP train on; each record
  says how many (``targets_per_window``, ``target_tokens``);

and evaluates every cell the same way:

* text: sliding windows over the same validation tokens (curves) and test tokens (final
  figure), stride min(N/2, M), and only positions >= N - M + 1 of each span, so every
  model scores exactly the same tokens with exactly the same windows; bits per byte
  (tokenizer independent), beside unigram / bigram baselines on the same tokens;
* sCIFAR-10: accuracy (chance = 10 %); copy task: accuracy on the copied half.

Cost is measured two ways: training tokens/s of each cell, and forward+backward
tokens/s and memory of each model at a few window lengths N (:func:`measure_cost`).
Memory: on CUDA ``torch.cuda.max_memory_allocated``; everywhere (the only figure on a
CPU) the bytes of the activations autograd saves for the backward pass
(:func:`activation_bytes`) — exact and deterministic, the part that grows with N; it
leaves out parameters, gradients, optimizer state and transient workspace.

Results **accumulate**: every cell appends one JSON line to ``<out>/records.jsonl``
keyed by (dataset, model, seed, config hash); a later invocation skips cells whose key
is already there (:class:`ResultStore`). Plots go next to it (:func:`plot_study`).

Offline machines without the ``datasets`` library (the GPU image) read a *bundle*:
tokenized splits + tokenizer exported here with ``--export-bundle DIR`` and loaded there
with ``--bundle DIR`` (numpy only).

Source of the architectures and the claim tested: Mahmood & Huang, arXiv 2412.06106.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models import MODEL_NAMES
from .presets import PRESETS, TrainConfig, get_preset

COMPARE_VERSION = 1  # part of every config hash: bump when the measurement changes
RECORDS_NAME = "records.jsonl"
SCIFAR_MODELS = ("ecp", "perceiver_ar", "dense")  # the paper's sCIFAR-10 comparison
#: fields of TrainConfig that do not change what a cell computes (left out of the hash)
_NOT_HASHED = ("model", "seed", "device", "log_every", "save_every")
#: options added after the first records were written, with their defaults: left out of the
#: hash at these values, so older records keep their keys
_LATER_OPTIONS = {"test_images": None}


# -- options that are not TrainConfig fields ----------------------------------------------------
@dataclass
class CompareOptions:
    """Data and evaluation knobs of a study (everything else is a :class:`TrainConfig`).

    Attributes:
        max_books: PG-19 only: train on the first ``max_books`` training books (None = all).
        eval_books: PG-19 only: the first ``eval_books`` validation / test books.
        val_tokens: tokens of validation text scored at each curve point (in ``eval_spans``
            evenly spaced spans); None = the whole split.
        test_tokens: tokens of test text scored at the end; None = ``eval_max_tokens`` of
            the config (None there too = the whole split).
        eval_spans: number of evenly spaced spans a capped evaluation reads.
        eval_at_start: also evaluate before the first step (the curves start at step 0).
        scifar_config: "plain_text" (50k lossy JPEG) or "lossless_subset" (4k/1k exact).
        max_images: cap on the sCIFAR-10 images loaded per split (None = all).
        scifar_size: side of the gray image fed to the model: 32 (1,024 pixels) or 16
            (2x2 mean-pooled, 256 pixels, 4x cheaper; say so when you use it).
        val_images: validation images scored at each curve point.
        test_images: test images scored at the end (None = all loaded).
        copy_eval_batches: batches of the copy task scored at each curve point.
        copy_reach: copy task only: replace the ECP arm by two ECP arms whose receptive
            field is shorter / long enough for the copy distance (:func:`copy_reach_arms`).
    """

    max_books: int | None = None
    eval_books: int | None = None
    val_tokens: int | None = 16_384
    test_tokens: int | None = None
    eval_spans: int = 4
    eval_at_start: bool = True
    scifar_config: str = "plain_text"
    max_images: int | None = None
    scifar_size: int = 32
    val_images: int = 1000
    test_images: int | None = None
    copy_eval_batches: int = 8
    copy_reach: bool = False

    def __post_init__(self) -> None:
        if self.scifar_config not in ("plain_text", "lossless_subset"):
            raise ValueError(f"scifar_config must be 'plain_text' or 'lossless_subset', got {self.scifar_config!r}")
        if self.scifar_size not in (32, 16):
            raise ValueError(f"scifar_size must be 32 or 16, got {self.scifar_size!r}")
        for name in ("max_books", "eval_books", "val_tokens", "test_tokens", "max_images", "test_images"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {v!r}")
        for name in ("eval_spans", "val_images", "copy_eval_batches"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")


def config_hash(cfg: TrainConfig, options: CompareOptions, device_type: str) -> str:
    """10-hex-digit identity of what a cell computes, model and seed excluded.

    Hashes the :class:`TrainConfig` (without model, seed, device and logging fields), the
    :class:`CompareOptions`, the device type ("cpu"/"cuda": precision and kernels differ)
    and :data:`COMPARE_VERSION`. Two cells with equal hashes ran the same budget.
    """
    c = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_HASHED}
    opt = {k: v for k, v in dataclasses.asdict(options).items()
           if not (k in _LATER_OPTIONS and v == _LATER_OPTIONS[k])}
    blob = json.dumps({"cfg": c, "opt": opt, "device": device_type,
                       "v": COMPARE_VERSION}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def cell_key(dataset: str, model: str, seed: int, chash: str) -> str:
    """The record key ``"<dataset>|<model>|seed<seed>|<hash>"``."""
    return f"{dataset}|{model}|seed{seed}|{chash}"


# -- the append-only record store ----------------------------------------------------------------
class ResultStore:
    """Append-only JSON-lines file of records, each with a unique ``"key"``.

    A record is never rewritten: :meth:`add` appends a line (flushed and fsynced), so an
    interrupted run keeps every finished cell, and results from several sessions (or
    machines: concatenate the files) accumulate. A torn last line is ignored on reading.

    Args:
        path: the ``.jsonl`` file (created with its folder on the first :meth:`add`).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._records: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut off by a crash: that cell simply runs again
                if isinstance(rec, dict) and "key" in rec:
                    self._records.setdefault(rec["key"], rec)  # first one wins

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def records(self, kind: str | None = None) -> list[dict]:
        """All records (of one ``kind``: "train" or "cost"), in file order."""
        return [r for r in self._records.values() if kind is None or r.get("kind") == kind]

    def add(self, record: dict) -> bool:
        """Append ``record`` unless its key exists; returns True if it was written."""
        if record["key"] in self._records:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._records[record["key"]] = record
        return True


# -- data -----------------------------------------------------------------------------------------
@dataclass
class StudyData:
    """What every cell of a study shares: the task and the evaluation data.

    ``kind`` is "lm", "copy" or "classify". For "lm": ``tokenizer``, ``val_ids`` /
    ``test_ids`` (int64 tensors [L]) and ``baselines`` (name -> count model); for
    "classify": ``val`` / ``test`` = (tokens uint8 [n, N], labels int64 [n]).
    """

    kind: str
    task: object
    vocab_size: int
    seq_len: int
    tokenizer: object = None
    val_ids: torch.Tensor | None = None
    test_ids: torch.Tensor | None = None
    baselines: dict | None = None
    val: tuple | None = None
    test: tuple | None = None
    source: str = ""


def downsample_gray(tokens: np.ndarray, size: int) -> np.ndarray:
    """Mean-pool gray 32x32 pixel sequences to ``size`` x ``size`` (raster order).

    Args:
        tokens: uint8 [n, 1024] gray levels (:func:`minecp.data.image_tokens`, mode "gray").
        size: 32 (returned unchanged) or 16 (2x2 blocks averaged, rounded half up).

    Returns:
        uint8 [n, size * size].
    """
    if size == 32:
        return np.asarray(tokens)
    if size != 16:
        raise ValueError(f"size must be 32 or 16, got {size}")
    x = np.asarray(tokens, dtype=np.int32).reshape(-1, 16, 2, 16, 2).sum(axis=(2, 4))
    return ((x + 2) // 4).astype(np.uint8).reshape(len(x), 256)


def _text_split(dataset, split, tokenizer, data_dir, books):
    """One split as an object with ``ids``, ``tokenizer`` and ``note`` (a caveat of the source or None)."""
    from .data import load_corpus
    from .train import load_lm_ids

    if books is not None and dataset != "pg19":
        raise ValueError(f"max_books / eval_books apply to pg19 only, not to {dataset!r}")
    if dataset.startswith("text:"):  # no splits in a file: minecp.train's 90 % / 10 % convention
        ids, tok = load_lm_ids(dataset, split, tokenizer, data_dir)
        return types.SimpleNamespace(ids=ids, tokenizer=tok, note=None)
    return load_corpus(dataset, split, tokenizer=tokenizer, data_dir=data_dir, max_books=books)


def _scifar_arrays(options: CompareOptions, data_dir):
    """((train tokens, labels), (val ...), (test ...)): gray, downsampled if asked.

    "plain_text": the last 5,000 train images are validation (as :func:`minecp.train.load_scifar`);
    "lossless_subset" (4,000 train): the last 500.
    """
    from .data import image_tokens, load_scifar10

    out = {}
    for split in ("train", "test"):
        px, lab = load_scifar10(split, data_dir=data_dir, config=options.scifar_config,
                                max_images=options.max_images)
        out[split] = (downsample_gray(image_tokens(px, mode="gray"), options.scifar_size), np.asarray(lab))
    tokens, labels = out["train"]
    held = 5000 if options.scifar_config == "plain_text" else 500
    held = min(held, len(labels) // 5)  # a capped load keeps 80 % for training
    return (tokens[:-held], labels[:-held]), (tokens[-held:], labels[-held:]), out["test"]


def export_bundle(cfg: TrainConfig, options: CompareOptions, dest, data_dir=None) -> Path:
    """Write the study's data as plain numpy files that :func:`load_data` reads back.

    Text: ``meta.json``, ``tokenizer.json`` (:meth:`Tokenizer.to_dict`), ``train.npy``,
    ``validation.npy``, ``test.npy`` (token ids). sCIFAR-10: ``scifar.npz`` (compressed:
    train/val/test tokens uint8 [n, N] and labels). The copy task needs no data.

    Raises:
        ValueError: dataset "copy" (nothing to export); see :func:`load_data`.
    """
    if cfg.dataset == "copy":
        raise ValueError("the copy task is generated from a seed: there is no data to export")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": cfg.dataset, "tokenizer_spec": cfg.tokenizer, "vocab_size_asked": cfg.vocab_size,
            "options": dataclasses.asdict(options), "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    if cfg.dataset == "scifar10":
        (a, b), (c, d), (e, f) = _scifar_arrays(options, data_dir)
        np.savez_compressed(dest / "scifar.npz", train_x=a, train_y=b, val_x=c, val_y=d, test_x=e, test_y=f)
        meta.update(kind="classify", seq_len=int(a.shape[1]))
    else:
        from .train import tokenizer_spec

        train = _text_split(cfg.dataset, "train", tokenizer_spec(cfg), data_dir, options.max_books)
        tok = train.tokenizer
        (dest / "tokenizer.json").write_text(json.dumps(tok.to_dict()))
        for split in ("train", "validation", "test"):
            ids = train.ids if split == "train" else _text_split(
                cfg.dataset, split, tok, data_dir, options.eval_books).ids
            np.save(dest / f"{split}.npy", np.asarray(ids))
            meta[f"{split}_tokens"] = int(len(ids))
        meta.update(kind="lm", vocab_size=tok.vocab_size, tokenizer=tok.name, fingerprint=tok.fingerprint,
                    train_note=train.note)
    (dest / "meta.json").write_text(json.dumps(meta, indent=1))
    return dest


def load_data(cfg: TrainConfig, options: CompareOptions, data_dir=None, bundle=None) -> StudyData:
    """Load (tokenizing on first use) everything the cells of a study share.

    Args:
        cfg: the study's config (``dataset``, ``tokenizer``, ``vocab_size``, ``seq_len``).
        options: :class:`CompareOptions`.
        data_dir: hub-layout data root (None: ``$MINECP_DATA_DIR``, else the Hub).
        bundle: a folder written by :func:`export_bundle` (then ``data_dir`` is unused
            and the ``datasets`` library is not needed).

    Returns:
        :class:`StudyData`.

    Raises:
        ValueError: unknown dataset, a bundle of another dataset, a window that does not
            fit the data; FileNotFoundError: data missing (see :mod:`minecp.data`).
    """
    from .baselines import BigramBaseline, UnigramBaseline
    from .classify import ClassifyTask
    from .train import CopyTask, LMTask, tokenizer_spec

    if cfg.dataset == "copy":
        return StudyData("copy", CopyTask(cfg.seq_len, cfg.vocab_size), cfg.vocab_size, cfg.seq_len,
                         source="generated copy task")
    meta = None
    if bundle is not None:
        meta = json.loads((Path(bundle) / "meta.json").read_text())
        if meta["dataset"] != cfg.dataset:
            raise ValueError(f"bundle {str(bundle)!r} holds {meta['dataset']!r}, the study asks for --dataset "
                             f"{cfg.dataset!r}")
    if cfg.dataset == "scifar10":
        if meta is not None:
            z = np.load(Path(bundle) / "scifar.npz")
            train, val, test = [(z[f"{s}_x"], z[f"{s}_y"]) for s in ("train", "val", "test")]
        else:
            train, val, test = _scifar_arrays(options, data_dir)
        if train[0].shape[1] != cfg.seq_len:
            raise ValueError(f"sCIFAR-10 sequences here are {train[0].shape[1]} pixels long: --seq-len must be "
                             f"{train[0].shape[1]}, got {cfg.seq_len}")
        return StudyData("classify", ClassifyTask(train, val, 10), 256, cfg.seq_len, val=val, test=test,
                         source=f"sCIFAR-10 {options.scifar_config}, gray {options.scifar_size}x{options.scifar_size}")
    if meta is not None:
        from .tokenizer import tokenizer_from_dict

        tok = tokenizer_from_dict(json.loads((Path(bundle) / "tokenizer.json").read_text()))
        if cfg.tokenizer != meta["tokenizer_spec"] or (cfg.tokenizer == "bpe" and cfg.vocab_size != tok.vocab_size):
            raise ValueError(f"bundle {str(bundle)!r} was tokenized with {meta['tokenizer']!r} ({tok.vocab_size} ids); "
                             f"the study asks for --tokenizer {cfg.tokenizer} --vocab-size {cfg.vocab_size}")
        train_ids, val_ids, test_ids = (np.load(Path(bundle) / f"{s}.npy", mmap_mode="r")
                                        for s in ("train", "validation", "test"))
        source = f"bundle {bundle}" + (f" (train: {meta['train_note']})" if meta.get("train_note") else "")
    else:
        train = _text_split(cfg.dataset, "train", tokenizer_spec(cfg), data_dir, options.max_books)
        tok, train_ids = train.tokenizer, train.ids
        val_ids = _text_split(cfg.dataset, "validation", tok, data_dir, options.eval_books).ids
        test_ids = _text_split(cfg.dataset, "test", tok, data_dir, options.eval_books).ids
        source = cfg.dataset + (f" (first {options.max_books} train books)" if options.max_books else "") + \
            (f" (train: {train.note})" if train.note else "")
    for split, ids in (("train", train_ids), ("validation", val_ids), ("test", test_ids)):
        if len(ids) < cfg.seq_len + 1:
            raise ValueError(f"the {split} split of {cfg.dataset!r} has {len(ids)} tokens, fewer than one window "
                             f"(--seq-len {cfg.seq_len} + 1)")
    as_long = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))  # noqa: E731
    baselines = {"unigram": UnigramBaseline(train_ids, tok.vocab_size),
                 "bigram (add-0.05)": BigramBaseline(train_ids, tok.vocab_size, k=0.05)}
    return StudyData("lm", LMTask(train_ids, val_ids, cfg.seq_len), tok.vocab_size, cfg.seq_len, tokenizer=tok,
                     val_ids=as_long(val_ids), test_ids=as_long(test_ids), baselines=baselines, source=source)


# -- evaluation -------------------------------------------------------------------------------
def scored_from(cfg: TrainConfig, vocab_size: int) -> tuple[int, int]:
    """(first scored position in each span, stride) shared by every model of a study.

    A PerceiverAR-family model cannot score the first C = N - M positions of a span, and
    its windows must step by at most M; using stride min(N/2, M) and positions >= C + 1
    for *every* model makes them score the same tokens with the same windows.
    """
    mc = cfg.model_config(vocab_size)
    return mc.seq_len - mc.latent_len + 1, max(1, min(mc.seq_len // 2, mc.latent_len))


@torch.no_grad()
def score_text(model, ids: torch.Tensor, data: StudyData, cfg: TrainConfig, max_tokens: int | None,
               num_spans: int = 4) -> dict:
    """Bits per byte of ``model`` on ``ids`` under the study's shared scoring rule.

    Args:
        model: a minecp language model (any device).
        ids: int64 tensor [L] of the split's tokens.
        data: the study's :class:`StudyData` (tokenizer and baselines).
        cfg: the study's config (window and latents decide the rule, :func:`scored_from`).
        max_tokens, num_spans: :func:`minecp.evaluate.evaluation_spans` (None = all of ``ids``).

    Returns:
        :func:`minecp.evaluate.lm_metrics` dict (``bits_per_byte``, ``nll_per_token`` in
        nats, ``tokens``, ``bytes``, ...) plus ``"baselines"``: {name: metrics} on the same
        tokens. Source: the sliding-window rule of :mod:`minecp.evaluate`.
    """
    from .evaluate import evaluation_spans, lm_metrics, sliding_window_token_nll, text_size, token_byte_lengths

    first, stride = scored_from(cfg, data.vocab_size)
    byte_lengths = token_byte_lengths(data.tokenizer)
    nll = count = n_bytes = n_words = 0
    base = {k: 0.0 for k in data.baselines}
    for a, b in evaluation_spans(len(ids), max_tokens, num_spans):
        piece = ids[a:b]
        pos, tok_nll = sliding_window_token_nll(model, piece, stride=stride, batch_size=16)
        keep = pos >= first
        pos, tok_nll = pos[keep], tok_nll[keep]
        nll, count = nll + float(tok_nll.sum()), count + len(pos)
        nb, nw = text_size(data.tokenizer, piece[pos], byte_lengths)
        n_bytes, n_words = n_bytes + nb, n_words + nw
        for k, bl in data.baselines.items():
            base[k] += bl.nll(piece, pos)
    out = lm_metrics(nll, count, n_bytes, n_words)
    out["baselines"] = {k: round(lm_metrics(v, count, n_bytes)["bits_per_byte"], 5) for k, v in base.items()}
    return out


@torch.no_grad()
def _accuracy(model, tokens, labels, device, batch_size=64, limit=None) -> dict:
    n = len(labels) if limit is None else min(limit, len(labels))
    correct, loss = 0, 0.0
    for i in range(0, n, batch_size):
        x = torch.from_numpy(np.array(tokens[i:min(n, i + batch_size)], dtype=np.int64)).to(device)
        y = torch.from_numpy(np.array(labels[i:min(n, i + batch_size)], dtype=np.int64)).to(device)
        logits = model(x).float()
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    return {"accuracy": correct / n, "loss": loss / n, "examples": n}


def evaluate_cell(model, data: StudyData, cfg: TrainConfig, options: CompareOptions, split: str) -> dict:
    """The study's figure of merit for one model on ``split`` ("val" or "test").

    Returns:
        text: :func:`score_text` (``bits_per_byte``); classify: ``accuracy`` (fraction),
        ``loss`` (nats per example); copy: ``accuracy`` on the copied half and ``loss``
        (nats per copied token) on ``copy_eval_batches`` batches from a fixed seed
        (1 = validation, 2 = test; training data come from the cell's seed).
    """
    from .train import autocast

    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        with autocast(device, cfg.precision):
            if data.kind == "lm":
                ids = data.val_ids if split == "val" else data.test_ids
                cap = options.val_tokens if split == "val" else (options.test_tokens or cfg.eval_max_tokens)
                return score_text(model, ids, data, cfg, cap, options.eval_spans)
            if data.kind == "classify":
                tokens, labels = data.val if split == "val" else data.test
                return _accuracy(model, tokens, labels, device,
                                 limit=options.val_images if split == "val" else options.test_images)
            gen = torch.Generator().manual_seed(10_000 + (1 if split == "val" else 2))
            correct = total = 0
            loss = 0.0
            with torch.no_grad():
                for _ in range(options.copy_eval_batches):
                    window, mask = (t.to(device) for t in data.task.batch("val", gen, cfg.batch_size))
                    logits, targets = data.task._scored(model, window, mask)
                    loss += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
                    correct += int((logits.argmax(-1) == targets).sum())
                    total += targets.numel()
            return {"accuracy": correct / total, "loss": loss / total, "tokens": total}
    finally:
        model.train(was)


def headline(metrics: dict, kind: str) -> float:
    """The one number of a cell: bits per byte (text) or accuracy (copy, classify)."""
    return metrics["bits_per_byte"] if kind == "lm" else metrics["accuracy"]


# -- cost: memory and speed ---------------------------------------------------------------------
def activation_bytes(model, loss_fn, *batch) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``loss_fn(model, *batch)``.

    Counted with ``torch.autograd.graph.saved_tensors_hooks`` during one forward (no
    backward is run), each storage once, parameters excluded. This is the activation
    memory of a training step — the part that grows with the window (O(N^2) for scores a
    dense attention keeps, O(N S) for ECP's band) — measured exactly on any device.
    It leaves out parameters, gradients, optimizer state and kernels' workspace.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, *batch)
    del loss
    return int(sum(seen.values()))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cost_model_config(cfg: TrainConfig, vocab_size: int, seq_len: int):
    """The study's model at another window length N, for :func:`measure_cost`.

    Kept fixed as N grows: ECP's segment length S, the M latents, the segmented model's
    context-segment length (the knobs whose cost claims are O(N S), O(M N), O(C^2 / s));
    the compressed model keeps the authors' default C' = N / 4.

    Raises:
        ValueError: ``seq_len`` not a multiple of S or of the context-segment length, or
            not longer than M.
    """
    base = cfg.model_config(vocab_size)
    S, M = base.segment_len, base.latent_len
    seg = base.context_len // base.context_segments
    if seq_len % S or seq_len <= M or (seq_len - M) % seg:
        raise ValueError(f"window length {seq_len} must be a multiple of S={S}, longer than M={M}, and leave a "
                         f"context (N - M) that is a multiple of {seg}; choose lengths like {cfg.seq_len} x 2^k")
    return dataclasses.replace(base, seq_len=seq_len, num_segments=seq_len // S, latent_len=M,
                               context_segments=(seq_len - M) // seg, compressed_len=None)


def measure_cost(model_name: str, cfg: TrainConfig, vocab_size: int, seq_len: int, tokens: int,
                 device: torch.device, repeats: int = 3, warmup: int = 1, ecp_backend: str = "auto") -> dict:
    """Forward+backward speed and memory of one architecture at window length ``seq_len``.

    A batch of B = max(1, tokens // N) random windows; ``warmup`` untimed calls, then the
    median of ``repeats`` timed forward+backward calls of the LM loss (no optimizer step)
    under the study's precision; ECP uses ``ecp_backend``.

    Returns:
        {"seq_len", "batch", "fwd_bwd_s" (median seconds per call), "tokens_per_s" (input
        tokens), "targets_per_s" (scored positions), "activation_bytes"
        (:func:`activation_bytes`), "cuda_peak_bytes" (``torch.cuda.max_memory_allocated``
        during the timed calls; None on CPU), "error" (None, or "out of memory")}.
    """
    from .models import build_model, lm_loss
    from .train import autocast

    mc = cost_model_config(cfg, vocab_size, seq_len)
    B = max(1, tokens // seq_len)
    out = {"seq_len": seq_len, "batch": B, "fwd_bwd_s": None, "tokens_per_s": None, "targets_per_s": None,
           "activation_bytes": None, "cuda_peak_bytes": None, "error": None}
    torch.manual_seed(0)
    model = build_model(model_name, mc, **({"attention_backend": ecp_backend} if model_name == "ecp" else {}))
    model = model.to(device)
    window = torch.randint(0, vocab_size, (B, seq_len + 1), generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with autocast(device, cfg.precision):
            out["activation_bytes"] = activation_bytes(model, lm_loss, window)
        times = []
        for i in range(warmup + repeats):
            if device.type == "cuda" and i == warmup:
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t0 = time.perf_counter()
            with autocast(device, cfg.precision):
                loss = lm_loss(model, window)
            loss.backward()
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            out["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
        med = statistics.median(times)
        out.update(fwd_bwd_s=med, tokens_per_s=B * seq_len / med, targets_per_s=B * model.num_predicted / med)
    except torch.OutOfMemoryError:
        out["error"] = "out of memory"
    finally:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


# -- arms: which models (and variants) a study trains -----------------------------------------
def copy_reachable_fraction(seq_len: int, segment_len: int, n_layers: int) -> float:
    """Fraction of copy-task targets an ECP model can see the source of.

    Copy task (:class:`minecp.train.CopyTask`): input position j >= N/2 must predict the
    token that sits at input position j - N/2 + 1. After L layers ECP position j sees back
    to the start of segment floor(j / S) - L (docs/ARCHITECTURES.md), i.e. at least L*S
    and at most (L+1)*S - 1 positions: a copy at distance N/2 - 1 is always visible when
    L*S >= N/2 - 1 and never when (L+1)*S - 1 < N/2 - 1.

    Returns:
        fraction in [0, 1] of the N/2 copy positions whose source is in the receptive field.
    """
    half = seq_len // 2
    j = np.arange(half, seq_len)
    src = j - half + 1
    return float(np.mean(src >= np.maximum(0, (j // segment_len - n_layers) * segment_len)))


def copy_reach_arms(cfg: TrainConfig) -> list[tuple[str, dict]]:
    """Two ECP variants for the copy task: receptive field shorter and longer than N/2.

    Picks, among segment counts s dividing N, the largest s whose every copy source is
    visible (:func:`copy_reachable_fraction` = 1) and the smallest s none of whose
    sources is (fraction = 0).

    Returns:
        [(label, overrides)], e.g. [("ecp S=16 reach<copy", {"num_segments": 8}), ...].

    Raises:
        ValueError: no such pair of segment counts for this N and depth.
    """
    N, L = cfg.seq_len, cfg.n_layers
    options = [s for s in range(1, N + 1) if N % s == 0]
    full = [s for s in options if copy_reachable_fraction(N, N // s, L) == 1.0]
    none = [s for s in options if copy_reachable_fraction(N, N // s, L) == 0.0]
    if not full or not none:
        raise ValueError(f"--copy-reach needs a segment count whose receptive field misses the copy distance "
                         f"{N // 2} and one that covers it, at N={N} and {L} layers; use a longer --seq-len or "
                         "fewer --n-layers")
    s_long, s_short = max(full), min(none)
    return [(f"ecp S={N // s_short} ((L+1)S={(L + 1) * (N // s_short)}<copy {N // 2})", {"num_segments": s_short}),
            (f"ecp S={N // s_long} (LS={L * (N // s_long)}>=copy {N // 2})", {"num_segments": s_long})]


def study_arms(models, cfg: TrainConfig, options: CompareOptions) -> list[tuple[str, str, dict]]:
    """[(label, model name, TrainConfig overrides)] of a study, in run order."""
    arms = []
    for m in models:
        if m == "ecp" and cfg.dataset == "copy" and options.copy_reach:
            arms += [(label, "ecp", o) for label, o in copy_reach_arms(cfg)]
        else:
            arms.append((m, m, {}))
    return arms


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
    from .train import Trainer, autocast

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
        _sync(dev)
        t = time.perf_counter()
        window_losses.append(trainer.train_step())
        _sync(dev)
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
            "host_cpus": os.cpu_count(), "created": time.strftime("%Y-%m-%d %H:%M:%S")}


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
    from .train import resolve_device

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


# -- tables and plots ---------------------------------------------------------------------------
def summary(records, dataset: str | None = None) -> list[dict]:
    """One row per (dataset, config hash, arm): mean and every seed's final figure.

    Returns:
        [{"dataset", "arm", "model", "config_hash", "seeds", "final" (mean), "finals"
        (per seed, seed order), "baselines" (text: bits per byte of the count models on the
        same tokens), "params", "input_tokens", "target_tokens", "train_tokens_per_s"
        (mean), "activation_MiB", "cuda_peak_MiB", "train_wall_s" (mean)}], sorted by dataset
        then best final figure first.
    """
    groups: dict[tuple, list] = {}
    for r in records:
        if r.get("kind") == "train" and (dataset is None or r["dataset"] == dataset):
            groups.setdefault((r["dataset"], r["config_hash"], r["arm"]), []).append(r)
    rows = []
    for (ds, chash, arm), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        finals = [headline(r["final"], r["task"]) for r in rs]
        peak = rs[0]["memory"]["cuda_peak_bytes"]
        rows.append({"dataset": ds, "arm": arm, "model": rs[0]["model"], "task": rs[0]["task"], "config_hash": chash,
                     "device": rs[0].get("device_name", "?"), "seeds": [r["seed"] for r in rs],
                     "final": statistics.fmean(finals), "finals": finals, "baselines": rs[0]["final"].get("baselines"),
                     "params": rs[0]["params"], "input_tokens": rs[0]["input_tokens"],
                     "target_tokens": rs[0]["target_tokens"],
                     "train_tokens_per_s": statistics.fmean(r["train_tokens_per_s"] or 0 for r in rs),
                     "activation_MiB": rs[0]["memory"]["activation_bytes"] / 2**20,
                     "cuda_peak_MiB": None if peak is None else peak / 2**20,
                     "train_wall_s": statistics.fmean(r["train_wall_s"] for r in rs)})
    sign = lambda row: row["final"] if row["task"] == "lm" else -row["final"]  # noqa: E731
    return sorted(rows, key=lambda row: (row["dataset"], row["config_hash"], sign(row)))


def markdown_table(rows: list[dict]) -> str:
    """The :func:`summary` rows as a markdown table (figures rounded for reading)."""
    head = ("| arm | seeds | final (mean) | per seed | params | input tokens | target tokens | "
            "train tokens/s | activations MiB | CUDA peak MiB |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        fmt = "{:.4f}" if r["task"] == "lm" else "{:.3f}"
        peak = "-" if r["cuda_peak_MiB"] is None else f"{r['cuda_peak_MiB']:,.0f}"
        lines.append(f"| {r['arm']} | {','.join(map(str, r['seeds']))} | {fmt.format(r['final'])} | "
                     f"{' / '.join(fmt.format(f) for f in r['finals'])} | {r['params']:,} | {r['input_tokens']:,} | "
                     f"{r['target_tokens']:,} | {r['train_tokens_per_s']:,.0f} | {r['activation_MiB']:.1f} | "
                     f"{peak} |")
    return "\n".join(lines)


def cost_table(records) -> str:
    """Markdown table of the cost sweep: tokens/s and memory per model and N."""
    rows = sorted((r for r in records if r.get("kind") == "cost"),
                  key=lambda r: (r["device_name"], MODEL_NAMES.index(r["model"]), r["seq_len"]))
    lines = ["| device | model | N | batch | fwd+bwd s | tokens/s | targets/s | activations MiB | CUDA peak MiB |",
             "|" + "---|" * 9]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['device_name']} | {r['model']} | {r['seq_len']} | {r['batch']} | {r['error']} |||||")
            continue
        peak = "-" if r["cuda_peak_bytes"] is None else f"{r['cuda_peak_bytes'] / 2**20:,.0f}"
        lines.append(f"| {r['device_name']} | {r['model']} | {r['seq_len']} | {r['batch']} | {r['fwd_bwd_s']:.4f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['targets_per_s']:,.0f} | "
                     f"{r['activation_bytes'] / 2**20:,.1f} | {peak} |")
    return "\n".join(lines)


COLORS = {"dense": "#444444", "perceiver_ar": "#1f77b4", "enhanced_perceiver_ar": "#17becf",
          "compressed_perceiver_ar": "#9467bd", "segmented_perceiver_ar": "#2ca02c", "ecp": "#d62728"}


def plot_validation(records, x: str = "input_tokens", ax=None, dataset: str | None = None):
    """Validation curves of training records, one line per (arm, seed).

    Args:
        records: records of :class:`ResultStore` (kind "train"; others are ignored).
        x: "input_tokens" (tokens read so far), "target_tokens" (positions trained on so
            far) or "train_wall_s" (seconds of training, evaluation excluded).
        ax: matplotlib Axes to draw on (default a new figure).
        dataset: only this dataset's records (default: the first record's).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    from . import viz

    recs = [r for r in records if r.get("kind") == "train"]
    if not recs:
        raise ValueError("no training records to plot")
    dataset = dataset or recs[0]["dataset"]
    recs = [r for r in recs if r["dataset"] == dataset]
    created = ax is None
    fig, ax = viz._new_axes(ax, (5.2, 3.4))
    styles, extra = ["-", "--", ":", "-."], ["#ff7f0e", "#8c564b", "#e377c2", "#bcbd22"]
    variants = list(dict.fromkeys(r["arm"] for r in recs if r["arm"] != r["model"]))  # e.g. two ECP arms
    kind = recs[0]["task"]
    for r in recs:
        color = COLORS.get(r["model"]) if r["arm"] == r["model"] else extra[variants.index(r["arm"]) % len(extra)]
        ax.plot([p[x] for p in r["curve"]], [p["val"] for p in r["curve"]], styles[r["seed"] % len(styles)],
                marker=".", ms=3, color=color, label=f"{r['arm']} s{r['seed']}")
    unit = {"input_tokens": "input tokens seen", "target_tokens": "target positions trained on",
            "train_wall_s": "training wall time (s)"}
    ax.set_xlabel(unit.get(x, x))
    ax.set_ylabel({"lm": "validation bits per byte", "copy": "validation copy accuracy",
                   "classify": "validation accuracy"}[kind])
    if kind == "lm":
        finals = [p["val"] for r in recs for p in r["curve"] if p["step"] > 0] or [1.0]
        ax.set_ylim(min(finals) - 0.05, max(finals) + 0.3)  # step 0 (log2 V / bytes) would flatten the rest
    ax.set_title(f"{dataset}: {recs[0].get('device_name', '')}", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return fig if created else ax


def plot_cost(records, metric: str = "tokens_per_s", ax=None, device_name: str | None = None):
    """Cost sweep: ``metric`` against window length N, log-log, one line per model.

    Args:
        metric: "tokens_per_s", "targets_per_s", "activation_bytes" (plotted in MiB) or
            "cuda_peak_bytes" (MiB).
        device_name: only records of this device (default: the first cost record's).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    from . import viz

    recs = [r for r in records if r.get("kind") == "cost" and not r["error"] and r.get(metric) is not None]
    if not recs:
        raise ValueError(f"no cost records with {metric!r} to plot")
    device_name = device_name or recs[0]["device_name"]
    recs = [r for r in recs if r["device_name"] == device_name]
    scale = 2**20 if metric.endswith("bytes") else 1
    series, lengths = {}, sorted({r["seq_len"] for r in recs})
    for name in MODEL_NAMES:
        pts = {r["seq_len"]: r[metric] / scale for r in recs if r["model"] == name}
        if pts:
            series[name] = [pts.get(n, float("nan")) for n in lengths]
    label = {"tokens_per_s": "forward+backward input tokens / s", "targets_per_s": "trained positions / s",
             "activation_bytes": "saved activations (MiB)", "cuda_peak_bytes": "CUDA peak memory (MiB)"}
    out = viz.plot_scaling(lengths, series, ax=ax, ylabel=label.get(metric, metric),
                           title=f"{device_name}, {recs[0]['tokens_per_call']:,} tokens per call")
    a = out if ax is not None else out.axes[0]
    a.set_xticks(lengths, [str(n) for n in lengths])
    a.minorticks_off()
    for line in a.get_lines():
        line.set_color(COLORS.get(line.get_label(), line.get_color()))
    a.legend(fontsize=7)
    return out


def plot_study(records, out) -> list[Path]:
    """Write the study's figures into ``out``; returns the written paths.

    Per dataset: ``<dataset>_val_vs_tokens.png``, ``<dataset>_val_vs_time.png``; per
    device of the cost sweep: ``cost_tokens_per_s.png`` and ``cost_memory.png``
    (CUDA peak where measured, else saved activations).
    """
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in dict.fromkeys(r["dataset"] for r in records if r.get("kind") == "train"):
        for x, suffix in (("input_tokens", "tokens"), ("train_wall_s", "time")):
            fig = plot_validation(records, x=x, dataset=ds)
            p = out / f"{ds.replace(':', '_').replace('/', '_')}_val_vs_{suffix}.png"
            fig.savefig(p, dpi=80, bbox_inches="tight")
            plt.close(fig)
            paths.append(p)
    costs = [r for r in records if r.get("kind") == "cost" and not r["error"]]
    if costs:
        mem = "cuda_peak_bytes" if any(r["cuda_peak_bytes"] for r in costs) else "activation_bytes"
        for metric, name in (("tokens_per_s", "cost_tokens_per_s.png"), (mem, "cost_memory.png")):
            fig = plot_cost(records, metric)
            fig.savefig(out / name, dpi=80, bbox_inches="tight")
            plt.close(fig)
            paths.append(out / name)
    return paths


# -- long documents: loss against position -------------------------------------------------------
@torch.no_grad()
def loss_by_position(model, ids: torch.Tensor, num_windows: int, batch_size: int = 16) -> torch.Tensor:
    """Mean next-token NLL (nats) at each predicted position of a window.

    Reads ``num_windows`` windows of N + 1 tokens at evenly spaced offsets of ``ids`` and
    averages the per-position cross-entropy over them: position j has j tokens of left
    context, so the curve shows how much a model gains from longer context (and where a
    receptive field stops helping).

    Args:
        model: a minecp language model; ids: int64 tensor [L], L >= N + 1.
        num_windows: windows averaged (>= 1).

    Returns:
        float64 tensor [T] (T = ``model.num_predicted``): entry j is the loss of the
        prediction made at window position N - T + j.

    Raises:
        ValueError: ``ids`` shorter than one window, ``num_windows`` < 1.
    """
    N = model.config.seq_len
    if len(ids) < N + 1 or num_windows < 1:
        raise ValueError(f"need len(ids) >= seq_len + 1 = {N + 1} and num_windows >= 1, got {len(ids)}, {num_windows}")
    device = next(model.parameters()).device
    starts = np.linspace(0, len(ids) - N - 1, num_windows).astype(np.int64)
    total = None
    was = model.training
    model.eval()
    for i in range(0, len(starts), batch_size):
        w = torch.stack([ids[s:s + N + 1] for s in starts[i:i + batch_size]]).long().to(device)
        logits = model(w[:, :-1]).double()
        tgt = w[:, 1:][:, -logits.shape[1]:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").sum(0)
        total = nll if total is None else total + nll
    model.train(was)
    return (total / len(starts)).cpu()


def ecp_reach(segment_len: int, layers: int) -> tuple[int, int]:
    """(always, at most) tokens of left context an ECP position sees after ``layers`` layers.

    Position i sees back to the start of segment floor(i/S) - L: at least L*S tokens
    before it (when i starts a segment) and at most (L+1)*S - 1 (docs/ARCHITECTURES.md).
    """
    return layers * segment_len, (layers + 1) * segment_len - 1


# -- command line -------------------------------------------------------------------------------
#: options that decide the data: a bundle records them at export
_DATA_OPTIONS = ("max_books", "eval_books", "scifar_config", "max_images", "scifar_size")
#: ``--dry-run``: a model and budget that run in seconds on a CPU (checks code paths, not
#: results). The window (seq_len, num_segments) stays as given; the rest is forced.
TINY = dict(d_model=16, n_heads=2, n_layers=2, steps=3, batch_size=2, warmup_steps=1, eval_every=2, eval_batches=1)
TINY_WINDOW = dict(seq_len=32, num_segments=4)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``compare`` options (plus every TrainConfig field, as in ``minecp train``)."""
    from .cli import add_config_options

    p.add_argument("--preset", choices=list(PRESETS), default=None, help="named configuration to start from")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help=f"architectures (default: all six; sCIFAR-10: {' '.join(SCIFAR_MODELS)}); "
                        f"allowed: {' '.join(MODEL_NAMES)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="SEED", help="seeds (default 0)")
    p.add_argument("--out", default=None, help="results folder (default results/<dataset>-<preset>)")
    p.add_argument("--data-dir", default=None, help="hub-layout data root (default $MINECP_DATA_DIR)")
    p.add_argument("--bundle", default=None, help="read the data from a folder made by --export-bundle")
    p.add_argument("--export-bundle", default=None, metavar="DIR",
                   help="write the study's tokenized data to DIR (for a machine without `datasets`) and exit")
    p.add_argument("--max-books", type=int, default=None, help="pg19: train on the first MAX_BOOKS books")
    p.add_argument("--eval-books", type=int, default=None, help="pg19: evaluate on the first EVAL_BOOKS books")
    p.add_argument("--val-tokens", type=int, default=16_384, help="validation tokens per curve point (default 16384)")
    p.add_argument("--test-tokens", type=int, default=None,
                   help="test tokens of the final figure (default: the config's eval_max_tokens, else all)")
    p.add_argument("--eval-spans", type=int, default=4, help="evenly spaced spans a capped evaluation reads")
    p.add_argument("--scifar-config", default="plain_text", choices=["plain_text", "lossless_subset"])
    p.add_argument("--max-images", type=int, default=None, help="sCIFAR-10: images loaded per split")
    p.add_argument("--scifar-size", type=int, default=32, choices=[32, 16], help="sCIFAR-10: 32 (1024 pixels) "
                   "or 16 (2x2 mean-pooled, 256 pixels)")
    p.add_argument("--val-images", type=int, default=1000, help="sCIFAR-10: validation images per curve point")
    p.add_argument("--copy-reach", action="store_true", help="copy task: two ECP arms whose receptive field "
                   "is shorter / longer than the copy distance N/2")
    p.add_argument("--copy-eval-batches", type=int, default=8)
    p.add_argument("--cost-lengths", nargs="*", type=int, default=None, metavar="N",
                   help="window lengths of the cost sweep (default N, 2N, 4N, 8N for text; none otherwise)")
    p.add_argument("--cost-tokens", type=int, default=None, help="tokens per call of the cost sweep "
                   "(default the largest length)")
    p.add_argument("--cost-repeats", type=int, default=3)
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="start no new cell after this many seconds (finished cells are kept)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is often fastest on a busy machine)")
    p.add_argument("--ecp-backend", default="auto", choices=["auto", "torch", "flex", "triton"],
                   help="ECP attention kernel (auto: Triton on CUDA, else torch)")
    p.add_argument("--skip-training", action="store_true", help="run only the cost sweep")
    p.add_argument("--plot-only", action="store_true", help="only redraw the plots and tables of --out")
    p.add_argument("--save-checkpoints", action="store_true")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="a tiny configuration that only checks the code paths")
    add_config_options(p)


def cmd_compare(args) -> int:
    """Handler of ``minecp compare``."""
    from .cli import explicit_overrides

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
    from .data import SCIFAR_LEN

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
                              description=__doc__.split("\n\n")[0])
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
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as e:
        if os.environ.get("MINECP_DEBUG"):
            raise
        print(f"error: {str(e).strip() or type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
