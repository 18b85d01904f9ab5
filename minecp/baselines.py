"""Count-based baselines: unigram and add-k bigram models of the token stream.

A neural model's bits per byte means little on its own. Two classic yardsticks, fit on
the training tokens and scored on exactly the tokens the model was scored on:

* unigram: p(x) = (count(x) + k) / (n + k V) — knows token frequencies only;
* add-k bigram: p(x | y) = (count(y x) + k) / (count(y) + k V) — one token of context,
  with Lidstone ("add-k") smoothing so unseen pairs keep a small probability
  (Jurafsky & Martin, *Speech and Language Processing*, ch. 3).

A language model that does not beat the bigram has learnt little beyond word pieces.
Counts live in numpy; bigram counts are kept sparse (sorted pair keys), because a dense
V x V table is 67 M entries at V = 8192.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch


def _as_docs(docs) -> list[np.ndarray]:
    """Accept one 1-D array/tensor or an iterable of them; return int64 numpy arrays."""
    if isinstance(docs, (np.ndarray, torch.Tensor)) and docs.ndim == 1:
        docs = [docs]
    out = [np.asarray(d.cpu() if isinstance(d, torch.Tensor) else d, dtype=np.int64) for d in docs]
    if not out or sum(len(d) for d in out) == 0:
        raise ValueError("the training tokens for a baseline are empty")
    return out


def _targets(ids, positions) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, dtype=np.int64)
    pos = np.asarray(positions.cpu() if isinstance(positions, torch.Tensor) else positions, dtype=np.int64)
    if pos.size and (pos.min() < 1 or pos.max() >= len(ids)):
        raise ValueError(f"positions must lie in [1, {len(ids) - 1}] (position 0 has no left context)")
    return ids, pos


class UnigramBaseline:
    """Add-k smoothed unigram model.

    Args:
        train_docs: 1-D int array/tensor of token ids, or an iterable of them (documents).
        vocab_size: V; ids must lie in [0, V).
        k: pseudo-count added to every id (> 0), default 1 (Laplace).
    """

    def __init__(self, train_docs: Iterable, vocab_size: int, k: float = 1.0):
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        counts = np.zeros(vocab_size, dtype=np.float64)
        for d in _as_docs(train_docs):
            counts += np.bincount(d, minlength=vocab_size)[:vocab_size]
        counts += k
        self.log_prob = np.log(counts / counts.sum())  # [V] float64, nats

    def nll(self, ids, positions) -> float:
        """Total NLL (nats) of the tokens ``ids[positions]`` (1-D ids, positions >= 1)."""
        ids, pos = _targets(ids, positions)
        return float(-self.log_prob[ids[pos]].sum())


class BigramBaseline:
    """Add-k smoothed bigram model (pairs never cross document borders).

    Args:
        train_docs: 1-D int array/tensor of token ids, or an iterable of them.
        vocab_size: V.
        k: pseudo-count per (previous, next) pair, > 0. Default 0.05: with a BPE vocabulary
            of thousands of ids, add-one smoothing would hand most of the probability mass
            to unseen pairs (k * V pseudo-counts per context), so a small k does better.
    """

    def __init__(self, train_docs: Iterable, vocab_size: int, k: float = 0.05):
        if k <= 0:
            raise ValueError(f"k must be > 0, got {k}")
        self.vocab_size, self.k = vocab_size, k
        keys, context = [], np.zeros(vocab_size, dtype=np.float64)
        for d in _as_docs(train_docs):
            if len(d) < 2:
                continue
            keys.append(d[:-1] * vocab_size + d[1:])  # pair (y, x) -> one int64 key
            context += np.bincount(d[:-1], minlength=vocab_size)[:vocab_size]
        self.keys, self.counts = np.unique(np.concatenate(keys) if keys else np.zeros(0, np.int64),
                                           return_counts=True)
        self.context = context  # count(y) as a left neighbour

    def nll(self, ids, positions) -> float:
        """Total NLL (nats) of ``ids[positions]`` given the token before each (positions >= 1)."""
        ids, pos = _targets(ids, positions)
        prev, nxt = ids[pos - 1], ids[pos]
        key = prev * self.vocab_size + nxt
        at = np.searchsorted(self.keys, key).clip(max=max(len(self.keys) - 1, 0))
        pair = np.where(self.keys[at] == key, self.counts[at], 0) if len(self.keys) else np.zeros(len(key))
        p = (pair + self.k) / (self.context[prev] + self.k * self.vocab_size)
        return float(-np.log(p).sum())
