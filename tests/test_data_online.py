"""minecp.data with NO data root: the online path, through the Hub stand-in (no network).

``tests/hub_standin`` answers ``datasets.load_dataset(repo, config, split=...)`` for the
course's Hub datasets from the offline mirror's parquet files and raises like the Hub for
anything else (see its docstring). The tests check that minecp's loaders, online, make the
same calls as offline and get the same text, and that the fallbacks and errors are real.

Mirror: $MINECP_HUB_STANDIN_DIR, else $MINECP_DATA_DIR, else ../shared/data/hf beside the
repository; tests are skipped (with the reason) when none exists.
"""

import hashlib
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "hub_standin"
sys.path.insert(0, str(STANDIN))

import minecp_hub_standin  # noqa: E402

from minecp.data import load_corpus, load_scifar10, load_text  # noqa: E402
from minecp.data.sources import locate_text  # noqa: E402

MIRROR = Path(os.environ.get("MINECP_HUB_STANDIN_DIR") or os.environ.get("MINECP_DATA_DIR")
              or ROOT.parent / "shared" / "data" / "hf")
pytestmark = pytest.mark.skipif(not (MIRROR / "Salesforce").is_dir(),
                                reason=f"no hub-layout mirror at {MIRROR} for the Hub stand-in")
WT_TEST_SHA = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"  # wiki.test.raw


@pytest.fixture
def hub(monkeypatch):
    """No data root; ``datasets.load_dataset`` answered by the stand-in; every call recorded."""
    import datasets

    monkeypatch.delenv("MINECP_DATA_DIR", raising=False)
    original = datasets.load_dataset
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", original)  # restored after the test
    monkeypatch.setattr(datasets.load, "load_dataset", datasets.load.load_dataset)
    minecp_hub_standin.install(datasets, root=str(MIRROR))
    standin = datasets.load_dataset

    def recorded(path, name=None, *args, **kwargs):
        calls.append((path, name, kwargs.get("split")))
        return standin(path, name, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", recorded)
    return calls


def test_wikitext_online_is_the_same_text_as_offline(hub, tmp_path):
    c = load_corpus("wikitext-103", "test", tokenizer="bytes", cache_dir=tmp_path)
    assert hub == [("Salesforce/wikitext", "wikitext-103-raw-v1", "test")]  # the one Hub call
    assert hashlib.sha256(c.text.encode()).hexdigest() == WT_TEST_SHA  # rebuilt byte for byte
    assert c.source == "wikitext-103 test: Salesforce/wikitext (wikitext-103-raw-v1), Hugging Face Hub"
    assert c.note is None  # online, train is the real raw split: no 0.5 % prefix caveat
    assert locate_text("wikitext-103", "train").note is None


def test_offline_and_online_name_the_same_split_and_print_no_paths(hub, tmp_path):
    offline = load_corpus("wikitext-103", "validation", tokenizer="bytes", data_dir=MIRROR, cache_dir=tmp_path)
    online = load_corpus("wikitext-103", "validation", tokenizer="bytes", cache_dir=tmp_path)
    assert np.array_equal(offline.ids, online.ids) and offline.num_bytes == online.num_bytes
    assert offline.source.replace("data root", "Hugging Face Hub") == online.source
    assert str(MIRROR) not in offline.source and "/" not in offline.source.split(": ")[1].replace(
        "Salesforce/wikitext", "")


def test_pg19_online_reads_the_parquet_copy_and_logs_why(hub, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="minecp.data"):
        online = load_text("pg19", "validation", max_books=2, cache_dir=tmp_path)
    # deepmind/pg19 is a loading script, refused by datasets >= 4: the parquet copy answers
    assert [c[:2] for c in hub] == [("deepmind/pg19", None), ("emozilla/pg19", None)]
    assert "Dataset scripts are no longer supported" in caplog.text and "emozilla/pg19" in caplog.text
    offline = load_text("pg19", "validation", max_books=2, data_dir=MIRROR, cache_dir=tmp_path)
    assert online == offline and online.count("\n\n") >= 1


def test_pg19_online_columns_are_the_hubs(hub):
    import datasets

    ds = datasets.load_dataset("emozilla/pg19", split="validation", streaming=True)
    assert list(ds.features) == ["short_book_title", "publication_date", "url", "text"]


def test_cifar10_lossless_subset_online_falls_back_to_plain_text(hub, tmp_path):
    with pytest.warns(UserWarning, match="no config 'lossless_subset'.*'plain_text'"):
        px, lab = load_scifar10("train", config="lossless_subset", max_images=6, cache_dir=tmp_path)
    assert hub == [("uoft-cs/cifar10", "lossless_subset", "train"), ("uoft-cs/cifar10", "plain_text", "train")]
    assert px.shape == (6, 1024, 3) and px.dtype == np.uint8
    # what was read is plain_text: the same images as plain_text offline, pixel for pixel
    ref, ref_lab = load_scifar10("train", config="plain_text", max_images=6, data_dir=MIRROR, cache_dir=tmp_path)
    assert np.array_equal(px, ref) and np.array_equal(lab, ref_lab)
    assert not list((tmp_path / "scifar10").glob("lossless_subset-*-hub*"))  # cached under plain_text


def test_cifar10_plain_text_online_asks_once_and_is_cached(hub, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Hub's own config: no fallback, no warning
        px, lab = load_scifar10("test", max_images=4, cache_dir=tmp_path)
    assert hub == [("uoft-cs/cifar10", "plain_text", "test")]
    px2, _ = load_scifar10("test", max_images=4, cache_dir=tmp_path)
    assert len(hub) == 1 and np.array_equal(px, px2)  # second call from the cache


def test_the_standin_raises_like_the_hub(hub):
    import datasets

    with pytest.raises(ValueError, match=r"BuilderConfig 'lossless_subset' not found. Available: \['plain_text'\]"):
        datasets.load_dataset("uoft-cs/cifar10", "lossless_subset", split="test", streaming=True)
    with pytest.raises(ValueError, match="Config name is missing"):
        datasets.load_dataset("Salesforce/wikitext", split="test", streaming=True)
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset("nobody/no-such-dataset", split="test", streaming=True)
    with pytest.raises(FileNotFoundError, match="mirror has no"):  # on the Hub, not in the mirror
        datasets.load_dataset("Salesforce/wikitext", "wikitext-103-raw-v1", split="train", streaming=True)


def test_unknown_repo_online_names_both_remedies(hub, tmp_path, monkeypatch):
    from minecp.data import sources

    monkeypatch.setitem(sources.TEXT_DATASETS, "nowhere",
                        sources.HubText("nobody/no-such-dataset", None, "lines"))
    with pytest.raises(FileNotFoundError) as e:
        load_text("nowhere", "test", cache_dir=tmp_path)
    msg = str(e.value)
    assert "DatasetNotFoundError" in msg and "nobody/no-such-dataset" in msg
    assert "MINECP_DATA_DIR" in msg and "online" in msg
    assert hub == [("nobody/no-such-dataset", None, "test")]


def test_sitecustomize_activates_the_standin_in_a_new_interpreter():
    """The notebooks' kernels get the stand-in through PYTHONPATH alone."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(STANDIN), str(ROOT)]),
               MINECP_HUB_STANDIN_DIR=str(MIRROR), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    env.pop("MINECP_DATA_DIR", None)
    code = ("import datasets\n"
            "ds = datasets.load_dataset('emozilla/pg19', split='validation', streaming=True)\n"
            "print(next(iter(ds))['publication_date'] > 0, datasets.load_dataset.func.__module__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "minecp_hub_standin"]


def test_hub_dataset_is_the_same_split_online_and_offline(hub):
    from minecp.data import hub_dataset

    online = list(hub_dataset("pg19", "validation").select_columns(["short_book_title", "publication_date"]).take(3))
    offline = list(hub_dataset("pg19", "validation", data_dir=MIRROR)
                   .select_columns(["short_book_title", "publication_date"]).take(3))
    assert online == offline and len(online) == 3
    with pytest.raises(ValueError, match="not 'text:"):
        hub_dataset("text:" + __file__, "validation")
