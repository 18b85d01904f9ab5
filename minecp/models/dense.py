"""1. Dense causal Transformer — the baseline (docs/architectures.md, Sec. 1).

Every layer: position i attends to all j <= i. Loss on all N positions.
Attention cost O(N^2 * d) per layer.
"""

from __future__ import annotations

import torch

from ..attention import causal_attend
from .base import LanguageModel


class DenseTransformer(LanguageModel):
    """GPT-style decoder with RoPE; ``model(idx)`` -> logits [B, T, V] for every position."""

    name = "dense"
    accepts_shorter = True

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        rope = self.rope(torch.arange(x.shape[1], device=x.device))
        for block in self.blocks:
            x = block(x, rope, causal_attend)
        return x
