"""Data and pictures for the ECP notebooks (06: the model, 07: the Triton kernel).

The generic plot helpers live in :mod:`minecp.viz`; this module adds what only the ECP
notebooks need and draws with those helpers where it can.

=================================  =======================================================
helper                             what
=================================  =======================================================
:func:`receptive_field_rule`       which input tokens position i may depend on after l layers
:func:`logit_receptive_field`      the same, *measured*: |d logit_i / d embedding_j| by layer
:func:`plot_receptive_fields`      the measured maps (log colour) with the rule drawn on top
:func:`trace_cache`                generate text and record the KV-cache size after each token
:func:`plot_cache_entries`         cache entries per layer against tokens generated
:func:`tile_schedule`              which key tiles each query tile visits (from ``tile_bands``)
:func:`causal_tile_count`          tiles a dense causal FlashAttention kernel visits
:func:`plot_tile_schedule`         the tile schedule drawn over the token-level mask
:func:`load_anchor_table`          the published H200 anchors of docs/performance.md, if present
:func:`load_bench_results`         rows of ``benchmarks/gpu_attention.py``'s JSON, if present
:func:`plot_bench`                 benchmark rows as grouped bars (one group per shape)
=================================  =======================================================

Nothing here imports Triton: the tile helpers take the band table that
:func:`minecp.ops.ecp_triton.tile_bands` returns, so this module imports on any machine.

Sources: Mahmood & Huang, arXiv 2412.06106; docs/architectures.md §6 (pairwise segment attention, context
propagation); Dao, "FlashAttention-2", arXiv 2307.08691 (tiling, online softmax).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.patches
import matplotlib.ticker
import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import viz
from ..masks import receptive_field_rule  # noqa: F401 - re-exported: the notebooks' name
from ._axes import _new_axes


# ------------------------------------------------------------------- receptive field
def logit_receptive_field(model: torch.nn.Module, idx: torch.Tensor, targets: torch.Tensor,
                          layers: Sequence[int] | None = None) -> torch.Tensor:
    """Measure how much each prediction depends on each input token, after l layers.

    Entry ``[l, i, j]`` is ``sum_f |d z_i / d e_{j,f}|``: the gradient of the logit
    ``z_i`` of token ``targets[i]`` at position i with respect to the input embedding
    ``e_j`` of token j, summed over its d features. After ``l`` blocks the hidden states
    are read out through the model's final LayerNorm and output head (a "logit lens"),
    so ``l = L`` is the model's real output. A mask-forbidden attention pair has
    probability exactly 0 (``-inf`` before the softmax), so an entry is exactly 0 when no
    path connects token j to position i, and generically non-zero when one does.

    All N rows come from one backward pass per layer: the window is copied N times along
    the batch, and copy b contributes only its own row b.

    Args:
        model: a minecp model that keeps every position (dense or ECP); eval mode is
            used during the call (dropout off) and the previous mode restored.
        idx: LongTensor [1, N] of token ids.
        targets: LongTensor [N]: whose logit to differentiate at each position (e.g. the
            next tokens of the text, ``window[0, 1:]``).
        layers: 1-based block counts to measure (default: 1 .. L).

    Returns:
        float32 [len(layers), N, N] on the CPU.
    """
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must have shape [1, N], got {tuple(idx.shape)}")
    N = idx.shape[1]
    if targets.shape != (N,):
        raise ValueError(f"targets must have shape [{N}], got {tuple(targets.shape)}")
    n_blocks = len(model.blocks)
    layers = list(range(1, n_blocks + 1)) if layers is None else list(layers)
    if not all(1 <= ell <= n_blocks for ell in layers):
        raise ValueError(f"layers must lie in [1, {n_blocks}], got {layers}")
    captured: dict = {"blocks": {}}

    def grab_embedding(_module, _inputs, out):
        captured["emb"] = out.detach().requires_grad_()  # a leaf: d/d(embedding) lands here
        return captured["emb"]

    hooks = [model.embed.register_forward_hook(grab_embedding)]
    for ell in layers:
        hooks.append(model.blocks[ell - 1].register_forward_hook(
            lambda _m, _i, out, ell=ell: captured["blocks"].__setitem__(ell, out)))
    was_training = model.training
    model.eval()
    rows = torch.arange(N, device=idx.device)
    fields = []
    try:
        with torch.enable_grad():
            model.features(idx.expand(N, N))
            emb = captured["emb"]                                   # [N copies, N, d]
            for k, ell in enumerate(layers):
                hidden = captured["blocks"][ell][:, :N]             # ECP pads to whole segments
                h = model.ln_final(hidden[rows, rows])              # copy b keeps position b: [N, d]
                weight = model.lm_head.weight[targets.to(idx.device)]  # [N, d]
                z = (h * weight).sum()                              # sum_b logit_b[targets[b]]
                (g,) = torch.autograd.grad(z, emb, retain_graph=k + 1 < len(layers))
                fields.append(g.abs().sum(-1).detach().float().cpu())  # [N (row i), N (token j)]
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.stack(fields)


def plot_receptive_fields(fields: torch.Tensor, segment_len: int, layers: Sequence[int] | None = None,
                          size: float = 2.6):
    """Measured receptive fields (log10 colour, white = exactly 0) with the rule outlined.

    Args:
        fields: [n, N, N] from :func:`logit_receptive_field`.
        segment_len: S (grey dashed lines at the segment borders).
        layers: the layer count of each panel (default 1 .. n).

    Returns:
        Figure with one panel per layer; the red outline is :func:`receptive_field_rule`.
    """
    n, N = fields.shape[0], fields.shape[-1]
    layers = list(range(1, n + 1)) if layers is None else list(layers)
    panels = {f"after {ell} layer{'s' if ell > 1 else ''}": fields[k] for k, ell in enumerate(layers)}
    fig = viz.plot_matrices(panels, size=size, log=True, colorbar="log10 |d logit / d emb|",
                            xlabel="input token j", ylabel="prediction at position i")
    for ax, ell in zip(fig.axes[:n], layers):   # the panels come first, then the colour bars
        rule = receptive_field_rule(N, segment_len, ell).float().numpy()
        ax.contour(np.arange(N), np.arange(N), rule, levels=[0.5], colors="red", linewidths=0.8)
        for b in range(segment_len, N, segment_len):
            ax.axvline(b - 0.5, color="#888888", lw=0.6, ls="--")
            ax.axhline(b - 0.5, color="#888888", lw=0.6, ls="--")
    return fig


# ----------------------------------------------------------------------- KV cache
def trace_cache(model: torch.nn.Module, prompt_ids: Sequence[int], max_new_tokens: int,
                temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                seed: int | None = None) -> dict:
    """Generate as :func:`minecp.generate` does, recording the KV cache after every token.

    Same decoder (:func:`minecp.generation.make_decoder`) and the same sampling
    (:func:`minecp.generation.sample_next_token` with a private generator seeded by
    ``seed``), so the new ids equal ``minecp.generate(model, prompt, ..., seed=seed)``.

    Returns:
        dict with ``new_ids`` (list of ints), ``positions`` (LongTensor [n]: absolute
        position of the newest token fed to the model when each new token was chosen),
        ``entries`` (LongTensor [n, L]: positions held in each layer's cache at that
        moment), ``logits`` (float32 [n, V]: the logits each new token was drawn from)
        and ``cache_bytes`` (bytes allocated for keys and values).
    """
    from ..generation import make_decoder, sample_next_token

    prompt = [int(t) for t in prompt_ids]
    was_training = model.training
    model.eval()
    decoder = make_decoder(model)
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    new_ids, positions, entries, logits_seen = [], [], [], []
    try:
        logits = decoder.prefill(prompt)
        for t in range(max_new_tokens):
            positions.append(len(prompt) + t - 1)
            entries.append(decoder.cache_entries())
            logits_seen.append(logits.detach().float().cpu())
            token = sample_next_token(logits, temperature, top_k, top_p, generator)
            new_ids.append(token)
            if t + 1 < max_new_tokens:
                logits = decoder.step(token)
    finally:
        model.train(was_training)
    V = model.config.vocab_size
    return {"new_ids": new_ids, "positions": torch.tensor(positions, dtype=torch.long),
            "entries": torch.tensor(entries, dtype=torch.long).reshape(len(new_ids), -1),
            "logits": torch.stack(logits_seen) if logits_seen else torch.empty(0, V),
            "cache_bytes": decoder.cache_bytes()}


def plot_cache_entries(entries: torch.Tensor, segment_len: int, *, prompt_len: int = 0,
                       zoom_segments: int = 4, size=(3.6, 2.8)):
    """KV-cache entries per layer against the number of tokens generated, in two panels.

    Left: the whole run, next to what an unbounded causal KV cache would hold (every token
    so far, ``prompt_len + t``). Right: the first ``zoom_segments * S`` tokens, where the
    saw-tooth shows up: the cache grows by one entry per token and drops a whole segment
    when a token starts a new segment.

    Args:
        entries: LongTensor [n, L] from :func:`trace_cache`.
        segment_len: S; the bound 2S is drawn as a horizontal line.
        prompt_len: tokens of the prompt.
        zoom_segments: segments shown in the right panel.

    Returns:
        Figure with two Axes.
    """
    e = entries.numpy()
    n, L = e.shape
    t = np.arange(n)
    fig, (ax_all, ax_zoom) = plt.subplots(1, 2, figsize=(2 * size[0] + 1.6, size[1]), dpi=viz.DPI)
    ax_all.plot(t, prompt_len + t, color="grey", ls=":", lw=1.2, label="unbounded causal cache")
    zoom = min(n, zoom_segments * segment_len)
    styles = ["-", "--", ":", "-."]
    for ax, stop in ((ax_all, n), (ax_zoom, zoom)):
        for layer in range(L):
            ax.plot(t[:stop], e[:stop, layer], lw=1.6 if layer == 0 else 1.0, ls=styles[layer % 4],
                    color=viz.MODEL_COLORS["ecp"], label=f"ECP layer {layer + 1}")
        ax.axhline(2 * segment_len, color="#c0392b", lw=1, label="bound 2S")
        ax.set_xlabel("tokens generated")
        ax.grid(alpha=0.3)
    ax_all.set_ylabel("KV-cache entries (positions)")
    ax_all.set_title(f"{n} tokens", fontsize=9)
    ax_zoom.set_ylim(0, 2.4 * segment_len)
    ax_zoom.set_title(f"first {zoom} tokens (S = {segment_len})", fontsize=9)
    # One legend for both panels, to the right of the figure, where it cannot cover the saw-tooth.
    ax_zoom.legend(*ax_all.get_legend_handles_labels(), fontsize=7, loc="upper left",
                   bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------- tiles
SKIPPED, MASKED, FULL = 0, 1, 2


def tile_schedule(bands: torch.Tensor, n_other: int, block_b: int) -> torch.Tensor:
    """The tiles each query (or key) tile visits, as a [tiles, other tiles] table.

    Args:
        bands: int [tiles, 4] rows ``(lo, full_lo, full_hi, hi)`` as returned by
            :func:`minecp.ops.ecp_triton.tile_bands`: the kernel loops over tiles starting
            at ``lo, lo + block_b, ...``: masked below ``full_lo`` and from ``full_hi``
            on, unmasked in between.
        n_other: length of the other axis (N).
        block_b: tile size along the other axis.

    Returns:
        int8 [tiles, cdiv(n_other, block_b)]: ``SKIPPED`` (0, never loaded), ``MASKED``
        (1, token mask applied) or ``FULL`` (2, every pair visible, no mask).
    """
    table = torch.zeros(len(bands), math.ceil(n_other / block_b), dtype=torch.int8)
    for t, (lo, full_lo, full_hi, hi) in enumerate(bands.tolist()):
        for phase_lo, phase_hi, kind in ((lo, full_lo, MASKED), (full_lo, full_hi, FULL),
                                         (full_hi, hi, MASKED)):
            for start in range(phase_lo, phase_hi, block_b):
                table[t, start // block_b] = kind
    return table


def causal_tile_count(seq_len: int, block_m: int, block_n: int) -> int:
    """Tiles a dense causal FlashAttention kernel visits: every key tile up to the diagonal."""
    tiles = 0
    for m0 in range(0, seq_len, block_m):
        last_query = min(m0 + block_m, seq_len) - 1
        tiles += last_query // block_n + 1
    return tiles


def plot_tile_schedule(schedule: torch.Tensor, block_m: int, block_n: int, mask=None, *,
                       segment_len: int | None = None, title: str | None = None, ax=None,
                       figsize=(3.6, 3.6)):
    """The tiles a kernel visits, drawn over the token-level visibility mask.

    Args:
        schedule: [query tiles, key tiles] from :func:`tile_schedule`.
        block_m, block_n: query / key tile sizes (tokens).
        mask: optional bool [N, N] token mask drawn underneath (:func:`viz.plot_mask`).
        segment_len: dashed segment borders.

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    s = schedule.numpy()
    n_q, n_k = s.shape[0] * block_m, s.shape[1] * block_n
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    if mask is not None:
        viz.plot_mask(mask, ax=ax, segment_len=segment_len)
        n_q, n_k = mask.shape
    colours = {MASKED: ("#e67e22", "masked tile"), FULL: ("#27ae60", "full tile (no mask)")}
    for (a, b), kind in np.ndenumerate(s):
        if kind == SKIPPED:
            continue
        colour, _ = colours[int(kind)]
        ax.add_patch(matplotlib.patches.Rectangle((b * block_n - 0.5, a * block_m - 0.5), block_n, block_m,
                                                  facecolor=colour, alpha=0.25, edgecolor=colour, lw=0.8))
    ax.set_xlim(-0.5, n_k - 0.5)
    ax.set_ylim(n_q - 0.5, -0.5)
    ax.set_xlabel("key position j")
    ax.set_ylabel("query position i")
    handles = [matplotlib.patches.Patch(facecolor=c, alpha=0.5, label=lab) for c, lab in colours.values()]
    ax.legend(handles=handles, fontsize=7, loc="lower left")
    visited = int((s != SKIPPED).sum())
    ax.set_title(title or f"{visited} of {s.size} tiles visited", fontsize=9)
    return fig if created else ax


# ------------------------------------------------------------------- benchmarks
#: Names of the implementations in ``benchmarks/gpu_attention.py``, by keyword of the
#: anchor table's wording.
_IMPL_KEYWORDS = (("dense", "dense_causal_sdpa"), ("flex", "ecp_flex"), ("segment pairs", "ecp_torch"),
                  ("einsum", "ecp_einsum"), ("triton", "ecp_triton"))


#: Legend labels of those implementations.
IMPL_LABELS = {"dense_causal_sdpa": "dense causal (flash SDPA)", "ecp_flex": "ECP FlexAttention",
               "ecp_torch": "ECP segment pairs + SDPA", "ecp_einsum": "ECP materialised einsum",
               "ecp_triton": "ECP fused Triton kernel"}
#: One colour per implementation: dense attention in the course's dense grey, minecp's own kernel
#: in the course's ECP blue (:data:`minecp.viz.MODEL_COLORS`), the other ECP implementations apart.
IMPL_COLORS = {"dense_causal_sdpa": "#555555", "ecp_flex": "#56B4E9", "ecp_torch": "#009E73",
               "ecp_einsum": "#D55E00", "ecp_triton": "#0072B2"}


def _impl_key(name: str) -> str:
    low = name.lower()
    for keyword, key in _IMPL_KEYWORDS:
        if keyword in low:
            return key
    return name


def load_anchor_table(path) -> dict | None:
    """The first table of docs/performance.md (attention anchors), or None if the file is absent.

    Returns:
        None when ``path`` does not exist or holds no such table; else a dict with
        ``heading`` (the section title above the table, which names the GPU and date),
        ``markdown`` (the table's lines as written) and ``rows``: one dict per line with
        ``N``, ``S``, ``impl`` (normalised to the names of ``benchmarks/gpu_attention.py``),
        ``label`` (as written), ``fwd_ms``, ``fwdbwd_ms``, ``fwd_tflops``, ``fwdbwd_tflops``.
    """
    path = Path(path)
    if not path.is_file():
        return None
    heading, lines, rows = None, [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not lines:
            heading = line.lstrip("#").strip()
        elif line.startswith("| N | S | implementation"):
            lines = [line]
        elif lines and line.startswith("|"):
            lines.append(line)
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 7 and cells[0].isdigit():
                rows.append({"N": int(cells[0]), "S": int(cells[1]), "label": cells[2],
                             "impl": _impl_key(cells[2]), "fwd_ms": float(cells[3]),
                             "fwdbwd_ms": float(cells[4]), "fwd_tflops": float(cells[5]),
                             "fwdbwd_tflops": float(cells[6])})
        elif lines:
            break
    if not rows:
        return None
    return {"heading": heading, "markdown": "\n".join(lines), "rows": rows}


def load_bench_results(path) -> dict | None:
    """``benchmarks/gpu_attention.py``'s JSON (``--out``), or None if the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def plot_bench(rows: Sequence[Mapping], metric: str = "fwdbwd_tflops", *, ylabel: str | None = None,
               title: str | None = None, log: bool = False, ax=None, figsize=(7.4, 3.0)):
    """Benchmark rows as grouped bars: one group per (N, S), one bar per implementation.

    Args:
        rows: dicts with ``N``, ``S``, ``impl`` and ``metric`` (rows without it are skipped).
        metric: e.g. ``"fwdbwd_tflops"``, ``"fwd_ms"``.
        log: logarithmic y axis (times that span decades), labelled at 1-2-5 steps.

    Returns:
        The Figure if a new one was created, else ``ax``.
    """
    rows = [r for r in rows if metric in r]
    cases = list(dict.fromkeys((r["N"], r["S"]) for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    created = ax is None
    fig, ax = _new_axes(ax, figsize)
    width = 0.8 / max(1, len(impls))
    for k, impl in enumerate(impls):
        vals = {(r["N"], r["S"]): r[metric] for r in rows if r["impl"] == impl}
        xs = [c for c, case in enumerate(cases) if case in vals]
        ax.bar(np.array(xs) + (k - (len(impls) - 1) / 2) * width, [vals[cases[c]] for c in xs], width,
               label=IMPL_LABELS.get(impl, impl), color=IMPL_COLORS.get(impl))
    ax.set_xticks(range(len(cases)), [f"N={n}\nS={s}" for n, s in cases], fontsize=8)
    ax.set_xlabel("shape (B·N = 65,536 tokens)")
    units = {"fwdbwd_tflops": "fwd+bwd useful TFLOP/s", "fwd_tflops": "forward useful TFLOP/s",
             "fwd_ms": "forward time (ms)", "fwdbwd_ms": "fwd+bwd time (ms)"}
    ax.set_ylabel(ylabel or units.get(metric, metric))
    if title:
        ax.set_title(title, fontsize=9)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3, axis="y")
    if created:
        fig.tight_layout()
    return fig if created else ax


__all__ = ["receptive_field_rule", "logit_receptive_field", "plot_receptive_fields", "trace_cache",
           "plot_cache_entries", "SKIPPED", "MASKED", "FULL", "tile_schedule", "causal_tile_count",
           "plot_tile_schedule", "IMPL_LABELS", "IMPL_COLORS", "load_anchor_table", "load_bench_results", "plot_bench"]
