"""Explorers: ipywidgets sliders that redraw a figure, plus a static figure that renders
without a kernel. ipywidgets (a dev dependency) is imported only when an explorer is built.
"""

from __future__ import annotations

from typing import Callable, Sequence

import matplotlib
import matplotlib.pyplot as plt
import torch

from .attention import _layer_labels, plot_attention
from .masks import plot_mask


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
