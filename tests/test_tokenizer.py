"""Tokenizers: byte round trip, deterministic BPE training, exact piecewise encoding, save/load.

CPU only, offline, no data files needed (the BPE is trained on a small generated text).
"""

import os


import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

from minecp.tokenizer import (  # noqa: E402
    ByteTokenizer,
    HFTokenizer,
    get_tokenizer,
    load_tokenizer,
    split_text,
    tokenizer_from_dict,
    train_bpe,
)

WORDS = ("the of and to in a was he that it his her with as had for at which by on not be "
         "naïve café Zürich 日本語 emoji🙂 don't won't — “quoted” 1905 42").split()


def make_text(n_lines=3000, seed=0) -> str:
    """A deterministic ~150 kB text with lines, punctuation, blank lines and non-ASCII."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        k = rng.randint(0, 14)
        line = " ".join(rng.choice(WORDS) for _ in range(k))
        lines.append(line + rng.choice(["", ".", ",", "  ", " ;"]))
    return "\n".join(lines) + "\n"


TEXT = make_text()


def test_bytes_round_trip_and_ids():
    tok = ByteTokenizer()
    s = "Grüße, 世界! 🙂\n\ttab"
    ids = tok.encode(s)
    assert tok.vocab_size == 256 and tok.name == "bytes"
    assert ids.dtype == np.uint16 and ids.ndim == 1
    assert ids.tolist() == list(s.encode("utf-8"))
    assert len(ids) == 26  # 2+2+2+3 + 6 + 2 + 4 + 2 + 3 bytes
    assert tok.decode(ids) == s
    assert tok.decode(ids.tolist()) == s
    # a window cut inside a multi-byte character decodes with U+FFFD, not an exception
    assert tok.decode(ids[:3]) == "Gr\ufffd"


def test_bpe_is_deterministic_in_process_and_across_processes():
    a, b = train_bpe(TEXT, 400), train_bpe(TEXT, 400)
    assert a.tok.to_str() == b.tok.to_str()
    assert a.fingerprint == b.fingerprint
    assert np.array_equal(a.encode(TEXT), b.encode(TEXT))
    # A fresh process has a different Rust hash seed / thread schedule.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from minecp.tokenizer import train_bpe;"
        "print(train_bpe(sys.stdin.read(), 400).fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT)], input=TEXT, encoding="utf-8",
                         capture_output=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123", "RAYON_NUM_THREADS": "1"})
    assert out.stdout.strip() == a.fingerprint


def test_bpe_round_trip_and_compression():
    tok = train_bpe(TEXT, 400)
    assert isinstance(tok, HFTokenizer)
    assert 256 < tok.vocab_size <= 400
    ids = tok.encode(TEXT)
    assert ids.dtype == np.uint16 and int(ids.max()) < tok.vocab_size
    assert tok.decode(ids) == TEXT  # byte-level: lossless, no <unk>
    assert len(ids) < 0.5 * len(TEXT.encode())  # merges really shorten the sequence
    unseen = "Ωmega ∑ unseen ✓ characters\n"
    assert tok.decode(tok.encode(unseen)) == unseen


def test_piecewise_encoding_is_exact():
    assert "".join(split_text(TEXT, 1000)) == TEXT
    pieces = split_text(TEXT, 1000)
    assert len(pieces) > 50 and all(p[-1] == "\n" for p in pieces[:-1])
    tok = train_bpe(TEXT, 400)
    big = TEXT * 3  # > 16 k characters, so HFTokenizer.encode really cuts it
    assert len(split_text(big)) > 1
    whole = tok.tok.encode(big, add_special_tokens=False).ids
    assert tok.encode(big).tolist() == whole


def test_save_load_round_trip(tmp_path):
    bpe = train_bpe(TEXT, 300)
    bpe.save(tmp_path / "bpe")
    again = load_tokenizer(tmp_path / "bpe")
    assert again.fingerprint == bpe.fingerprint and again.name == "bpe300"
    assert np.array_equal(again.encode(TEXT[:5000]), bpe.encode(TEXT[:5000]))
    # a bare tokenizer.json is accepted too, and so is a path spec
    assert load_tokenizer(tmp_path / "bpe" / "tokenizer.json").fingerprint == bpe.fingerprint
    assert get_tokenizer(str(tmp_path / "bpe")).fingerprint == bpe.fingerprint
    ByteTokenizer().save(tmp_path / "bytes")
    assert isinstance(load_tokenizer(tmp_path / "bytes"), ByteTokenizer)
    with pytest.raises(FileNotFoundError, match="nothing"):
        load_tokenizer(tmp_path / "nothing")


def test_dict_round_trip_for_checkpoints():
    import json

    bpe = train_bpe(TEXT, 300)
    d = json.loads(json.dumps(bpe.to_dict()))  # survives JSON (and torch.save)
    again = tokenizer_from_dict(d)
    assert again.fingerprint == bpe.fingerprint and again.name == bpe.name
    assert np.array_equal(again.encode(TEXT[:3000]), bpe.encode(TEXT[:3000]))
    assert isinstance(tokenizer_from_dict(ByteTokenizer().to_dict()), ByteTokenizer)
    with pytest.raises(ValueError, match="fingerprint mismatch"):
        tokenizer_from_dict({**d, "fingerprint": "0" * 16})
    with pytest.raises(ValueError, match="kind"):
        tokenizer_from_dict({"kind": "sentencepiece"})


def test_get_tokenizer_specs(tmp_path):
    assert isinstance(get_tokenizer("bytes"), ByteTokenizer)
    with pytest.raises(ValueError, match="train_text"):
        get_tokenizer("bpe:300")
    with pytest.raises(ValueError, match="bpe:<vocab_size>"):
        get_tokenizer("bpe:many", train_text=TEXT)
    with pytest.raises(ValueError, match=">= 257"):
        get_tokenizer("bpe:100", train_text=TEXT)
    # save_dir: trained once, then loaded without training text
    first = get_tokenizer("bpe:300", train_text=TEXT, save_dir=tmp_path / "t")
    second = get_tokenizer("bpe:300", save_dir=tmp_path / "t")
    assert second.fingerprint == first.fingerprint


def test_pretrained_name_offline_gives_clear_error():
    import huggingface_hub.constants as hc

    if not hc.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE was not set before huggingface_hub was imported")
    with pytest.raises(FileNotFoundError, match="bert-base-cased.*local directory"):
        get_tokenizer("bert-base-cased")


# --- clear errors at the public entry -----------------------------------------------------------

def test_byte_decode_checks_ids():
    import torch

    tok = ByteTokenizer()
    assert tok.decode(np.array([104, 105], dtype=np.uint16)) == "hi"
    assert tok.decode(torch.tensor([104, 105])) == "hi"
    assert tok.decode([np.uint16(104), 105]) == "hi"           # numpy ints count as ints
    assert tok.decode([]) == ""
    for bad in ([300], [256], [-1]):
        with pytest.raises(ValueError, match=r"ids must lie in \[0, vocab_size=256\)"):
            tok.decode(bad)
    for bad in ([104.7], [True], np.array([1.5]), [[104]], 104, "hi"):
        with pytest.raises(TypeError, match="ids"):
            tok.decode(bad)


def test_hf_decode_checks_ids():
    tok = train_bpe(TEXT, 300)
    V = tok.vocab_size
    assert tok.decode([V - 1]) != ""
    for bad in ([99999], [V], [-1]):                # were "" and OverflowError
        with pytest.raises(ValueError, match=rf"ids must lie in \[0, vocab_size={V}\)"):
            tok.decode(bad)
    with pytest.raises(TypeError, match="ids"):
        tok.decode([1.0])


def test_tokenizer_from_dict_bad_entries():
    with pytest.raises(TypeError, match="must be a dict"):
        tokenizer_from_dict(None)
    with pytest.raises(ValueError, match="tokenizer_json"):
        tokenizer_from_dict({"kind": "hf", "name": "x"})
    with pytest.raises(ValueError, match="not a valid tokenizer.json"):
        tokenizer_from_dict({"kind": "hf", "name": "x", "tokenizer_json": "not json"})


def test_get_tokenizer_refuses_a_save_dir_of_another_spec(tmp_path):
    bpe = train_bpe(TEXT, 300)
    bpe.save(tmp_path / "bpe")
    ByteTokenizer().save(tmp_path / "bytes")
    with pytest.raises(ValueError, match=r"save_dir .*bpe'.* holds tokenizer 'bpe:300' .*'bpe:8192'"):
        get_tokenizer("bpe:8192", save_dir=tmp_path / "bpe")
    with pytest.raises(ValueError, match=r"holds tokenizer 'bytes' .*'bpe'"):
        get_tokenizer("bpe", train_text=TEXT, save_dir=tmp_path / "bytes")
    assert get_tokenizer("bpe:300", save_dir=tmp_path / "bpe").fingerprint == bpe.fingerprint
    assert os.listdir(tmp_path / "bytes") == ["minecp_tokenizer.json"]     # nothing overwritten
