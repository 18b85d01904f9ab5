"""Tokenizers: raw UTF-8 bytes, a byte-level BPE trained here, or a pretrained HF one.

All tokenizers share one small interface (:class:`Tokenizer`):

* ``encode(text) -> np.ndarray`` of ids, 1-D, dtype ``tokenizer.dtype``
  (``uint16`` when ``vocab_size <= 65536``, else ``int32``);
* ``decode(ids) -> str``;
* ``vocab_size`` (ids are in ``[0, vocab_size)``), ``name`` (human readable) and
  ``fingerprint`` (changes whenever the id mapping changes; keys the token caches);
* ``save(directory)`` / :func:`load_tokenizer` so a checkpoint can point at the
  exact tokenizer it was trained with.

:func:`get_tokenizer` builds one from a short spec string:

=====================  ==================================================================
``"bytes"``            256 ids, id = UTF-8 byte value. No training, no unknown tokens.
``"bpe"``/``"bpe:N"``  byte-level BPE with ``N`` ids (default 8192) trained with HF
                       ``tokenizers`` on ``train_text`` (GPT-2 style pre-tokenizer).
directory / file       a directory written by ``Tokenizer.save`` or a ``tokenizer.json``.
anything else          a pretrained tokenizer on the Hugging Face Hub, e.g.
                       ``"bert-base-cased"`` or ``"hf:gpt2"`` (needs network once).
=====================  ==================================================================

Why byte-level BPE: every byte sequence is representable (no ``<unk>``), so
bits-per-byte is well defined for any text; the trained vocabulary makes sequences
~3-4x shorter than raw bytes on English prose. Sources: Sennrich et al. 2016 (BPE),
Radford et al. 2019 (byte-level BPE, GPT-2 pre-tokenizer regex).
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

DEFAULT_BPE_VOCAB = 8192
# The BPE is trained on at most this many characters of the training text. 32 M
# characters cover the whole offline PG-19 stand-in (23 M) and a spread-out sample of
# large corpora (WikiText-103 train is 540 M); training takes ~15-25 s on 2 CPU cores.
BPE_SAMPLE_CHARS = 32_000_000
_META_FILE = "minecp_tokenizer.json"
_HF_FILE = "tokenizer.json"


def ids_dtype(vocab_size: int) -> np.dtype:
    """Smallest integer dtype used to store ids of a vocabulary: ``uint16`` or ``int32``."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.int32)


# --------------------------------------------------------------------------- splitting
# HF tokenizers are much faster (and lighter on memory) on many short strings than on one
# 20 MB string, so long texts are encoded in pieces. A piece boundary is placed only right
# after a newline that sits between two word characters ("a\nb"): every pre-tokenizer we
# use (GPT-2 byte-level regex, BERT whitespace split) already splits there, so encoding
# the pieces gives exactly the ids of encoding the whole text.
_SAFE_BREAK = re.compile(r"\w\n(?=\w)")


def split_text(text: str, piece_chars: int = 1 << 14) -> list[str]:
    """Cut ``text`` into pieces of about ``piece_chars`` characters at safe line breaks.

    ``"".join(split_text(t)) == t`` always holds. A stretch without a safe break stays
    in one (longer) piece.
    """
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        m = _SAFE_BREAK.search(text, start + piece_chars)
        if m is None:
            break
        pieces.append(text[start : m.end()])
        start = m.end()
    pieces.append(text[start:])
    return pieces


def _checked_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` (a list/tuple of ints, or a 1-D np.ndarray / torch tensor) as Python ints.

    Checked here, at the public ``decode``, because the libraries below fail unhelpfully:
    ``bytes([300])`` says "bytes must be in range(0, 256)", the HF decoder silently drops
    unknown ids (``decode([99999]) == ""``) and overflows on negative ones, and
    ``int(1.5)`` would silently truncate a float.

    Raises:
        TypeError: not a 1-D sequence of ints (floats and bools are refused).
        ValueError: an id outside [0, vocab_size).
    """
    if hasattr(ids, "tolist"):                 # np.ndarray / torch tensor -> Python ints
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a 1-D sequence of token ids (list, tuple, np.ndarray or tensor), "
                        f"got {type(ids).__name__}")
    ids = list(ids)
    for i in ids:
        if type(i) is not int and (isinstance(i, bool) or not isinstance(i, numbers.Integral)):
            raise TypeError(f"ids must hold integer token ids, got {i!r} of type {type(i).__name__}")
    ids = [int(i) for i in ids]                # numpy ints -> int
    for i in ids:
        if not 0 <= i < vocab_size:
            raise ValueError(f"ids must lie in [0, vocab_size={vocab_size}), got {i}")
    return ids


# -------------------------------------------------------------------------- interface
class Tokenizer:
    """Common interface; see the module docstring. Subclasses set ``name``."""

    name: str = "tokenizer"

    @property
    def vocab_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the arrays returned by :meth:`encode` (``uint16`` or ``int32``)."""
        return ids_dtype(self.vocab_size)

    def encode(self, text: str) -> np.ndarray:  # pragma: no cover - abstract
        """Text -> token ids.

        Args:
            text: any str (no special tokens are added).

        Returns:
            1-D np.ndarray [n_tokens] of dtype :attr:`dtype`, ids in [0, vocab_size).
        """
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:  # pragma: no cover
        """Token ids -> text (lossless inverse of :meth:`encode` for byte-level tokenizers).

        Args:
            ids: a list/tuple of ints or a 1-D integer np.ndarray / torch tensor, each in
                [0, vocab_size).

        Returns:
            The text; bytes that are not valid UTF-8 (e.g. half a character) become U+FFFD.

        Raises:
            TypeError: ``ids`` is not a 1-D sequence of ints (floats/bools are refused).
            ValueError: an id outside [0, vocab_size).
        """
        raise NotImplementedError

    def save(self, directory: str | os.PathLike) -> Path:  # pragma: no cover
        """Write the tokenizer into ``directory`` (created if needed) so that
        :func:`load_tokenizer` restores the same id mapping.

        Files: ``minecp_tokenizer.json`` (kind and name) and, for HF tokenizers,
        ``tokenizer.json``; each is written atomically (temp file + rename).

        Returns:
            The directory as a Path.

        Raises:
            OSError: the directory or a file cannot be written.
        """
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        """JSON-serialisable, self-contained description (for checkpoints); inverse:
        :func:`tokenizer_from_dict`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size})"


class ByteTokenizer(Tokenizer):
    """UTF-8 bytes as ids: ``encode(t) == list(t.encode("utf-8"))``, vocab_size 256.

    One token is one byte, so the model's loss in bits per token *is* bits per byte.
    ``decode`` replaces invalid UTF-8 (e.g. a window cut inside a multi-byte
    character) with U+FFFD instead of raising.
    """

    name = "bytes"

    @property
    def vocab_size(self) -> int:
        return 256

    @property
    def fingerprint(self) -> str:
        return "bytes"

    def encode(self, text: str) -> np.ndarray:
        """str -> uint16 array [n_bytes] of byte values 0..255."""
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def decode(self, ids) -> str:
        """Ids in 0..255 -> str (invalid UTF-8 becomes U+FFFD); see :meth:`Tokenizer.decode`
        (TypeError / ValueError naming ``ids``)."""
        return bytes(_checked_ids(ids, 256)).decode("utf-8", errors="replace")

    def save(self, directory) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _write_json(d / _META_FILE, {"kind": "bytes", "name": self.name})
        return d

    def to_dict(self) -> dict:
        return {"kind": "bytes", "name": self.name, "fingerprint": self.fingerprint}


class HFTokenizer(Tokenizer):
    """Wraps a ``tokenizers.Tokenizer`` (a trained BPE or any pretrained HF tokenizer).

    Special tokens (BERT's [CLS]/[SEP], ...) are never added by :meth:`encode`: a corpus
    is one long stream, not a list of sentences.
    """

    def __init__(self, tok, name: str):
        self.tok = tok
        self.name = name
        # The serialized JSON holds vocab, merges, normalizer, pre-tokenizer...: any
        # change of the id mapping changes this hash.
        self._fingerprint = hashlib.sha256(tok.to_str().encode()).hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, text: str) -> np.ndarray:
        """str -> 1-D id array (dtype ``self.dtype``); long texts are encoded in pieces
        (see :func:`split_text`), 4 MB at a time, using all CPU cores."""
        out = []
        for group in _groups(split_text(text), 256):
            fast = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
            for enc in fast(group, add_special_tokens=False):
                out.append(np.asarray(enc.ids, dtype=self.dtype))
        return np.concatenate(out) if out else np.zeros(0, self.dtype)

    def decode(self, ids) -> str:
        """Ids -> str, special tokens kept; see :meth:`Tokenizer.decode` (TypeError /
        ValueError naming ``ids``)."""
        return self.tok.decode(_checked_ids(ids, self.vocab_size), skip_special_tokens=False)

    def save(self, directory) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(d / _HF_FILE, self.tok.to_str())
        _write_json(d / _META_FILE, {"kind": "hf", "name": self.name})
        return d

    def to_dict(self) -> dict:
        """Includes the whole ``tokenizer.json`` (~0.3 MB for 8192 ids), so a checkpoint
        needs no side files."""
        return {"kind": "hf", "name": self.name, "fingerprint": self.fingerprint,
                "tokenizer_json": self.tok.to_str()}


def _groups(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --------------------------------------------------------------------------- building
def sample_text(text: str, max_chars: int = BPE_SAMPLE_CHARS, piece_chars: int = 1 << 16) -> list[str]:
    """Deterministic training sample: the whole text if short enough, else evenly spaced
    pieces of ``piece_chars`` characters totalling about ``max_chars`` characters.

    Spreading the pieces over the whole text (instead of taking a prefix) keeps the
    sample representative of all books/articles, not only the first few.
    """
    if len(text) <= max_chars:
        return split_text(text)
    k = max(1, max_chars // piece_chars)
    starts = np.linspace(0, len(text) - piece_chars, k).astype(np.int64)
    return [text[s : s + piece_chars] for s in starts]


def train_bpe(text: str, vocab_size: int = DEFAULT_BPE_VOCAB,
              max_chars: int = BPE_SAMPLE_CHARS) -> HFTokenizer:
    """Train a byte-level BPE with ``vocab_size`` ids on (a sample of) ``text``.

    Deterministic: the same text and arguments give the same merges and ids, also across
    processes and thread counts (the HF trainer breaks count ties by the pair itself;
    checked by ``tests/test_tokenizer.py``). On a small text the trainer may stop early
    with fewer than ``vocab_size`` ids (no pair occurs twice); ``.vocab_size`` reports
    the real size. Raises ValueError for vocab_size < 257 or an empty text.
    """
    from tokenizers import Tokenizer as _HFTok, decoders, models, pre_tokenizers, trainers

    if not isinstance(vocab_size, int) or vocab_size < 257:
        raise ValueError(f"vocab_size must be an int >= 257 (256 bytes + merges), got {vocab_size!r}")
    if not text:
        raise ValueError("train_bpe: the training text is empty")
    tok = _HFTok(models.BPE())
    # add_prefix_space=False: encoding text in pieces must not invent spaces.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes always present
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(sample_text(text, max_chars), trainer=trainer)
    return HFTokenizer(tok, name=f"bpe{vocab_size}")


def load_tokenizer(directory: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer saved with ``Tokenizer.save`` (or a bare ``tokenizer.json`` file or
    a directory holding one). Raises FileNotFoundError naming the path if nothing is there."""
    from tokenizers import Tokenizer as _HFTok

    p = Path(directory)
    if p.is_file():  # a bare tokenizer.json
        return HFTokenizer(_HFTok.from_file(str(p)), name=p.parent.name or p.stem)
    meta = _read_json(p / _META_FILE) if (p / _META_FILE).is_file() else {"kind": "hf", "name": p.name}
    if meta["kind"] == "bytes":
        return ByteTokenizer()
    if not (p / _HF_FILE).is_file():
        raise FileNotFoundError(f"no tokenizer found in {str(p)!r} (expected {_META_FILE} and/or {_HF_FILE})")
    return HFTokenizer(_HFTok.from_file(str(p / _HF_FILE)), name=meta["name"])


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict` (e.g. a checkpoint's entry).

    Raises:
        TypeError: ``d`` is not a dict.
        ValueError: an unknown kind, an ``"hf"`` entry without a valid ``tokenizer_json``
            or ``name``, or a rebuilt fingerprint that differs from the recorded one.
    """
    from tokenizers import Tokenizer as _HFTok

    if not isinstance(d, dict):
        raise TypeError(f"tokenizer description must be a dict from Tokenizer.to_dict(), got {type(d).__name__}")
    if d.get("kind") == "bytes":
        tok = ByteTokenizer()
    elif d.get("kind") == "hf":
        if not isinstance(d.get("tokenizer_json"), str) or not isinstance(d.get("name"), str):
            raise ValueError("an 'hf' tokenizer description needs str entries 'tokenizer_json' and 'name', "
                             f"got keys {sorted(d)}")
        try:
            hf = _HFTok.from_str(d["tokenizer_json"])
        except Exception as e:  # the Rust library raises a bare Exception for bad JSON
            raise ValueError(f"tokenizer description's 'tokenizer_json' is not a valid tokenizer.json: {e}") from None
        tok = HFTokenizer(hf, name=d["name"])
    else:
        raise ValueError(f"tokenizer description has kind {d.get('kind')!r}; allowed: 'bytes', 'hf'")
    if d.get("fingerprint") not in (None, tok.fingerprint):
        raise ValueError(f"tokenizer fingerprint mismatch: recorded {d['fingerprint']}, rebuilt {tok.fingerprint}")
    return tok


def get_tokenizer(
    spec: str | Tokenizer = "bpe",
    train_text: str | None = None,
    save_dir: str | os.PathLike | None = None,
) -> Tokenizer:
    """Build a tokenizer from a spec (see the module docstring for the accepted specs).

    Args:
        spec: ``"bytes"``, ``"bpe"``, ``"bpe:<vocab_size>"``, a saved directory or
            ``tokenizer.json`` path, or a Hub name (``"bert-base-cased"``, ``"hf:gpt2"``).
            A ``Tokenizer`` instance is returned unchanged.
        train_text: text to train the BPE on (only for ``"bpe"``; a sample of at most
            ``BPE_SAMPLE_CHARS`` characters is used).
        save_dir: for ``"bpe"``: if it already holds a saved tokenizer, that one is loaded
            (no training) after checking that it is the BPE the spec asks for; otherwise
            the newly trained one is saved there. Ignored for other specs.

    Raises:
        ValueError: malformed ``"bpe:N"`` spec; ``"bpe"`` without ``train_text`` and
            without a saved tokenizer in ``save_dir``; or ``save_dir`` holding a
            tokenizer of another spec (bytes, another vocabulary size, a Hub one).
        FileNotFoundError: a pretrained name that cannot be fetched (offline / unknown).
    """
    if isinstance(spec, Tokenizer):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"tokenizer spec must be a non-empty str or a Tokenizer, got {spec!r}")
    if spec == "bytes":
        return ByteTokenizer()
    if spec == "bpe" or spec.startswith("bpe:"):
        vocab = DEFAULT_BPE_VOCAB
        if spec.startswith("bpe:"):
            try:
                vocab = int(spec[4:])
            except ValueError:
                raise ValueError(f"tokenizer spec 'bpe:<vocab_size>' needs an int, got {spec!r}") from None
        if save_dir is not None and (Path(save_dir) / _META_FILE).is_file():
            tok = load_tokenizer(save_dir)
            # save_dir is a cache chosen by the caller, not keyed by the spec: a tokenizer
            # saved there for another spec must not stand in silently (wrong vocabulary).
            # The name records the requested size; the trainer may stop with fewer ids.
            if not (isinstance(tok, HFTokenizer) and tok.name == f"bpe{vocab}" and tok.vocab_size <= vocab):
                saved = "bytes" if isinstance(tok, ByteTokenizer) else re.sub(r"^bpe(\d+)$", r"bpe:\1", tok.name)
                raise ValueError(f"save_dir {str(save_dir)!r} holds tokenizer {saved!r} ({tok.vocab_size} ids), "
                                 f"not the requested {spec!r} (at most {vocab} ids): use another save_dir, "
                                 f"or spec {saved!r}")
            return tok
        if train_text is None:
            raise ValueError(f"tokenizer {spec!r} must be trained: pass train_text (or a save_dir holding one)")
        tok = train_bpe(train_text, vocab)
        if save_dir is not None:
            tok.save(save_dir)
        return tok
    if os.path.exists(spec):
        return load_tokenizer(spec)
    name = spec[3:] if spec.startswith("hf:") else spec
    from tokenizers import Tokenizer as _HFTok

    try:
        return HFTokenizer(_HFTok.from_pretrained(name), name=f"hf:{name}")
    except Exception as e:  # network error, offline mode, unknown repo...
        raise FileNotFoundError(
            f"could not load pretrained tokenizer {name!r} from the Hugging Face Hub ({type(e).__name__}: {e}). "
            "Go online once, or pass a local directory / tokenizer.json path; "
            "built-in specs: 'bytes', 'bpe', 'bpe:<vocab_size>'."
        ) from e


# ------------------------------------------------------------------------------- files
def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + os.replace, so readers never see a half-written file."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    _atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True))


def _read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = [
    "BPE_SAMPLE_CHARS",
    "ByteTokenizer",
    "DEFAULT_BPE_VOCAB",
    "HFTokenizer",
    "Tokenizer",
    "get_tokenizer",
    "ids_dtype",
    "load_tokenizer",
    "sample_text",
    "split_text",
    "tokenizer_from_dict",
    "train_bpe",
]
