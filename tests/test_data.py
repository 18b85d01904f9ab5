"""minecp.data: offline loading through the hub-layout mirror, caches, copy task, batching.

Data root: $MINECP_DATA_DIR if set, else ../shared/data/hf next to the repository; tests
that need it are skipped (with the reason) when it is absent. Caches go to tmp_path.
"""

import os


import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

import minecp.data.corpus as corpus_mod  # noqa: E402
from minecp.data import (  # noqa: E402
    ByteTokenizer,
    copy_task_batch,
    image_tokens,
    load_corpus,
    load_scifar10,
    load_text,
    random_windows,
    text_stats,
)

DATA_ROOT = Path(os.environ.get("MINECP_DATA_DIR") or ROOT.parent / "shared" / "data" / "hf")
needs_data = pytest.mark.skipif(not (DATA_ROOT / "Salesforce").is_dir(),
                                reason=f"offline data root {DATA_ROOT} not found (set MINECP_DATA_DIR)")

# sha256 of the original wiki.{valid,test}.raw files (shared/data/wikitext-103/PROVENANCE.md)
WT_VALID_SHA = "4cd0f6876d07a413aa911261ff6d363c72d757d47f0fdd6015702014c89cb9c7"
WT_TEST_SHA = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"


def _pq_column(relpath, column):
    import pyarrow.parquet as pq

    return pq.read_table(DATA_ROOT / relpath, columns=[column]).column(column).to_pylist()


# ------------------------------------------------------------------------ text corpora
@needs_data
def test_wikitext103_test_rebuilds_the_original_file(tmp_path):
    c = load_corpus("wikitext-103", "test", tokenizer="bytes", data_dir=DATA_ROOT, cache_dir=tmp_path)
    text = c.text
    assert hashlib.sha256(text.encode()).hexdigest() == WT_TEST_SHA
    assert (c.num_bytes, c.num_words) == (1_290_590, 241_211)  # published counts
    assert c.num_words + text.count("\n") == 245_569  # + one <eos> per line convention
    assert isinstance(c.ids, np.memmap) and c.ids.dtype == np.uint16 and len(c) == c.num_bytes
    assert bytes(np.asarray(c.ids[:40], dtype=np.uint8)) == text.encode()[:40]
    assert text.startswith(" \n = Robert Boulter = \n \n")


@needs_data
def test_wikitext2_validation_falls_back_to_identical_wt103(tmp_path):
    c = load_corpus("wikitext-2", "validation", tokenizer="bytes", data_dir=DATA_ROOT, cache_dir=tmp_path)
    assert hashlib.sha256(c.text.encode()).hexdigest() == WT_VALID_SHA
    assert (c.num_bytes, c.num_words) == (1_146_846, 213_886)
    assert "wikitext-103-raw-v1" in c.source


@needs_data
def test_wikitext103_train_offline_is_the_tokenized_prefix_with_warning(tmp_path):
    with pytest.warns(UserWarning, match=r"0\.5 % prefix"):
        c = load_corpus("wikitext-103", "train", tokenizer="bytes", data_dir=DATA_ROOT, cache_dir=tmp_path)
    assert "0.5 % prefix" in c.note and "wikitext-103-v1" in c.source
    assert c.text.startswith(" \n = Valkyria Chronicles III = \n")
    assert "<unk>" in c.text
    assert c.num_words == sum(len(r.split()) for r in _pq_column(
        "Salesforce/wikitext/wikitext-103-v1/train-00000-of-00001.parquet", "text"))


@needs_data
def test_pg19_max_books_joins_books_with_blank_line(tmp_path):
    books = _pq_column("deepmind/pg19/data/validation-00000-of-00001.parquet", "text")
    one = load_text("pg19", "validation", data_dir=DATA_ROOT, cache_dir=tmp_path, max_books=1)
    assert one == books[0]
    c = load_corpus("pg19", "validation", tokenizer="bytes", data_dir=DATA_ROOT, cache_dir=tmp_path, max_books=2)
    expected = books[0] + "\n\n" + books[1]
    assert c.text == expected
    assert c.num_bytes == len(expected.encode()) and c.num_words == len(expected.split())
    assert c.num_chars == len(expected) and c.num_bytes > c.num_chars  # curly quotes are multi-byte
    with pytest.raises(ValueError, match="max_books"):
        load_corpus("wikitext-103", "test", tokenizer="bytes", data_dir=DATA_ROOT, max_books=3)


def test_bpe_trained_on_train_split_and_cached(tmp_path, monkeypatch):
    f = tmp_path / "small.txt"
    f.write_text(("the cat sat on the mat. " * 20 + "\n") * 50, encoding="utf-8")
    c1 = load_corpus(f"text:{f}", "train", tokenizer="bpe:300", cache_dir=tmp_path / "c")
    assert c1.tokenizer.name == "bpe300" and len(c1) < c1.num_bytes / 3
    assert c1.tokenizer.decode(c1.ids) == c1.text
    tok_dirs = list((tmp_path / "c").glob("text-small/tokenizer-bpe300-*"))
    assert len(tok_dirs) == 1 and (tok_dirs[0] / "tokenizer.json").is_file()

    def no_training(*a, **k):
        raise AssertionError("BPE retrained although it is cached")

    monkeypatch.setattr("minecp.tokenizer.train_bpe", no_training)
    c2 = load_corpus(f"text:{f}", "train", tokenizer="bpe:300", cache_dir=tmp_path / "c")
    assert c2.tokenizer.fingerprint == c1.tokenizer.fingerprint and np.array_equal(c2.ids, c1.ids)


# ------------------------------------------------------------------------------ errors
def test_missing_split_in_data_root_names_both_remedies(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_corpus("wikitext-103", "test", tokenizer="bytes", data_dir=tmp_path, cache_dir=tmp_path)
    msg = str(e.value)
    assert "MINECP_DATA_DIR" in msg and "online" in msg
    assert str(tmp_path / "Salesforce/wikitext/wikitext-103-raw-v1/test-*.parquet") in msg
    assert "load_dataset('Salesforce/wikitext', 'wikitext-103-raw-v1', split='test')" in msg


def test_no_network_and_no_data_root_names_both_remedies(tmp_path, monkeypatch):
    import datasets

    monkeypatch.delenv("MINECP_DATA_DIR", raising=False)

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FileNotFoundError) as e:
        load_corpus("pg19", "validation", tokenizer="bytes", cache_dir=tmp_path, max_books=1)
    msg = str(e.value)
    assert "Hugging Face Hub" in msg and "ConnectionError" in msg
    assert "MINECP_DATA_DIR" in msg and "online" in msg and "deepmind/pg19/data/validation-*.parquet" in msg


def test_bad_names_and_splits():
    with pytest.raises(ValueError, match="wikitext-103"):
        load_corpus("wikitext-104", "test", tokenizer="bytes")
    with pytest.raises(ValueError, match="split must be one of"):
        load_corpus("wikitext-103", "valid", tokenizer="bytes")


def test_text_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_corpus(f"text:{missing}", tokenizer="bytes", cache_dir=tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt.*is empty"):
        load_corpus(f"text:{empty}", tokenizer="bytes", cache_dir=tmp_path)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt.*not valid UTF-8 \(byte 3"):
        load_corpus(f"text:{latin}", tokenizer="bytes", cache_dir=tmp_path)


def test_text_file_counts_and_ids(tmp_path):
    f = tmp_path / "known.txt"
    f.write_text("héllo wörld\n  two\tspaces \n\nend", encoding="utf-8")
    c = load_corpus(f"text:{f}", tokenizer="bytes", cache_dir=tmp_path)
    assert c.num_chars == 30 and c.num_bytes == 32 and c.num_words == 5  # é, ö: 2 bytes each
    assert c.ids.tolist() == list(f.read_bytes())
    assert text_stats("a b\nc") == {"num_bytes": 5, "num_words": 3, "num_chars": 5}


# ------------------------------------------------------------------------------- cache
def test_second_load_hits_the_memmap_cache(tmp_path, monkeypatch):
    f = tmp_path / "doc.txt"
    f.write_text("one two three\n" * 100, encoding="utf-8")
    calls = {"encode": 0, "read": 0}

    class CountingBytes(ByteTokenizer):
        def encode(self, text):
            calls["encode"] += 1
            return super().encode(text)

    real_read = corpus_mod.read_text

    def counting_read(src):
        calls["read"] += 1
        return real_read(src)

    monkeypatch.setattr(corpus_mod, "read_text", counting_read)
    cache = tmp_path / "cache"
    a = load_corpus(f"text:{f}", tokenizer=CountingBytes(), cache_dir=cache)
    npys = list(cache.rglob("*.npy"))
    assert calls == {"encode": 1, "read": 1} and len(npys) == 1
    mtime = npys[0].stat().st_mtime_ns
    b = load_corpus(f"text:{f}", tokenizer=CountingBytes(), cache_dir=cache)
    assert calls == {"encode": 1, "read": 1}  # neither re-read nor re-tokenized
    assert npys[0].stat().st_mtime_ns == mtime
    assert isinstance(b.ids, np.memmap) and np.array_equal(a.ids, b.ids) and b.num_words == 300
    assert not list(cache.rglob("*.tmp*"))  # atomic writes leave no temp files
    # editing the file changes its source tag: rebuilt, not served stale
    f.write_text("changed\n", encoding="utf-8")
    c = load_corpus(f"text:{f}", tokenizer=CountingBytes(), cache_dir=cache)
    assert calls == {"encode": 2, "read": 2} and c.text == "changed\n"


# ------------------------------------------------------------------------------ images
@needs_data
def test_scifar10_lossless_pixels_are_exact(tmp_path):
    from PIL import Image

    px, lab = load_scifar10("test", data_dir=DATA_ROOT, cache_dir=tmp_path, config="lossless_subset", max_images=8)
    assert px.shape == (8, 1024, 3) and px.dtype == np.uint8 and lab.dtype == np.int64
    imgs = _pq_column("uoft-cs/cifar10/lossless_subset/test-00000-of-00001.parquet", "img")[:8]
    ref = np.stack([np.asarray(Image.open(io.BytesIO(i["bytes"])).convert("RGB")) for i in imgs])  # [8,32,32,3]
    assert np.array_equal(px, ref.reshape(8, 1024, 3))
    assert np.array_equal(px[:, 32 * 5 + 7], ref[:, 5, 7])  # raster order: pixel (row 5, col 7)
    assert lab.tolist() == _pq_column("uoft-cs/cifar10/lossless_subset/test-00000-of-00001.parquet", "label")[:8]
    # second call: memmapped cache
    px2, _ = load_scifar10("test", data_dir=DATA_ROOT, cache_dir=tmp_path, config="lossless_subset", max_images=8)
    assert isinstance(px2, np.memmap) and np.array_equal(px2, px)


@needs_data
def test_scifar10_plain_text_jpeg_is_close_to_lossless(tmp_path):
    jpg, jlab = load_scifar10("test", data_dir=DATA_ROOT, cache_dir=tmp_path, max_images=2)
    orig = _pq_column("uoft-cs/cifar10/plain_text/test-00000-of-00001.parquet", "orig_index")[:2]
    exact, elab = load_scifar10("test", data_dir=DATA_ROOT, cache_dir=tmp_path, config="lossless_subset",
                                max_images=max(orig) + 1)
    for k, o in enumerate(orig):
        assert jlab[k] == elab[o]
        err = np.abs(jpg[k].astype(int) - exact[o].astype(int)).mean()
        assert err < 8, err  # quality-75 JPEG: small error, same image and orientation


def test_image_tokens_rgb_and_gray():
    px = np.zeros((1, 1024, 3), np.uint8)
    px[0, :4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]
    rgb = image_tokens(px, "rgb")
    assert rgb.shape == (1, 3072) and rgb[0, :6].tolist() == [255, 0, 0, 0, 255, 0]
    gray = image_tokens(px, "gray")
    assert gray.shape == (1, 1024) and gray[0, :5].tolist() == [76, 150, 29, 255, 0]
    with pytest.raises(ValueError, match="mode"):
        image_tokens(px, "hsv")


# --------------------------------------------------------------------- copy + batching
def test_copy_task_windows_and_mask():
    x, m = copy_task_batch(4, 10, vocab_size=7, generator=123)
    assert x.shape == m.shape == (4, 10) and x.dtype == torch.int64 and m.dtype == torch.bool
    assert torch.equal(x[:, 5:], x[:, :5])
    assert not m[:, :5].any() and m[:, 5:].all()
    assert 0 <= int(x.min()) and int(x.max()) < 7
    y, _ = copy_task_batch(4, 10, vocab_size=7, generator=123)
    z, _ = copy_task_batch(4, 10, vocab_size=7, generator=124)
    assert torch.equal(x, y) and not torch.equal(x, z)
    with pytest.raises(ValueError, match="even"):
        copy_task_batch(2, 9)


def test_random_windows_are_slices_and_resumable():
    ids = np.arange(1000, dtype=np.uint16)
    g = torch.Generator().manual_seed(0)
    w = random_windows(ids, 6, 17, g)
    assert w.shape == (6, 17) and w.dtype == torch.int64
    assert torch.equal(w - w[:, :1], torch.arange(17).expand(6, 17))  # consecutive tokens
    assert int(w.max()) <= 999
    state = g.get_state()
    nxt = random_windows(ids, 6, 17, g)
    g2 = torch.Generator()
    g2.set_state(state)  # restored from a checkpoint
    assert torch.equal(random_windows(ids, 6, 17, g2), nxt)
    assert random_windows(ids, 2, 1000).shape == (2, 1000)  # the whole stream fits exactly
    with pytest.raises(ValueError, match="window_len"):
        random_windows(ids, 2, 1001)


@pytest.mark.parametrize("args, message", [
    ((np.arange(100.0), 2, 5), "ids must be a 1-D array of integer token ids"),
    ((np.zeros((4, 25), np.int64), 2, 5), "ids must be a 1-D array"),
    ((np.arange(100), 2.0, 5), "batch_size must be an int, got 2.0"),
    ((np.arange(100), 2, None), "window_len must be an int, got None"),
    ((np.arange(100), True, 5), "batch_size must be an int, got True"),
    ((np.arange(100), 0, 5), "need batch_size >= 1"),
    ((np.arange(100), 2, 5, True), "generator must be None or a torch.Generator, got True"),
])
def test_random_windows_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        random_windows(*args)


def test_random_windows_accepts_a_list():
    ids = list(range(50))
    w = random_windows(ids, 3, 7, torch.Generator().manual_seed(0))
    assert torch.equal(w, random_windows(np.arange(50), 3, 7, torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("args, kwargs, message", [
    ((2.0, 10), {}, "batch_size must be an int >= 1, got 2.0"),
    ((2, 10.0), {}, "seq_len must be an even int >= 2, got 10.0"),
    ((2, 10), dict(vocab_size=8.0), "vocab_size must be an int >= 2"),
    ((2, 10), dict(vocab_size=1), "vocab_size must be an int >= 2 .the copy task needs 2 symbols., got 1"),
    ((2, 10), dict(generator=True), "generator must be a torch.Generator, an int seed or None, got True"),
    ((2, 10), dict(generator="7"), "generator must be"),
])
def test_copy_task_rejects_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        copy_task_batch(*args, **kwargs)


def test_load_corpus_rejects_bad_names_and_splits(tmp_path):
    with pytest.raises(ValueError, match="name must be a str"):
        load_corpus(None, tokenizer="bytes", cache_dir=tmp_path)
    f = tmp_path / "notes.txt"
    f.write_text("some text\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'validation', 'test'\), got 'bogus-split'"):
        load_corpus(f"text:{f}", "bogus-split", tokenizer="bytes", cache_dir=tmp_path)
    assert not (tmp_path / "text-notes").exists(), "rejected before anything is cached"


def test_image_tokens_rejects_float_and_out_of_range_pixels():
    px = np.zeros((1, 1024, 3), np.int64)
    px[0, 0] = [255, 128, 0]
    assert image_tokens(px, "gray").tolist() == image_tokens(px.astype(np.uint8), "gray").tolist()
    with pytest.raises(ValueError, match="pixels must be integers in \\[0, 255\\] \\(uint8\\), got dtype float64"):
        image_tokens(px.astype(np.float64) * 300 / 255, "rgb")
    px[0, 1] = [300, 0, 0]
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 255\], got values in \[0, 300\]"):
        image_tokens(px, "gray")
