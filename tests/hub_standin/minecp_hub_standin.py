"""A stand-in for the Hugging Face Hub that answers ``datasets.load_dataset`` from parquet files.

CI has no network, yet the course must also work *online* (no data root), where minecp calls
``datasets.load_dataset(repo, config, split=...)`` on the Hub. This module replaces that one
function so that the call for the Hub datasets the course uses is answered from a hub-layout
mirror (``$MINECP_HUB_STANDIN_DIR``, e.g. the project's offline mirror) and behaves like the
Hub otherwise:

* the configs, splits and columns are the Hub's (listed in :data:`HUB`), not the mirror's:
  a config that exists only in the mirror (CIFAR-10 ``lossless_subset``) raises the
  ``ValueError`` the Hub's builder raises ("BuilderConfig 'x' not found. Available: [...]"),
  a missing config name on a repo with several configs raises "Config name is missing";
  the mirror's extra ``orig_index`` column is dropped and ``img`` is an ``Image`` feature;
* ``deepmind/pg19`` raises what ``datasets`` >= 4 raises for it (a loading-script repo);
  ``emozilla/pg19`` (its parquet copy) is served from the mirror's ``deepmind/pg19/data``;
* any other repository raises ``DatasetNotFoundError`` as for an unknown Hub dataset;
* packaged builders (``"parquet"``, ``"text"``, ...) and local paths go to the real function.

A split the Hub has but the mirror lacks (e.g. WikiText-103 raw train) raises
``FileNotFoundError`` saying so: the stand-in never invents data.

Activated either by :func:`install` (tests) or by ``sitecustomize.py`` in this folder, which
Python imports at start-up when the folder is on ``PYTHONPATH`` -- so it also reaches the
Jupyter kernels that a notebook runner starts.
"""

from __future__ import annotations

import functools
import glob
import os

ENV_DIR = "MINECP_HUB_STANDIN_DIR"

CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: What the Hub has: repo -> configs (each: splits, columns, mirror folder), or an error it raises.
HUB = {
    "Salesforce/wikitext": {
        "configs": {c: {"splits": ("train", "validation", "test"), "columns": ("text",)}
                    for c in ("wikitext-103-raw-v1", "wikitext-103-v1", "wikitext-2-raw-v1", "wikitext-2-v1")},
    },
    "uoft-cs/cifar10": {
        "configs": {"plain_text": {"splits": ("train", "test"), "columns": ("img", "label"), "image": True}},
    },
    "emozilla/pg19": {
        "configs": {"default": {"splits": ("train", "validation", "test"),
                                "columns": ("short_book_title", "publication_date", "url", "text"),
                                "folder": "deepmind/pg19/data"}},
    },
    "deepmind/pg19": {"error": (RuntimeError, "Dataset scripts are no longer supported, but found pg19.py")},
}


def _passthrough(path) -> bool:
    """True for what the real function should handle: packaged builders and local paths."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return not isinstance(path, str) or path in _PACKAGED_DATASETS_MODULES or os.path.exists(path)


def standin_load_dataset(root, original, path, name=None, *args, split=None, streaming=False, **kwargs):
    """``datasets.load_dataset`` as the Hub would answer it, from the mirror at ``root``."""
    import datasets

    if _passthrough(path):
        return original(path, name, *args, split=split, streaming=streaming, **kwargs)
    repo = HUB.get(path)
    if repo is None:
        raise datasets.exceptions.DatasetNotFoundError(
            f"Dataset '{path}' doesn't exist on the Hub or cannot be accessed. (hub stand-in)")
    if "error" in repo:
        kind, message = repo["error"]
        raise kind(message)
    configs = repo["configs"]
    if name is None:
        if len(configs) > 1:
            raise ValueError("Config name is missing.\nPlease pick one among the available configs: "
                             f"{list(configs)}\nExample of usage:\n\t`load_dataset('{path}', '{next(iter(configs))}')`")
        name = next(iter(configs))
    if name not in configs:
        raise ValueError(f"BuilderConfig '{name}' not found. Available: {list(configs)}")
    info = configs[name]
    splits = info["splits"] if split is None else (str(split),)
    for s in splits:
        if s not in info["splits"]:
            raise ValueError(f'Unknown split "{s}". Should be one of {list(info["splits"])}.')
    folder = os.path.join(root, info.get("folder", f"{path}/{name}"))
    out = {}
    for s in splits:
        files = sorted(glob.glob(os.path.join(folder, f"{s}-*.parquet")))
        if not files:
            raise FileNotFoundError(f"hub stand-in: the Hub has {path} ({name}) split {s!r}, but the mirror "
                                    f"has no {info.get('folder', f'{path}/{name}')}/{s}-*.parquet")
        ds = original("parquet", data_files={s: files}, split=s, streaming=streaming)
        ds = ds.select_columns(list(info["columns"]))
        if info.get("image"):
            ds = ds.cast_column("img", datasets.Image()).cast_column("label", datasets.ClassLabel(names=CIFAR10_LABELS))
        out[s] = ds
    if split is not None:
        return out[str(split)]
    return (datasets.IterableDatasetDict if streaming else datasets.DatasetDict)(out)


def install(datasets_module=None, root=None):
    """Replace ``datasets.load_dataset`` (and ``datasets.load.load_dataset``) by the stand-in.

    Args:
        datasets_module: the imported ``datasets`` module (default: import it).
        root: the mirror (default ``$MINECP_HUB_STANDIN_DIR``).

    Returns:
        the original ``load_dataset`` (to restore it).

    Raises:
        ValueError: no root given and ``$MINECP_HUB_STANDIN_DIR`` unset or not a folder.
    """
    if datasets_module is None:
        import datasets as datasets_module
    root = root or os.environ.get(ENV_DIR)
    if not root or not os.path.isdir(root):
        raise ValueError(f"hub stand-in: set ${ENV_DIR} to a hub-layout mirror folder, got {root!r}")
    original = getattr(datasets_module.load_dataset, "__wrapped_original__", datasets_module.load_dataset)
    fn = functools.partial(standin_load_dataset, os.path.abspath(root), original)
    fn.__wrapped_original__ = original
    datasets_module.load_dataset = fn
    datasets_module.load.load_dataset = fn
    return original
