"""Attention maps: one map of attention probabilities [Tq, Tk], and a layers x heads grid of
the maps :func:`minecp.attention.record_attention` collects, with token labels on the axes.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ._axes import _grid, _new_axes, _to_numpy


def _label_ticks(ax, labels: Sequence[str] | None, axis: str, max_labels: int = 48) -> None:
    """Put token labels on an axis if there are few enough to read; else leave numbers.

    The font size follows the space per label (4 to 9 points); single characters stay upright.
    """
    if labels is None or len(labels) > max_labels:
        return
    shown = [_visible(t) for t in labels]
    ticks = np.arange(len(labels))
    pos = ax.get_position()
    width, height = ax.figure.get_size_inches()
    length_pt = (pos.width * width if axis == "x" else pos.height * height) * 72
    size = float(np.clip(0.85 * length_pt / max(1, len(labels)), 4, 9))
    if axis == "x":
        upright = all(len(t) <= 2 for t in shown)
        ax.set_xticks(ticks, shown, rotation=0 if upright else 90, fontsize=size)
    else:
        ax.set_yticks(ticks, shown, fontsize=size)


def _visible(token: str) -> str:
    """A token as a tick label: spaces shown as the open-box sign, newlines as a return sign."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5") or "\u2205"


def _position_ticks(ax, n: int, offset: int, axis: str) -> None:
    """About 5 ticks labelled with absolute positions ``offset .. offset + n - 1``."""
    step = max(1, math.ceil(n / 5))
    ticks = np.arange(0, n, step)
    labels = [str(t + offset) for t in ticks]
    (ax.set_xticks if axis == "x" else ax.set_yticks)(ticks, labels)


def plot_attention(probs, ax=None, title: str | None = None, *, q_labels: Sequence[str] | None = None,
                   k_labels: Sequence[str] | None = None, q_offset: int = 0, k_offset: int = 0,
                   colorbar: bool = True, max_labels: int = 48, figsize=(3.6, 3.2)):
    """One attention map: row i = how query i spreads its attention over the keys.

    Args:
        probs: [Tq, Tk] attention probabilities (rows sum to 1).
        q_labels, k_labels: token strings for the rows / columns (shown if at most
            ``max_labels`` of them; otherwise the axes show positions).
        q_offset, k_offset: absolute position of the first query / key (tick labels).

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    p = _to_numpy(probs)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D [Tq, Tk], got shape {p.shape}")
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    im = ax.imshow(p, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    _position_ticks(ax, p.shape[1], k_offset, "x")
    _position_ticks(ax, p.shape[0], q_offset, "y")
    _label_ticks(ax, k_labels, "x", max_labels)
    _label_ticks(ax, q_labels, "y", max_labels)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        fig.colorbar(im, ax=ax, label="attention probability", shrink=0.8)
    return fig if created else ax


def _layer_labels(tokens, n_q: int, n_k: int, window_len: int | None = None):
    """Token labels and first absolute positions for a map whose queries / keys are the
    last n_q / n_k positions of a window of ``window_len`` (default ``len(tokens)``)."""
    n = window_len if window_len is not None else (len(tokens) if tokens is not None else None)
    q_off = n - n_q if n is not None and n_q <= n else 0
    k_off = n - n_k if n is not None and n_k <= n else 0
    if tokens is None:
        return None, None, q_off, k_off
    tokens = list(tokens)
    k = tokens[-n_k:] if n_k <= len(tokens) else None
    q = tokens[-n_q:] if n_q <= len(tokens) else None
    return q, k, q_off, k_off


def plot_attention_grid(maps: Sequence[torch.Tensor], *, batch_index: int = 0,
                        layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                        tokens: Sequence[str] | None = None, window_len: int | None = None,
                        size: float = 2.3, max_labels: int = 24, suptitle: str | None = None):
    """A grid of attention maps: one row per layer, one column per head.

    Args:
        maps: what :func:`minecp.attention.record_attention` collected: one tensor
            [B, H, Tq, Tk] per layer. Layers may have different Tq, Tk (PerceiverAR's first
            layer is [M, N], the others [M, M]).
        batch_index: which sequence of the batch.
        layers, heads: 0-based indices to show (default: all).
        tokens: token strings of the window; a layer's queries and keys are labelled
            with the *last* Tq / Tk of them (true for every model in minecp except the
            compressed slots of the compressed-context model — pass None there).
        window_len: N, to number the axes with absolute positions (the queries / keys
            of a layer are taken to be the last Tq / Tk positions); default ``len(tokens)``.
        size: inches per panel.
        max_labels: show token labels only on maps with at most this many rows / columns.

    Returns:
        Figure with ``len(layers) * len(heads)`` Axes.
    """
    if not maps:
        raise ValueError("maps is empty: run the model inside `with record_attention() as maps:`")
    layers = list(range(len(maps))) if layers is None else list(layers)
    n_heads = maps[0].shape[1]
    heads = list(range(n_heads)) if heads is None else list(heads)
    fig, axes = _grid(len(layers), len(heads), size)
    for r, layer in enumerate(layers):
        m = maps[layer][batch_index]
        n_q, n_k = m.shape[-2:]
        q_lab, k_lab, q_off, k_off = _layer_labels(tokens, n_q, n_k, window_len)
        for c, head in enumerate(heads):
            ax = axes[r, c]
            plot_attention(m[head], ax=ax, colorbar=False, q_labels=q_lab, k_labels=k_lab, q_offset=q_off,
                           k_offset=k_off, max_labels=max_labels, title=f"layer {layer + 1}, head {head + 1}")
            if c:
                ax.set_ylabel("")
            if r != len(layers) - 1:
                ax.set_xlabel("")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    # One colour bar for the whole grid: every panel uses the same scale (probability 0..1).
    fig.colorbar(axes[0, 0].images[0], ax=axes.ravel().tolist(), label="attention probability", shrink=0.8)
    return fig
