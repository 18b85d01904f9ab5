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
import os
import re
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


def _as_id_list(ids) -> list[int]:
    """Accept a list, np.ndarray or torch tensor of ids and return a list of Python ints."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    return [int(i) for i in ids]


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
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:  # pragma: no cover
        raise NotImplementedError

    def save(self, directory: str | os.PathLike) -> Path:  # pragma: no cover
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
        """Ids in 0..255 -> str (invalid UTF-8 becomes U+FFFD). ValueError if an id > 255."""
        return bytes(_as_id_list(ids)).decode("utf-8", errors="replace")

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
        return self.tok.decode(_as_id_list(ids), skip_special_tokens=False)

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
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict`. Raises ValueError for an unknown
    kind or when the rebuilt tokenizer's fingerprint differs from the recorded one."""
    from tokenizers import Tokenizer as _HFTok

    if d.get("kind") == "bytes":
        tok = ByteTokenizer()
    elif d.get("kind") == "hf":
        tok = HFTokenizer(_HFTok.from_str(d["tokenizer_json"]), name=d["name"])
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
            (no training); otherwise the newly trained one is saved there.

    Raises:
        ValueError: malformed ``"bpe:N"`` spec, or ``"bpe"`` without ``train_text`` and
            without a saved tokenizer in ``save_dir``.
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
            return load_tokenizer(save_dir)
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
