"""Where raw text comes from: the Hugging Face Hub, a local hub-layout data root, or a file.

Every split is named the same way in both modes: a Hub ``(repo, config, split)``. The *data
root* (``data_dir`` argument, else env ``MINECP_DATA_DIR``) only decides who answers:

* **online** (no data root): ``datasets.load_dataset(repo, config, split=split, streaming=True)``
  asks the Hub, which downloads and caches the files;
* **offline** (data root set): the same split is read from
  ``<root>/<repo>/<config>/<split>-*.parquet`` with ``datasets.load_dataset("parquet", ...)``.
  That is the Hub's own file layout, so a mirror made of the Hub's parquet files just works.

Both stream: rows are read once, joined into one string per split and cached by
:mod:`minecp.data.corpus`, so no second (Arrow) copy of the data is written and PG-19 never
has to be downloaded in full (``max_books``).

Where the two disagree, the code says so instead of failing (:func:`load_hub_split`):

* a config that exists only in the offline mirror (CIFAR-10 ``lossless_subset``) is asked
  for online: the Hub answers "config not found", minecp warns, naming both configs, and
  reads the Hub's config (``plain_text``);
* ``deepmind/pg19`` is a *script* dataset, which ``datasets`` >= 4 no longer runs; online,
  minecp then reads ``emozilla/pg19``, a parquet copy with the same four columns
  (short_book_title, publication_date, url, text) and split sizes (28,602 / 50 / 100 books);
* offline, a split missing from the mirror may fall back to another config (WikiText-103 raw
  train -> the tokenized 0.5 % prefix, with a warning; WikiText-2 validation/test -> the
  byte-identical WikiText-103 articles).

How a split becomes one string (kept identical online and offline):

* WikiText: the Hub stores one row per line, a non-blank line *with* its trailing
  ``"\\n"`` and a blank line (``" \\n"`` in the original files) as ``""``. We map ``""``
  back to ``" \\n"`` and concatenate, which rebuilds the original ``wiki.*.raw`` files
  byte for byte (checked in tests) -- so byte and word counts match the literature.
* PG-19: books in dataset order, joined with a blank line (``"\\n\\n"``); no special
  end-of-document token (the byte tokenizer has no spare id for one).
* ``text:<path>``: the file, UTF-8 (a leading BOM is dropped).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "validation", "test")
ENV_DATA_DIR = "MINECP_DATA_DIR"
BOOK_SEPARATOR = "\n\n"
WIKITEXT103_TRAIN_ROWS = 1_801_350  # rows of the full Hub train split (both configs)

logger = logging.getLogger("minecp.data")


@dataclass(frozen=True)
class HubText:
    """A text dataset on the Hub.

    Attributes:
        repo, config: the Hub dataset and config (None: the repo's only config).
        local_config: the folder of a data root holding it, ``<root>/<repo>/<local_config>/``
            (None: ``config``).
        rows: "lines" (WikiText) or "books" (PG-19): how rows are joined (module doc).
        fallbacks: offline only: ``split -> ((config, is_train_prefix), ...)`` tried in
            order when the data root lacks ``<repo>/<config>/<split>``.
        hub_alternates: online only: further ``(repo, config)`` tried in order when
            ``load_dataset(repo, config)`` fails (see :func:`load_hub_split`).
    """

    repo: str
    config: str | None
    rows: str
    fallbacks: dict = field(default_factory=dict)
    hub_alternates: tuple = ()
    local_config: str | None = None

    @property
    def folder(self) -> str:
        """The config folder in a data root."""
        return self.local_config or self.config


TEXT_DATASETS = {
    # Raw (untokenized) WikiText. The offline mirror lacks raw train; the tokenized config
    # has a 0.5 % prefix of train, used with a loud warning (see locate_text).
    "wikitext-103": HubText(
        "Salesforce/wikitext", "wikitext-103-raw-v1", "lines",
        {"train": (("wikitext-103-v1", True),)},
    ),
    # WikiText-2 and -103 share their validation and test articles byte for byte.
    "wikitext-2": HubText(
        "Salesforce/wikitext", "wikitext-2-raw-v1", "lines",
        {s: (("wikitext-103-raw-v1", False),) for s in ("validation", "test")},
    ),
    # deepmind/pg19 is a loading script (no parquet files), which datasets >= 4 refuses to
    # run; emozilla/pg19 holds the same books as parquet. A data root keeps the folder name
    # "data" for the one config.
    "pg19": HubText("deepmind/pg19", None, "books", hub_alternates=(("emozilla/pg19", None),), local_config="data"),
}

#: Configs of the offline mirror that the Hub does not have, and the Hub config to read instead.
MIRROR_ONLY_CONFIGS = {("uoft-cs/cifar10", "lossless_subset"): "plain_text"}


@dataclass(frozen=True)
class TextSource:
    """One split of one corpus, located but not yet read.

    Attributes:
        name, split: as passed to :func:`locate_text`.
        files: local parquet files or the text file; empty when read from the Hub.
        hub: ``(repo, config)``: the Hub split this is (read from the data root when
            ``files`` is not empty); None for a text file.
        rows: "lines", "books" or "file" (how rows are joined, see module doc).
        max_books: PG-19 cap (None = all books).
        tag: short identity of the source (file paths, sizes, mtimes, or "hub"); part of
            every cache key, so a cache built from the mirror is never mistaken for the
            real dataset.
        note: a warning to show whenever this text is used (e.g. the 0.5 % prefix), or None.
    """

    name: str
    split: str
    files: tuple[Path, ...]
    hub: tuple[str, str | None] | None
    rows: str
    max_books: int | None
    tag: str
    note: str | None = None

    @property
    def online(self) -> bool:
        """True when the split is read from the Hub (no data root)."""
        return self.hub is not None and not self.files

    def describe(self) -> str:
        """Human-readable origin with no machine paths: "pg19 validation: deepmind/pg19 (data),
        data root" / "..., Hugging Face Hub", or the text file's name."""
        if self.hub is None:
            return f"{self.name} ({self.files[0].name})"
        config = f" ({self.hub[1]})" if self.hub[1] else ""
        return f"{self.name} {self.split}: {self.hub[0]}{config}, " + (
            "Hugging Face Hub" if self.online else "data root")


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``data_dir`` if given, else ``$MINECP_DATA_DIR``, else None (online)."""
    d = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    return Path(d).expanduser().resolve() if d is not None else None


def _files_tag(files) -> str:
    """Hash of (path, size, mtime) of the files: changes when any file is replaced."""
    h = hashlib.sha1()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return "local-" + h.hexdigest()[:10]


def hub_files(root: Path, repo: str, config: str, split: str) -> list[Path]:
    """Parquet files of one split in a hub-layout root: ``<root>/<repo>/<config>/<split>-*.parquet``."""
    return [Path(p) for p in sorted(glob.glob(str(root / repo / config / f"{split}-*.parquet")))]


def missing_data_error(what: str, repo: str, hub_config: str | None, local_config: str, split: str,
                       root: Path | None, cause: str = "") -> FileNotFoundError:
    """The error raised when a split can be found neither locally nor online; it names both
    remedies and the exact path expected under a data root."""
    cfg = local_config
    if root is None:
        where = f"it could not be loaded from the Hugging Face Hub{cause}"
    else:
        expected = root / repo / cfg / f"{split}-*.parquet"
        where = f"the data root {root} (from data_dir or ${ENV_DATA_DIR}) has no {expected}"
        where += "" if root.is_dir() else " (the root does not exist)"
    return FileNotFoundError(
        f"{what} split {split!r} is not available: {where}.\n"
        "Two ways to get it:\n"
        f"  1. go online and leave the data root unset (no data_dir argument, ${ENV_DATA_DIR} unset): "
        f"datasets.load_dataset({repo!r}, {hub_config!r}, split={split!r}) downloads it;\n"
        f"  2. set ${ENV_DATA_DIR} (or pass --data-dir on the command line, data_dir= in Python) to a folder in hub layout that holds "
        f"<root>/{repo}/{cfg}/{split}-*.parquet."
    )


def _short(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def load_hub_split(candidates, split: str, streaming: bool = True):
    """Open one split on the Hub, trying ``(repo, config)`` candidates in order.

    Each try is exactly ``datasets.load_dataset(repo, config, split=split, streaming=streaming)``.
    A mirror-only config (:data:`MIRROR_ONLY_CONFIGS`) gets its Hub config appended as the
    next candidate. When a later candidate is used, the reason is reported: a
    ``UserWarning`` naming both configs when the config asked for does not exist on the Hub
    (the caller gets other data than asked), an INFO log line on ``minecp.data`` otherwise
    (e.g. ``deepmind/pg19`` -> ``emozilla/pg19``, the same data in another repository).

    Args:
        candidates: sequence of ``(repo, config or None)``; the first is the one asked for.
        split: split name.

    Returns:
        ``(dataset, (repo, config))``: a ``datasets`` (Iterable)Dataset and the candidate used.

    Raises:
        Exception: the first candidate's error when every candidate fails (typically
            ``ConnectionError`` offline, ``DatasetNotFoundError`` for an unknown repo); the
            other candidates' errors are chained in its message.
    """
    import datasets

    candidates = list(candidates)
    for repo, config in list(candidates):
        if (repo, config) in MIRROR_ONLY_CONFIGS:
            candidates.append((repo, MIRROR_ONLY_CONFIGS[repo, config]))
    errors = []
    for repo, config in candidates:
        try:
            ds = datasets.load_dataset(repo, config, split=split, streaming=streaming)
        except Exception as e:  # noqa: BLE001 - reported below or re-raised
            errors.append(((repo, config), e))
            continue
        if errors:
            (repo0, config0), e0 = errors[0]
            msg = (f"reading {repo}/{config} {split} instead of {repo0}/{config0} (expected, not an error: "
                   f"the latter cannot be read here: {_short(e0)})")
            if repo0 == repo and config0 != config:
                warnings.warn(f"{repo}: the Hub has no config {config0!r} (it exists only in the offline "
                              f"mirror); using the Hub's config {config!r} instead. ({msg})", stacklevel=3)
            else:
                logger.info(msg)
        return ds, (repo, config)
    first = errors[0][1]
    if len(errors) > 1:
        rest = "; ".join(f"{r}/{c}: {_short(e)}" for (r, c), e in errors[1:])
        raise type(first)(f"{first} (also tried {rest})") if _reconstructible(first) else first
    raise first


def _reconstructible(e: BaseException) -> bool:
    try:
        type(e)("x")
        return True
    except Exception:  # noqa: BLE001
        return False


def _check_split(split: str, allowed=SPLITS) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def locate_text(name: str, split: str, data_dir=None, max_books: int | None = None) -> TextSource:
    """Find one split without reading it.

    Args:
        name: ``"wikitext-103"``, ``"wikitext-2"``, ``"pg19"`` or ``"text:<path>"``.
        split: ``"train"``, ``"validation"`` or ``"test"`` (checked, but a ``text:<path>``
            file is read whole whatever the split).
        data_dir: data root (see module doc); None -> ``$MINECP_DATA_DIR`` -> online.
        max_books: PG-19 only: read at most this many books (None = all).

    Raises:
        ValueError: unknown name / split (also for ``text:<path>``), bad ``max_books``,
            empty text file.
        FileNotFoundError: missing text file, or a split missing from the data root
            (message names both remedies and the expected path).
    """
    if not isinstance(name, str):
        raise ValueError(f"name must be a str: one of {sorted(TEXT_DATASETS)} or 'text:<path>', got {name!r}")
    _check_split(split)
    if name.startswith("text:"):
        path = Path(name[5:]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"text file {str(path)!r} (from {name!r}) does not exist or is not a file")
        if path.stat().st_size == 0:
            raise ValueError(f"text file {str(path)!r} is empty")
        return TextSource(name, split, (path,), None, "file", None, _files_tag([path]))
    if name not in TEXT_DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; allowed: {sorted(TEXT_DATASETS)} or 'text:<path>' "
                         "(images: load_scifar10, copy task: copy_task_batch)")
    if max_books is not None and (name != "pg19" or not isinstance(max_books, int) or isinstance(max_books, bool)
                                  or max_books < 1):
        raise ValueError(f"max_books must be None or a positive int and only applies to 'pg19', "
                         f"got {max_books!r} for {name!r}")
    spec = TEXT_DATASETS[name]
    root = resolve_data_dir(data_dir)
    if root is None:
        return TextSource(name, split, (), (spec.repo, spec.config), spec.rows, max_books, "hub")
    candidates = ((spec.folder, False),) + spec.fallbacks.get(split, ())
    for config, is_prefix in candidates:
        files = hub_files(root, spec.repo, config, split)
        if files:
            note = _prefix_note(files, config) if is_prefix else None
            hub = (spec.repo, spec.config if config == spec.folder else config)  # the Hub's name of it
            return TextSource(name, split, tuple(files), hub, spec.rows, max_books, _files_tag(files), note)
    raise missing_data_error(name, spec.repo, spec.config, spec.folder, split, root)


def _prefix_note(files, config: str) -> str:
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    pct = 100.0 * rows / WIKITEXT103_TRAIN_ROWS
    return (f"wikitext-103 train: the data root has no raw train split, so the TOKENIZED config {config!r} "
            f"is used ({rows:,} of {WIKITEXT103_TRAIN_ROWS:,} lines, a {pct:.1f} % prefix; with '<unk>' and "
            "' @-@ ', unlike the raw validation/test). Results trained on it must say '0.5 % prefix'."
            if rows < WIKITEXT103_TRAIN_ROWS else
            f"wikitext-103 train: using the TOKENIZED config {config!r} (with '<unk>'), not the raw text.")


def open_split(src: TextSource):
    """The rows of a located Hub split as a streaming ``datasets`` dataset: from the Hub
    (:func:`load_hub_split`, with the dataset's alternates) or from the data root's parquet
    files. Errors online become the :func:`missing_data_error` message naming both remedies."""
    import datasets

    if not src.online:
        return datasets.load_dataset("parquet", data_files={src.split: [str(f) for f in src.files]},
                                     split=src.split, streaming=True)
    spec = TEXT_DATASETS[src.name]
    try:
        ds, _ = load_hub_split((src.hub,) + spec.hub_alternates, src.split)
    except Exception as e:  # offline, no network, unknown repo, ...
        raise missing_data_error(src.name, spec.repo, spec.config, spec.folder, src.split, None,
                                 f" ({_short(e)[:400]})") from e
    return ds


def hub_dataset(name: str, split: str, data_dir=None):
    """One split of a Hub text dataset as the streaming ``datasets.IterableDataset`` that
    :func:`~minecp.data.load_corpus` reads (all columns, rows in dataset order).

    Online this is ``datasets.load_dataset(repo, config, split=split, streaming=True)``;
    with a data root, the same split from ``<root>/<repo>/<config>/<split>-*.parquet``.

    Args:
        name: ``"wikitext-103"``, ``"wikitext-2"`` or ``"pg19"``; split: as :func:`locate_text`.

    Raises:
        ValueError: unknown name/split or a ``text:<path>`` name; FileNotFoundError: as
            :func:`locate_text`, or the Hub cannot be reached (names both remedies).
    """
    src = locate_text(name, split, data_dir)
    if src.hub is None:
        raise ValueError(f"hub_dataset reads Hub datasets {sorted(TEXT_DATASETS)}, not {name!r}")
    return open_split(src)


def _rows(src: TextSource, columns):
    """Stream the rows of a split (batches of dicts of lists) from the Hub or local parquet."""
    yield from open_split(src).select_columns(columns).iter(batch_size=256)


def read_text(src: TextSource) -> str:
    """Read a located split as one string (see the module doc for the joining rules).

    Raises ValueError naming the path for a file that is not valid UTF-8 or holds only a BOM.
    """
    if src.rows == "file":
        path = src.files[0]
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"text file {str(path)!r} is not valid UTF-8 (byte {e.start}: {e.reason})") from None
        text = text.removeprefix("\ufeff")
        if not text:
            raise ValueError(f"text file {str(path)!r} is empty")
        return text
    if src.rows == "lines":
        parts = []
        for batch in _rows(src, ["text"]):
            parts.extend(r if r.endswith("\n") else (r or " ") + "\n" for r in batch["text"])
        return "".join(parts)
    books = []
    for batch in _rows(src, ["text"]):
        books.extend(batch["text"])
        if src.max_books is not None and len(books) >= src.max_books:
            books = books[: src.max_books]
            break
    return BOOK_SEPARATOR.join(books)
