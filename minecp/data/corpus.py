"""Tokenized corpora, cached as memory-mapped ``.npy`` files.

Cache layout (``cache_dir``: argument, else ``$MINECP_CACHE_DIR``, else ``<repo>/data/cache``,
else ``~/.cache/minecp``)::

    <cache_dir>/<corpus>/                      corpus = "wikitext-103", "pg19-books10", "text-notes", ...
        <split>-<src>.txt                      the joined UTF-8 text of the split
        <split>-<src>.json                     {"num_bytes", "num_words", "num_chars", "source", "note"}
        <split>-<src>.<tokenizer fp>.npy       token ids, 1-D uint16 (vocab <= 65536) or int32
        tokenizer-bpe<V>-<src of train>/       the BPE trained on this corpus' train split

``<src>`` identifies the source files ("hub", or a hash of the local files' paths, sizes and
mtimes), ``<tokenizer fp>`` the exact id mapping. A second run therefore opens the ``.npy``
with ``mmap_mode="r"`` in milliseconds and never re-reads or re-tokenizes. Every file is
written to a temp name and moved into place with ``os.replace``, so an interrupted run
never leaves a truncated file behind. Delete the folder to rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import tokenizer as _tok
from .sources import TextSource, locate_text, read_text

ENV_CACHE_DIR = "MINECP_CACHE_DIR"
_REPO_DATA = Path(__file__).resolve().parents[2] / "data"


# Progress of slow first runs (reading, tokenizing, training a BPE). A logger, not print:
# the command line shows it (minecp.cli.show_progress), notebooks and libraries stay quiet
# unless they ask, e.g. ``logging.basicConfig(level=logging.INFO)``.
logger = logging.getLogger("minecp.data")


def _log(msg: str) -> None:
    logger.info(msg)


def default_cache_dir() -> Path:
    """``$MINECP_CACHE_DIR``, else ``<repo>/data/cache`` when running from a checkout, else
    ``~/.cache/minecp``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    return _REPO_DATA / "cache" if _REPO_DATA.is_dir() else Path.home() / ".cache" / "minecp"


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:  # a file object, so np.save does not append ".npy"
        np.save(f, arr)
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def text_stats(text: str) -> dict:
    """Counts needed for bits-per-byte and word-level perplexity.

    Returns ``{"num_bytes": UTF-8 bytes, "num_words": len(text.split()), "num_chars": len(text)}``.
    ``num_words`` counts whitespace-separated words. Note: published WikiText word-level
    perplexities divide by words *plus one <eos> per line* (test: 241,211 + 4,358 =
    245,569); add ``text.count("\\n")`` for that convention.
    """
    return {"num_bytes": len(text.encode("utf-8")), "num_words": len(text.split()), "num_chars": len(text)}


def _corpus_dir(src: TextSource, cache_dir: Path) -> Path:
    if src.rows == "file":
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in src.files[0].stem)
        return cache_dir / f"text-{stem}"
    return cache_dir / (src.name + (f"-books{src.max_books}" if src.max_books else ""))


def _cached_text(src: TextSource, cache_dir: Path) -> tuple[Path, dict]:
    """Path of the cached text of ``src`` and its stats; reads the source on a miss."""
    d = _corpus_dir(src, cache_dir)
    txt, meta = d / f"{src.split}-{src.tag}.txt", d / f"{src.split}-{src.tag}.json"
    if txt.is_file() and meta.is_file():
        return txt, json.loads(meta.read_text())
    t0 = time.perf_counter()
    text = read_text(src)
    d.mkdir(parents=True, exist_ok=True)
    _atomic_write(txt, text)
    stats = dict(text_stats(text), source=src.describe(), note=src.note)
    _atomic_write(meta, json.dumps(stats, indent=1))
    _log(f"read {src.describe()}: {stats['num_bytes']:,} bytes in {time.perf_counter() - t0:.1f} s")
    return txt, stats


@dataclass
class Corpus:
    """One tokenized split.

    Attributes:
        name, split: as passed to :func:`load_corpus`.
        ids: token ids, 1-D read-only ``np.memmap``-backed array, dtype ``uint16``
            (vocab <= 65536) or ``int32``. ``len(corpus) == len(ids)``.
        tokenizer: the :class:`minecp.tokenizer.Tokenizer` that produced ``ids``.
        num_bytes: UTF-8 bytes of the split's text (bits per byte = total nats of the
            split / ln 2 / num_bytes).
        num_words: whitespace-separated words (see :func:`text_stats` for WikiText's
            ``<eos>`` convention).
        num_chars: characters (code points) of the text.
        text_path: cached UTF-8 text; ``.text`` reads it on demand.
        source: where the text came from (human readable).
        note: caveat about the source (e.g. "0.5 % prefix"), else None.
    """

    name: str
    split: str
    ids: np.ndarray
    tokenizer: _tok.Tokenizer
    num_bytes: int
    num_words: int
    num_chars: int
    text_path: Path
    source: str
    note: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def text(self) -> str:
        """The split's full text (read from the cache on each access; not kept in memory)."""
        return self.text_path.read_text(encoding="utf-8")

    @property
    def bytes_per_token(self) -> float:
        return self.num_bytes / max(1, len(self.ids))


def load_text(name: str, split: str = "train", data_dir=None, cache_dir=None,
              max_books: int | None = None) -> str:
    """The raw text of one split as a str (cached like :func:`load_corpus`; same arguments
    and errors)."""
    src = locate_text(name, split, data_dir, max_books)
    path, _ = _cached_text(src, Path(cache_dir) if cache_dir else default_cache_dir())
    return path.read_text(encoding="utf-8")


def _bpe_for(spec: str, name: str, data_dir, cache_dir: Path, max_books) -> _tok.Tokenizer:
    """The BPE of ``spec`` trained on (a sample of) the train split of ``name``, cached in the
    corpus folder; trained only if that folder has none yet."""
    vocab = _tok.DEFAULT_BPE_VOCAB if spec == "bpe" else spec[4:]
    train_src = locate_text(name, "train", data_dir, max_books)
    key = hashlib.sha1(f"{train_src.tag}|{_tok.BPE_SAMPLE_CHARS}".encode()).hexdigest()[:10]
    save_dir = _corpus_dir(train_src, cache_dir) / f"tokenizer-bpe{vocab}-{key}"
    if train_src.note:  # e.g. "0.5 % prefix": the tokenizer inherits the caveat
        warnings.warn(f"tokenizer: {train_src.note}", stacklevel=3)
    if (save_dir / "minecp_tokenizer.json").is_file():
        return _tok.load_tokenizer(save_dir)
    path, _ = _cached_text(train_src, cache_dir)
    t0 = time.perf_counter()
    tok = _tok.get_tokenizer(spec, train_text=path.read_text(encoding="utf-8"), save_dir=save_dir)
    _log(f"trained {tok.name} ({tok.vocab_size} ids) on {train_src.describe()} in {time.perf_counter() - t0:.1f} s")
    return tok


def load_corpus(
    name: str,
    split: str = "train",
    tokenizer: str | _tok.Tokenizer = "bpe",
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_books: int | None = None,
) -> Corpus:
    """Load one split of a text corpus as token ids (cached, memory-mapped).

    Args:
        name: ``"wikitext-103"``, ``"wikitext-2"``, ``"pg19"`` or ``"text:<path>"`` (a local
            UTF-8 file; the whole file, whichever valid ``split`` is given).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        tokenizer: a :class:`~minecp.tokenizer.Tokenizer` or a spec for
            :func:`~minecp.tokenizer.get_tokenizer`. ``"bpe"`` / ``"bpe:<V>"`` means a
            byte-level BPE trained on this corpus' *train* split (the same one for every
            split, cached beside the data).
        data_dir: hub-layout data root for offline use; None -> ``$MINECP_DATA_DIR`` ->
            download from the Hub.
        cache_dir: where cached text/ids/tokenizers live (see module doc).
        max_books: PG-19 only: use the first ``max_books`` books of the split (and of the
            train split the BPE is trained on). Online, ``None`` streams all ~28k train
            books (~11 GB of text) -- pass a cap, e.g. 100 books is ~40 MB.

    Returns:
        :class:`Corpus` with ``ids`` (1-D uint16/int32 memmap), ``num_bytes``, ``num_words``.

    Raises:
        ValueError: ``name`` not a str, unknown name/split/tokenizer spec, empty or
            non-UTF-8 text file.
        FileNotFoundError: the split is neither in the data root nor downloadable (the
            message names both remedies); missing text file.

    Warns:
        UserWarning when the text is a stand-in, e.g. WikiText-103 train offline
        ("0.5 % prefix").
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    src = locate_text(name, split, data_dir, max_books)
    if src.note:
        warnings.warn(src.note, stacklevel=2)
    if isinstance(tokenizer, str) and (tokenizer == "bpe" or tokenizer.startswith("bpe:")):
        tok = _bpe_for(tokenizer, name, data_dir, cache, max_books)
    else:
        tok = _tok.get_tokenizer(tokenizer)
    txt, stats = _cached_text(src, cache)
    ids_path = txt.with_name(f"{txt.stem}.{tok.fingerprint}.npy")
    if not ids_path.is_file():
        t0 = time.perf_counter()
        ids = tok.encode(txt.read_text(encoding="utf-8"))
        _atomic_save_npy(ids_path, ids)
        _log(f"tokenized {src.describe()} with {tok.name}: {len(ids):,} tokens "
             f"({stats['num_bytes'] / max(1, len(ids)):.2f} bytes/token) in {time.perf_counter() - t0:.1f} s")
    ids = np.load(ids_path, mmap_mode="r")
    return Corpus(name, split, ids, tok, stats["num_bytes"], stats["num_words"], stats["num_chars"],
                  txt, stats["source"], stats.get("note"))
