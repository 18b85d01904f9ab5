"""Study options, config hashes and the append-only record store.

A *cell* is one (dataset, model, seed) trained under one configuration; its key carries a
hash of everything that changes what it computes (:func:`config_hash`), so finished cells
are recognised and skipped when a study is run again (:class:`ResultStore`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..presets import TrainConfig

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
        copy_reach: copy task only: replace the ECP arm by ECP arms whose receptive field
            is shorter / long enough for the copy distance (:func:`copy_reach_arms`).
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
