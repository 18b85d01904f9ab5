"""Plotting helpers shared by the course notebooks.

Every helper draws with matplotlib, returns the ``Figure`` (or ``Axes`` when it was
handed one) and never calls ``plt.show()``; the inline backend shows the figure once at the
end of the cell. In notebooks, *assign* the result (``fig = viz.plot_mask(...)``) rather than
relying on a trailing ``;``: nbval executes cells with ``store_history=False``, and then
IPython cannot see the ``;`` and displays the returned figure a second time, so the stored
and the re-computed outputs differ. Sizes are small and the dpi modest so that stored
notebooks stay light.

=============================  ==========================================================
helper                         draws
=============================  ==========================================================
:func:`plot_mask`              a bool visibility mask [Tq, Tk] (query rows, key columns)
:func:`plot_masks`             several masks side by side
:func:`plot_matrix`            any 2-D array as a heatmap (compression maps, influence)
:func:`plot_matrices`          several heatmaps side by side
:func:`plot_attention`         one attention-probability map [Tq, Tk]
:func:`plot_attention_grid`    a layers x heads grid of maps from ``record_attention``
:func:`plot_loss_positions`    which window positions are training targets, per model
:func:`plot_curves`            training curves (loss against step)
:func:`plot_scaling`           a cost against sequence length, log-log
:func:`plot_images`            small RGB images (CIFAR-10)
:func:`explorer`               sliders that redraw a figure (also renders statically)
:func:`attention_explorer`     :func:`explorer` over layer / head of recorded maps
:func:`rule_explorer`          :func:`explorer` over the arguments of a mask rule
=============================  ==========================================================

Two small non-drawing helpers produce data for the pictures:
:func:`influence_map` (which input tokens a layer's outputs depend on, by gradients) and
:func:`token_pieces` (how a tokenizer cuts a text).

Conventions: a mask is True where query i (row) sees key j (column), as in
:mod:`minecp.masks`; positions are absolute positions inside the window (0-based).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

#: dpi of the figures this module creates (small PNGs in the stored notebooks).
DPI = 80

_SEEN_CMAP = matplotlib.colors.ListedColormap(["#f4f4f4", "#2b5d8a"])


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.detach().cpu().numpy()
    return np.asarray(x)


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, dpi=DPI)
    return fig, ax


def _grid(n_rows: int, n_cols: int, size: float, aspect: float = 1.0):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols * aspect + 0.4, size * n_rows + 0.4),
                             dpi=DPI, squeeze=False)
    return fig, axes


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
    return fig


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
        colors: optional {name: matplotlib colour}.

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
        ax.plot(xs, y, label=name, color=(colors or {}).get(name))
    if hline is not None:
        ax.axhline(hline, color="grey", ls=":", lw=1, label=hline_label or None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig if created else ax


def plot_scaling(lengths: Sequence[int], series: Mapping[str, Sequence[float]], ax=None, *,
                 ylabel: str = "cost", xlabel: str = "sequence length N (tokens)", title: str | None = None,
                 figsize=(4.2, 3.0)):
    """A cost (FLOPs, seconds, score entries...) against N on log-log axes, one line per name.

    A straight line of slope 2 is an O(N^2) cost, slope 1 a linear one.

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    for name, ys in series.items():
        ax.loglog(list(lengths), list(ys), marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return fig if created else ax


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


# ----------------------------------------------------------------------------- explorers
def _slider(name: str, spec):
    """An int slider for a ``(min, max, step)`` tuple, a selection slider for a list."""
    import ipywidgets as widgets

    if isinstance(spec, tuple):
        lo, hi, step = spec
        return widgets.IntSlider(value=lo, min=lo, max=hi, step=step, description=name,
                                 continuous_update=False)
    options = list(spec)
    return widgets.SelectionSlider(options=options, value=options[0], description=name,
                                   continuous_update=False)


def explorer(draw: Callable[..., "matplotlib.figure.Figure"], **sliders):
    """Sliders that redraw a figure, and a static figure that renders without a kernel.

    The figure for the sliders' initial values is displayed as an ordinary image output
    (so a stored notebook shows it on GitHub or in nbviewer); with a live kernel, moving a
    slider replaces that image in place (``display(..., display_id=True)``). Without
    ipywidgets only the static figure is shown.

    Args:
        draw: ``draw(**values) -> Figure``; called with one keyword per slider.
        **sliders: name -> ``(min, max, step)`` tuple of ints for an integer slider, or
            a list of allowed values (a selection slider). The first value is the start.

    Returns:
        The ipywidgets ``HBox`` of sliders (already displayed), or None without ipywidgets.
    """
    from IPython.display import display

    try:
        controls = {name: _slider(name, spec) for name, spec in sliders.items()}
        import ipywidgets as widgets
    except ImportError:  # pragma: no cover - ipywidgets is a dev dependency
        controls, widgets = None, None

    def values():
        if controls is None:
            return {n: list(s)[0] for n, s in sliders.items()}
        return {n: w.value for n, w in controls.items()}

    fig = draw(**values())
    box = None
    if controls is not None:
        box = widgets.HBox(list(controls.values()))
        display(box)
    handle = display(fig, display_id=True)
    plt.close(fig)  # shown once, by the display above, not again by the inline backend

    def redraw(_change=None):
        new = draw(**values())
        if handle is not None:  # None outside IPython: there is no frontend to update
            handle.update(new)
        plt.close(new)

    if controls is not None:
        for w in controls.values():
            w.observe(redraw, names="value")
    return box


def attention_explorer(maps: Sequence[torch.Tensor], tokens: Sequence[str] | None = None,
                       batch_index: int = 0, window_len: int | None = None, figsize=(4.4, 3.8)):
    """:func:`explorer` with ``layer`` and ``head`` sliders over recorded attention maps.

    Args:
        maps: list of [B, H, Tq, Tk] tensors from :func:`minecp.attention.record_attention`.
        tokens: token strings of the window (see :func:`plot_attention_grid`).
        window_len: N, for absolute positions on the axes (default ``len(tokens)``).

    Returns:
        The slider box (see :func:`explorer`).
    """
    n_layers, n_heads = len(maps), maps[0].shape[1]

    def draw(layer, head):
        m = maps[layer - 1][batch_index, head - 1]
        q_lab, k_lab, q_off, k_off = _layer_labels(tokens, *m.shape, window_len)
        fig = plot_attention(m, q_labels=q_lab, k_labels=k_lab, q_offset=q_off, k_offset=k_off,
                             title=f"layer {layer}, head {head}", figsize=figsize)
        fig.tight_layout()
        return fig

    return explorer(draw, layer=(1, n_layers, 1), head=(1, n_heads, 1))


def rule_explorer(make_mask: Callable[..., object], *, title: Callable[..., str] | None = None,
                  plot_kwargs: Callable[..., dict] | None = None, figsize=(3.4, 3.4), **sliders):
    """:func:`explorer` that draws ``make_mask(**values)`` with :func:`plot_mask`.

    Args:
        make_mask: ``make_mask(**values) -> bool [Tq, Tk]``.
        title: ``title(**values) -> str`` (default: the slider values).
        plot_kwargs: ``plot_kwargs(**values) -> dict`` of extra :func:`plot_mask`
            arguments, e.g. ``segment_len`` that depends on a slider.
        **sliders: as in :func:`explorer`.

    Returns:
        The slider box (see :func:`explorer`).
    """
    def draw(**values):
        name = title(**values) if title else ", ".join(f"{k}={v}" for k, v in values.items())
        extra = plot_kwargs(**values) if plot_kwargs else {}
        fig = plot_mask(make_mask(**values), title=name, figsize=figsize, **extra)
        fig.tight_layout()
        return fig

    return explorer(draw, **sliders)


# --------------------------------------------------------------------- data for pictures
def influence_map(model: torch.nn.Module, idx: torch.Tensor, layer: int, seed: int = 0) -> torch.Tensor:
    """How strongly each output position of a layer depends on each input token.

    Entry (i, j) is ``|| d (r . h_i) / d e_j ||``: the gradient norm, with respect to the
    input embedding ``e_j`` of token j, of a fixed random projection r of the hidden
    state ``h_i`` that block ``layer`` outputs at its i-th position. Attention that a mask
    forbids has probability exactly 0, so an entry is exactly 0 when no path through the
    masks connects token j to position i, and (for a generic r) non-zero otherwise: the
    map shows how far information has travelled after ``layer`` layers.

    Args:
        model: a minecp language model (put in eval mode; dropout would add noise).
        idx: LongTensor [1, N] of token ids.
        layer: 1-based block index (1 = after the first layer).
        seed: seed of the projection r.

    Returns:
        float32 [T_out, N]: T_out is the number of positions block ``layer`` outputs
        (N for models that keep every position, M for PerceiverAR's later layers, C' + M
        for the compressed-context model's later layers).
    """
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must have shape [1, N], got {tuple(idx.shape)}")
    if not 1 <= layer <= len(model.blocks):
        raise ValueError(f"layer must be in [1, {len(model.blocks)}], got {layer}")
    captured = {}
    h_emb = model.embed.register_forward_hook(lambda m, i, out: captured.setdefault("emb", out.requires_grad_()))
    h_out = model.blocks[layer - 1].register_forward_hook(lambda m, i, out: captured.setdefault("out", out))
    try:
        with torch.enable_grad():
            model(idx)
            emb, out = captured["emb"], captured["out"]  # [1, N, d], [1, T_out, d]
            r = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(seed))
            scores = out[0] @ r.to(out)  # [T_out]
            rows = []
            for i in range(scores.shape[0]):
                (g,) = torch.autograd.grad(scores[i], emb, retain_graph=i + 1 < scores.shape[0])
                rows.append(g[0].norm(dim=-1))
    finally:
        h_emb.remove()
        h_out.remove()
    return torch.stack(rows).detach().float()


def token_pieces(tokenizer, text: str) -> list[str]:
    """The pieces a tokenizer cuts ``text`` into, as strings (one per token id).

    Byte-level pieces that are not valid UTF-8 on their own (part of a multi-byte
    character) come out as U+FFFD.
    """
    return [tokenizer.decode([int(i)]) for i in tokenizer.encode(text)]


__all__ = ["DPI", "plot_mask", "plot_masks", "plot_matrix", "plot_matrices", "plot_attention", "plot_attention_grid",
           "plot_loss_positions", "plot_curves", "plot_scaling", "plot_images", "explorer", "attention_explorer",
           "rule_explorer", "influence_map", "token_pieces"]
