"""The study's data: tokenized splits for text, gray pixel sequences for sCIFAR-10, the copy task.

:func:`load_data` reads them through :mod:`minecp.data` (Hugging Face ``datasets`` or a
local data root); :func:`export_bundle` writes them as plain numpy files so a machine
without ``datasets`` (the GPU image) can load them with ``load_data(..., bundle=...)``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..presets import TrainConfig
from .store import CompareOptions


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
    from ..data import load_corpus
    from ..tasks import load_lm_ids

    if books is not None and dataset != "pg19":
        raise ValueError(f"max_books / eval_books apply to pg19 only, not to {dataset!r}")
    if dataset.startswith("text:"):  # no splits in a file: minecp.train's 90 % / 10 % convention
        ids, tok = load_lm_ids(dataset, split, tokenizer, data_dir)
        return types.SimpleNamespace(ids=ids, tokenizer=tok, note=None)
    return load_corpus(dataset, split, tokenizer=tokenizer, data_dir=data_dir, max_books=books)


def _scifar_arrays(options: CompareOptions, data_dir):
    """((train tokens, labels), (val ...), (test ...)): gray, downsampled if asked.

    "plain_text": the last 5,000 train images are validation (as :func:`minecp.tasks.load_scifar`);
    "lossless_subset" (4,000 train): the last 500.
    """
    from ..data import image_tokens, load_scifar10

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
        from ..tasks import tokenizer_spec

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
    from ..baselines import BigramBaseline, UnigramBaseline
    from ..classify import ClassifyTask
    from ..tasks import CopyTask, LMTask, tokenizer_spec

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
        from ..tokenizer import tokenizer_from_dict

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
