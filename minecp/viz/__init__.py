"""Plotting helpers shared by the course notebooks.

Every helper draws with matplotlib, returns the ``Figure`` (or ``Axes`` when it was
handed one) and never calls ``plt.show()``; the inline backend shows the figure once at the
end of the cell. In notebooks, *assign* the result (``fig = viz.plot_mask(...)``) rather than
relying on a trailing ``;``: nbval executes cells with ``store_history=False``, and then
IPython cannot see the ``;`` and displays the returned figure a second time, so the stored
and the re-computed outputs differ. Sizes are small and the dpi (:data:`DPI`) sharp
but light; every model has one colour across the course (:data:`MODEL_COLORS`).

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
:func:`legend_outside`         move a legend to the right of the plot, off the data
:func:`explorer`               sliders that redraw a figure (also renders statically)
:func:`attention_explorer`     :func:`explorer` over layer / head of recorded maps
:func:`rule_explorer`          :func:`explorer` over the arguments of a mask rule
=============================  ==========================================================

Two small non-drawing helpers produce data for the pictures:
:func:`influence_map` (which input tokens a layer's outputs depend on, by gradients) and
:func:`token_pieces` (how a tokenizer cuts a text).

Conventions: a mask is True where query i (row) sees key j (column), as in
:mod:`minecp.masks`; positions are absolute positions inside the window (0-based).

Every name above is importable from ``minecp.viz`` itself; the code lives in one
module per idea:

=============================  ==========================================================
module                         holds
=============================  ==========================================================
:mod:`minecp.viz.masks`        ``plot_mask``, ``plot_masks``, ``plot_matrix``, ``plot_matrices``
:mod:`minecp.viz.attention`    ``plot_attention``, ``plot_attention_grid`` (token tick labels)
:mod:`minecp.viz.curves`       ``plot_loss_positions``, ``plot_curves``, ``plot_scaling``,
                               ``plot_images``
:mod:`minecp.viz.widgets`      ``explorer``, ``attention_explorer``, ``rule_explorer``
:mod:`minecp.viz.probes`       ``influence_map``, ``token_pieces`` (data, no drawing)
:mod:`minecp.viz.style`        ``DPI``, ``MODEL_COLORS``, ``MODEL_LABELS``, ``model_color``
:mod:`minecp.viz.ecp`          ECP-only data and pictures (receptive fields, KV cache, tile
                               schedules, benchmark bars) for notebooks 06 and 07
:mod:`minecp.viz._axes`        the private plumbing the others share
=============================  ==========================================================
"""

from .style import DPI, MODEL_COLORS, MODEL_LABELS, model_color
from .attention import plot_attention, plot_attention_grid
from .curves import legend_outside, plot_curves, plot_images, plot_loss_positions, plot_scaling
from .masks import plot_mask, plot_masks, plot_matrices, plot_matrix
from .probes import influence_map, token_pieces
from .widgets import attention_explorer, explorer, rule_explorer

__all__ = ["DPI", "MODEL_COLORS", "MODEL_LABELS", "model_color", "legend_outside", "plot_mask", "plot_masks", "plot_matrix", "plot_matrices", "plot_attention", "plot_attention_grid",
           "plot_loss_positions", "plot_curves", "plot_scaling", "plot_images", "explorer", "attention_explorer",
           "rule_explorer", "influence_map", "token_pieces"]
