"""sCIFAR-10: CIFAR-10 images as sequences of 1,024 pixels in raster order.

Each 32x32 RGB image becomes 1,024 steps (row by row, left to right) of 3 channel values,
as in the long-sequence literature's "sequential CIFAR" (e.g. S4, Gu et al. 2022; LRA's
Image task uses the grayscale version). For a token language model, :func:`image_tokens`
turns pixels into ids with a 256-id vocabulary (the byte value of a channel or of the
gray level), the way Perceiver AR models ImageNet: one token per channel value.

Data: ``datasets.load_dataset("uoft-cs/cifar10", config, split=...)`` online (the Hub has one
config, ``plain_text``: ``img`` = encoded image, ``label`` 0..9), or the same split from a
hub-layout data root (see :mod:`minecp.data.sources`). The offline mirror stores
``plain_text`` as quality-75 JPEG (lossy; pixels differ slightly from the official
dataset) and also has ``lossless_subset`` (4,000 train / 1,000 test, exact PNG pixels),
which the Hub does not have: asked for online, it falls back to ``plain_text`` with a
warning. Decoding needs Pillow (``PIL``), which ``datasets[vision]`` also requires.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from .corpus import _atomic_save_npy, _log, default_cache_dir
from .sources import _check_split, _files_tag, hub_files, load_hub_split, missing_data_error, resolve_data_dir

CIFAR_REPO = "uoft-cs/cifar10"
CIFAR_CONFIGS = ("plain_text", "lossless_subset")  # lossless_subset: offline mirror only
SCIFAR_LEN = 1024  # pixels per image
SCIFAR_VOCAB = 256  # ids per channel value / gray level
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _decode(img) -> np.ndarray:
    """One ``img`` cell ({"bytes", "path"} or a PIL image) -> uint8 [1024, 3]."""
    from PIL import Image

    if isinstance(img, dict):
        img = Image.open(io.BytesIO(img["bytes"]) if img.get("bytes") is not None else img["path"])
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if arr.shape != (32, 32, 3):
        raise ValueError(f"expected a 32x32 image, got shape {arr.shape}")
    return arr.reshape(SCIFAR_LEN, 3)  # row-major reshape = raster order


def load_scifar10(split: str = "train", data_dir=None, cache_dir=None, config: str = "plain_text",
                  max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as pixel sequences.

    Args:
        split: ``"train"`` (50,000 images) or ``"test"`` (10,000).
        data_dir: hub-layout data root; None -> ``$MINECP_DATA_DIR`` -> the Hub.
        cache_dir: decoded arrays are cached there as ``.npy`` (see :mod:`minecp.data.corpus`).
        config: ``"plain_text"`` (the Hub config) or ``"lossless_subset"`` (offline mirror
            only; online the Hub's ``plain_text`` is read instead, with a ``UserWarning``).
        max_images: keep only the first ``max_images`` images (None = all).

    Returns:
        ``(pixels, labels)``: pixels uint8 ``[n, 1024, 3]`` (raster order, RGB, 0..255),
        labels int64 ``[n]`` in 0..9 (names in ``LABEL_NAMES``). Memory-mapped on cache hits.

    Raises:
        ValueError: bad split/config/max_images. FileNotFoundError: data unavailable (names
        both remedies). ImportError: Pillow missing.

    Warns:
        UserWarning: ``lossless_subset`` asked for online (the Hub's ``plain_text`` is used).
    """
    _check_split(split, ("train", "test"))
    if config not in CIFAR_CONFIGS:
        raise ValueError(f"config must be one of {CIFAR_CONFIGS}, got {config!r}")
    if max_images is not None and (not isinstance(max_images, int) or isinstance(max_images, bool)
                                   or max_images < 1):
        raise ValueError(f"max_images must be None or a positive int, got {max_images!r}")
    import datasets

    root = resolve_data_dir(data_dir)
    if root is not None:
        files = hub_files(root, CIFAR_REPO, config, split)
        if not files:
            raise missing_data_error("scifar10", CIFAR_REPO, "plain_text", config, split, root)
        tag = _files_tag(files)
    else:
        tag = "hub"
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    def paths(cfg):
        stem = f"{cfg}-{split}-{tag}" + ("" if max_images is None else f"-n{max_images}")
        return d / "scifar10" / f"{stem}.pixels.npy", d / "scifar10" / f"{stem}.labels.npy"

    px_path, lab_path = paths(config)
    if px_path.is_file() and lab_path.is_file():
        return np.load(px_path, mmap_mode="r"), np.load(lab_path, mmap_mode="r")

    t0 = time.perf_counter()
    try:
        if root is not None:
            ds = datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]},
                                       split=split, streaming=True)
        else:  # lossless_subset falls back to plain_text here (and warns)
            ds, (_, used) = load_hub_split([(CIFAR_REPO, config)], split)
            if used != config:
                px_path, lab_path = paths(used)  # cache what was read under its own name
        # decode=False: we get the encoded bytes and decode with PIL ourselves, identically
        # for the Hub (Image feature) and the mirror (plain struct column).
        ds = ds.select_columns(["img", "label"]).cast_column("img", datasets.Image(decode=False))
        if max_images is not None:
            ds = ds.take(max_images)
        pixels, labels = [], []
        for batch in ds.iter(batch_size=1000):
            pixels.extend(_decode(im) for im in batch["img"])
            labels.extend(batch["label"])
    except Exception as e:
        if root is not None or isinstance(e, ImportError):
            raise
        raise missing_data_error("scifar10", CIFAR_REPO, "plain_text", config, split, None,
                                 f" ({type(e).__name__}: {str(e)[:300]})") from e
    px, lab = np.stack(pixels), np.asarray(labels, dtype=np.int64)
    px_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save_npy(lab_path, lab)
    _atomic_save_npy(px_path, px)
    _log(f"decoded {len(px):,} CIFAR-10 {split} images ({config}) in {time.perf_counter() - t0:.1f} s")
    return np.load(px_path, mmap_mode="r"), np.load(lab_path, mmap_mode="r")


def image_tokens(pixels: np.ndarray, mode: str = "rgb") -> np.ndarray:
    """Pixel sequences -> token ids in ``[0, 256)``.

    Args:
        pixels: uint8 ``[n, 1024, 3]`` from :func:`load_scifar10` (any integer dtype with
            values in [0, 255] is accepted; floats are not: scale them to bytes first).
        mode: ``"rgb"``: one token per channel value, channel-interleaved raster order
            ``R0 G0 B0 R1 G1 B1 ...`` -> ``[n, 3072]``; ``"gray"``: one token per pixel,
            ITU-R BT.601 luma ``round(0.299 R + 0.587 G + 0.114 B)`` -> ``[n, 1024]``.

    Returns:
        uint8 array of ids (convert with ``torch.from_numpy(x).long()`` for a model).

    Raises:
        ValueError: bad mode, pixel shape, dtype (not integer) or value (outside [0, 255]).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[1:] != (SCIFAR_LEN, 3):
        raise ValueError(f"pixels must have shape [n, {SCIFAR_LEN}, 3], got {pixels.shape}")
    if pixels.dtype != np.uint8:
        if not np.issubdtype(pixels.dtype, np.integer):
            raise ValueError(f"pixels must be integers in [0, 255] (uint8), got dtype {pixels.dtype}")
        if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
            raise ValueError(f"pixels must lie in [0, 255], got values in [{pixels.min()}, {pixels.max()}]")
    if mode == "rgb":
        return pixels.reshape(len(pixels), SCIFAR_LEN * 3).astype(np.uint8)
    if mode == "gray":
        p = pixels.astype(np.int32)
        # Integer arithmetic keeps the rounding exact and platform independent.
        return ((299 * p[..., 0] + 587 * p[..., 1] + 114 * p[..., 2] + 500) // 1000).astype(np.uint8)
    raise ValueError(f"mode must be 'rgb' or 'gray', got {mode!r}")
