"""Plumbing shared by the viz modules: the figure dpi (from :mod:`.style`), tensors as numpy arrays, a new
figure (or the Axes handed in) and a grid of Axes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .style import DPI  # noqa: F401 - the one figure resolution, defined in style


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
