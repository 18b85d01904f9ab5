"""Lines, strips and images: which window positions are loss targets, training curves, a cost
against sequence length (log-log) and small RGB images.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import matplotlib.pyplot as plt
import numpy as np
import torch

from ._axes import DPI, _new_axes, _to_numpy
from .style import model_color


# ------------------------------------------------------------------------------ strips
def plot_loss_positions(targets: Mapping[str, object], ax=None, figsize=(6.0, 1.6)):
    """Which positions of a window are training targets, one row per model.

    Args:
        targets: {model name: bool [N]} (True = the prediction made at this position is
            scored by the loss).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    names = list(targets)
    rows = np.stack([_to_numpy(targets[n]).astype(bool) for n in names])
    created = ax is None
    fig, ax = _new_axes(ax, (figsize[0], 0.45 * len(names) + 0.9))
    ax.imshow(rows, cmap=matplotlib.colors.ListedColormap(["#f4f4f4", "#d35400"]), vmin=0, vmax=1,
              interpolation="nearest", aspect="auto")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("input position (orange = its prediction is in the loss)")
    for i, n in enumerate(names):
        ax.text(rows.shape[1] - 0.5, i, f"  {int(rows[i].sum())} targets", va="center", fontsize=8)
    return fig if created else ax


def plot_curves(curves: Mapping[str, Sequence[float]], ax=None, *, x: Sequence[float] | None = None,
                xlabel: str = "optimizer step", ylabel: str = "training loss (nats / token)",
                title: str | None = None, smooth: int = 1, hline: float | None = None, hline_label: str = "",
                colors: Mapping[str, str] | None = None, figsize=(4.6, 3.0)):
    """Training curves (or any family of lines over a common x), one line per name.

    Args:
        curves: {name: values per step}.
        x: x values shared by all lines (default: steps 1, 2, ...).
        smooth: moving-average window (steps) to calm noisy curves; 1 = raw.
        hline: draw a horizontal reference line (e.g. ln V, the loss of a uniform guess).
        colors: optional {name: matplotlib colour}; by default a model's course colour
            (:data:`minecp.viz.MODEL_COLORS`, matched by :func:`minecp.viz.model_color`).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    for name, ys in curves.items():
        y = np.asarray(_to_numpy(ys) if isinstance(ys, torch.Tensor) else list(ys), dtype=np.float64)
        xs = np.arange(1, len(y) + 1) if x is None else np.asarray(list(x), dtype=np.float64)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            xs = xs[smooth - 1:]
        ax.plot(xs, y, label=name, color=(colors or {}).get(name, model_color(name)))
    if hline is not None:
        ax.axhline(hline, color="grey", ls=":", lw=1, label=hline_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig if created else ax


def plot_scaling(lengths: Sequence[int], series: Mapping[str, Sequence[float]], ax=None, *,
                 ylabel: str = "cost", xlabel: str = "sequence length N (tokens)", title: str | None = None,
                 colors: Mapping[str, str] | None = None, figsize=(4.2, 3.0)):
    """A cost (FLOPs, seconds, score entries...) against N on log-log axes, one line per name.

    A straight line of slope 2 is an O(N^2) cost, slope 1 a linear one.

    Args:
        colors: optional {name: matplotlib colour}; by default a model's course colour
            (:func:`minecp.viz.model_color`).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    for name, ys in series.items():
        ax.loglog(list(lengths), list(ys), marker="o", label=name,
                  color=(colors or {}).get(name, model_color(name)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    # Label only the powers of ten (minor ticks stay as unlabelled marks) so that log-axis
    # labels never run into each other ...
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    # ... except a short list of lengths (usually powers of two, within one or two decades,
    # where powers of ten would leave the x axis with one label or none): label those.
    xs = sorted(set(int(n) for n in lengths))
    if 1 < len(xs) <= 8:
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(xs, [f"{n:,}" if n < 10**5 else f"{n:.0e}" for n in xs])
    legend_outside(ax)
    ax.grid(alpha=0.3, which="both")
    return fig if created else ax


def legend_outside(ax, fontsize: int = 8) -> None:
    """Put ``ax``'s legend to the right of the plot, where it cannot cover data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def plot_images(pixels, titles: Sequence[str] | None = None, ncols: int = 8, size: float = 1.1):
    """A row (or grid) of small RGB images, e.g. CIFAR-10 from :func:`minecp.data.load_scifar10`.

    Args:
        pixels: uint8 ``[n, 1024, 3]`` pixel sequences in raster order, or ``[n, H, W, 3]``.
        titles: one caption per image (e.g. the class names).
        ncols: images per row.
        size: inches per image.

    Returns:
        Figure with ``n`` Axes (axis ticks off: the images are 32 x 32 pixels).
    """
    px = np.asarray(pixels)
    if px.ndim == 3:  # [n, L, 3] sequences -> square images
        side = int(round(math.sqrt(px.shape[1])))
        if side * side != px.shape[1]:
            raise ValueError(f"cannot fold {px.shape[1]} pixels into a square image")
        px = px.reshape(len(px), side, side, px.shape[2])
    n = len(px)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), dpi=DPI, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            ax.imshow(px[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    return fig
