"""Masks and heatmaps: a bool visibility mask [Tq, Tk], and any 2-D array with a colour bar.

Conventions: a mask is True where query i (row) sees key j (column), as in
:mod:`minecp.masks`; positions are absolute positions inside the window (0-based).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib
import numpy as np

from ._axes import _grid, _new_axes, _to_numpy

_SEEN_CMAP = matplotlib.colors.ListedColormap(["#f4f4f4", "#2b5d8a"])


def _borders(ax, positions: Sequence[float], n_q: int, n_k: int, q_offset: int, k_offset: int,
             color: str, style: str) -> None:
    """Lines at absolute positions (drawn between cells) on both axes where they fall inside."""
    for p in positions:
        x, y = p - k_offset - 0.5, p - q_offset - 0.5
        if 0 < x < n_k:
            ax.axvline(x, color=color, lw=1, ls=style)
        if 0 < y < n_q:
            ax.axhline(y, color=color, lw=1, ls=style)


# -------------------------------------------------------------------------------- masks
def plot_mask(mask, ax=None, title: str | None = None, *, context_len: int | None = None,
              segment_len: int | None = None, q_offset: int = 0, k_offset: int = 0,
              figsize=(3.0, 3.0)):
    """Draw a bool visibility mask: dark cell = query row i sees key column j.

    Args:
        mask: bool tensor/array [Tq, Tk] (e.g. :func:`minecp.masks.mask_matrix`).
        ax: draw into this Axes (default: a new figure).
        title: axes title.
        context_len: C; a solid red line marks the context/latent border.
        segment_len: a dashed grey line at every multiple of it (segment borders).
        q_offset, k_offset: absolute position of the first query row / key column (for
            masks of a slice, e.g. PerceiverAR's latent queries start at C).
        figsize: inches, when a new figure is created.

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    m = _to_numpy(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D [Tq, Tk], got shape {m.shape}")
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    n_q, n_k = m.shape
    ax.imshow(m, cmap=_SEEN_CMAP, vmin=0, vmax=1, interpolation="nearest",
              extent=(-0.5, n_k - 0.5, n_q - 0.5, -0.5))
    if segment_len:
        end = max(n_q + q_offset, n_k + k_offset)
        _borders(ax, range(segment_len, end, segment_len), n_q, n_k, q_offset, k_offset, "#888888", "--")
    if context_len:
        _borders(ax, [context_len], n_q, n_k, q_offset, k_offset, "#c0392b", "-")
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    if q_offset or k_offset or max(n_q, n_k) <= 16:
        step = max(1, math.ceil(max(n_q, n_k) / 8))
        ax.set_xticks(np.arange(0, n_k, step), [str(k + k_offset) for k in range(0, n_k, step)])
        ax.set_yticks(np.arange(0, n_q, step), [str(q + q_offset) for q in range(0, n_q, step)])
    if title:
        ax.set_title(title, fontsize=9)
    return fig if created else ax


def plot_masks(masks: Mapping[str, object], ncols: int | None = None, size: float = 2.6, **kwargs):
    """Several masks side by side, one Axes each, titled by the dict keys.

    Args:
        masks: {title: bool [Tq, Tk]}; values may also be ``(mask, {plot_mask kwargs})``.
        ncols: columns of the grid (default: all in one row).
        size: inches per panel.
        **kwargs: passed to every :func:`plot_mask` call (e.g. ``context_len``).

    Returns:
        Figure with ``len(masks)`` visible Axes.
    """
    n = len(masks)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = _grid(nrows, ncols, size)
    for ax, (title, m) in zip(axes.flat, masks.items()):
        extra = dict(kwargs)
        if isinstance(m, tuple):
            m, more = m
            extra.update(more)
        plot_mask(m, ax=ax, title=title, **extra)
    for ax in list(axes.flat)[n:]:
        ax.remove()
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ heatmaps
def plot_matrix(matrix, ax=None, title: str | None = None, *, xlabel: str = "", ylabel: str = "",
                cmap: str = "viridis", centered: bool = False, log: bool = False, colorbar: str | None = None,
                figsize=(3.4, 3.0)):
    """Any 2-D array as a heatmap with labelled axes and an optional colour bar.

    Args:
        matrix: [R, K] tensor/array.
        centered: symmetric colour range around 0 with a diverging colour map (for
            differences such as "weight after - weight before").
        log: colour by log10 of the (positive) values; zeros are left white.
        colorbar: colour bar label (with units); None draws no colour bar.

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    m = _to_numpy(matrix).astype(np.float64)
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    kw = dict(cmap=cmap, interpolation="nearest", aspect="auto")
    if centered:
        lim = float(np.abs(m).max()) or 1.0
        kw.update(cmap="RdBu_r", vmin=-lim, vmax=lim)
    if log:
        with np.errstate(divide="ignore"):
            m = np.where(m > 0, np.log10(np.where(m > 0, m, 1.0)), np.nan)
    im = ax.imshow(m, **kw)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar is not None:
        fig.colorbar(im, ax=ax, label=colorbar, shrink=0.8)
    return fig if created else ax


def plot_matrices(matrices: Mapping[str, object], ncols: int | None = None, size: float = 2.6,
                  suptitle: str | None = None, **kwargs):
    """Several 2-D arrays side by side (a grid), one :func:`plot_matrix` panel each.

    Args:
        matrices: {panel title: [R, K] array}.
        ncols: columns of the grid (default: all in one row).
        size: inches per panel.
        **kwargs: passed to every :func:`plot_matrix` call (``xlabel``, ``log``, ``colorbar``...).

    Returns:
        Figure with ``len(matrices)`` panels (plus colour bars if requested).
    """
    n = len(matrices)
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = _grid(nrows, ncols, size, aspect=1.15 if kwargs.get("colorbar") else 1.0)
    for i, (ax, (title, m)) in enumerate(zip(axes.flat, matrices.items())):
        plot_matrix(m, ax=ax, title=title, **kwargs)
        if i % ncols:
            ax.set_ylabel("")
        if i < n - ncols:
            ax.set_xlabel("")
    for ax in list(axes.flat)[n:]:
        ax.remove()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
