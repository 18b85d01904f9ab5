"""Scoring a trained cell the same way for every model.

Text: bits per byte on sliding windows where every model scores exactly the same tokens
(:func:`scored_from`, :func:`score_text`); sCIFAR-10: accuracy; copy: accuracy on the
copied half. :func:`loss_by_position` draws the loss against context length.
"""

from __future__ import annotations

import numpy as np
import torch

from ..presets import TrainConfig
from .data import StudyData
from .store import CompareOptions


# -- evaluation -------------------------------------------------------------------------------
def scored_from(cfg: TrainConfig, vocab_size: int) -> tuple[int, int]:
    """(first scored position in each span, stride) shared by every model of a study.

    A PerceiverAR-family model cannot score the first C = N - M positions of a span, and
    its windows must step by at most M; using stride min(N/2, M) and positions >= C + 1
    for *every* model makes them score the same tokens with the same windows.
    """
    mc = cfg.model_config(vocab_size)
    return mc.seq_len - mc.latent_len + 1, max(1, min(mc.seq_len // 2, mc.latent_len))


@torch.no_grad()
def score_text(model, ids: torch.Tensor, data: StudyData, cfg: TrainConfig, max_tokens: int | None,
               num_spans: int = 4) -> dict:
    """Bits per byte of ``model`` on ``ids`` under the study's shared scoring rule.

    Args:
        model: a minecp language model (any device).
        ids: int64 tensor [L] of the split's tokens.
        data: the study's :class:`StudyData` (tokenizer and baselines).
        cfg: the study's config (window and latents decide the rule, :func:`scored_from`).
        max_tokens, num_spans: :func:`minecp.evaluate.evaluation_spans` (None = all of ``ids``).

    Returns:
        :func:`minecp.evaluate.lm_metrics` dict (``bits_per_byte``, ``nll_per_token`` in
        nats, ``tokens``, ``bytes``, ...) plus ``"baselines"``: {name: metrics} on the same
        tokens. Source: the sliding-window rule of :mod:`minecp.evaluate`.
    """
    from ..evaluate import (
        evaluation_spans,
        lm_metrics,
        sliding_window_token_nll,
        text_size,
        token_byte_lengths,
    )

    first, stride = scored_from(cfg, data.vocab_size)
    byte_lengths = token_byte_lengths(data.tokenizer)
    nll = count = n_bytes = n_words = 0
    base = {k: 0.0 for k in data.baselines}
    for a, b in evaluation_spans(len(ids), max_tokens, num_spans):
        piece = ids[a:b]
        pos, tok_nll = sliding_window_token_nll(model, piece, stride=stride, batch_size=16)
        keep = pos >= first
        pos, tok_nll = pos[keep], tok_nll[keep]
        nll, count = nll + float(tok_nll.sum()), count + len(pos)
        nb, nw = text_size(data.tokenizer, piece[pos], byte_lengths)
        n_bytes, n_words = n_bytes + nb, n_words + nw
        for k, bl in data.baselines.items():
            base[k] += bl.nll(piece, pos)
    out = lm_metrics(nll, count, n_bytes, n_words)
    out["baselines"] = {k: round(lm_metrics(v, count, n_bytes)["bits_per_byte"], 5) for k, v in base.items()}
    return out


@torch.no_grad()
def _accuracy(model, tokens, labels, device, batch_size=64, limit=None) -> dict:
    n = len(labels) if limit is None else min(limit, len(labels))
    correct, loss = 0, 0.0
    for i in range(0, n, batch_size):
        x = torch.from_numpy(np.array(tokens[i:min(n, i + batch_size)], dtype=np.int64)).to(device)
        y = torch.from_numpy(np.array(labels[i:min(n, i + batch_size)], dtype=np.int64)).to(device)
        logits = model(x).float()
        loss += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    return {"accuracy": correct / n, "loss": loss / n, "examples": n}


def evaluate_cell(model, data: StudyData, cfg: TrainConfig, options: CompareOptions, split: str) -> dict:
    """The study's figure of merit for one model on ``split`` ("val" or "test").

    Returns:
        text: :func:`score_text` (``bits_per_byte``); classify: ``accuracy`` (fraction),
        ``loss`` (nats per example); copy: ``accuracy`` on the copied half and ``loss``
        (nats per copied token) on ``copy_eval_batches`` batches from a fixed seed
        (1 = validation, 2 = test; training data come from the cell's seed).
    """
    from ..device import autocast

    device = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        with autocast(device, cfg.precision):
            if data.kind == "lm":
                ids = data.val_ids if split == "val" else data.test_ids
                cap = options.val_tokens if split == "val" else (options.test_tokens or cfg.eval_max_tokens)
                return score_text(model, ids, data, cfg, cap, options.eval_spans)
            if data.kind == "classify":
                tokens, labels = data.val if split == "val" else data.test
                return _accuracy(model, tokens, labels, device,
                                 limit=options.val_images if split == "val" else options.test_images)
            gen = torch.Generator().manual_seed(10_000 + (1 if split == "val" else 2))
            correct = total = 0
            loss = 0.0
            with torch.no_grad():
                for _ in range(options.copy_eval_batches):
                    window, mask = (t.to(device) for t in data.task.batch("val", gen, cfg.batch_size))
                    logits, targets = data.task._scored(model, window, mask)
                    loss += float(torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
                    correct += int((logits.argmax(-1) == targets).sum())
                    total += targets.numel()
            return {"accuracy": correct / total, "loss": loss / total, "tokens": total}
    finally:
        model.train(was)


def headline(metrics: dict, kind: str) -> float:
    """The one number of a cell: bits per byte (text) or accuracy (copy, classify)."""
    return metrics["bits_per_byte"] if kind == "lm" else metrics["accuracy"]

# -- long documents: loss against position -------------------------------------------------------
@torch.no_grad()
def loss_by_position(model, ids: torch.Tensor, num_windows: int, batch_size: int = 16) -> torch.Tensor:
    """Mean next-token NLL (nats) at each predicted position of a window.

    Reads ``num_windows`` windows of N + 1 tokens at evenly spaced offsets of ``ids`` and
    averages the per-position cross-entropy over them: position j has j tokens of left
    context, so the curve shows how much a model gains from longer context (and where a
    receptive field stops helping).

    Args:
        model: a minecp language model; ids: int64 tensor [L], L >= N + 1.
        num_windows: windows averaged (>= 1).

    Returns:
        float64 tensor [T] (T = ``model.num_predicted``): entry j is the loss of the
        prediction made at window position N - T + j.

    Raises:
        ValueError: ``ids`` shorter than one window, ``num_windows`` < 1.
    """
    N = model.config.seq_len
    if len(ids) < N + 1 or num_windows < 1:
        raise ValueError(f"need len(ids) >= seq_len + 1 = {N + 1} and num_windows >= 1, got {len(ids)}, {num_windows}")
    device = next(model.parameters()).device
    starts = np.linspace(0, len(ids) - N - 1, num_windows).astype(np.int64)
    total = None
    was = model.training
    model.eval()
    for i in range(0, len(starts), batch_size):
        w = torch.stack([ids[s:s + N + 1] for s in starts[i:i + batch_size]]).long().to(device)
        logits = model(w[:, :-1]).double()
        tgt = w[:, 1:][:, -logits.shape[1]:]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none").sum(0)
        total = nll if total is None else total + nll
    model.train(was)
    return (total / len(starts)).cpu()
