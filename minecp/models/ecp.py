"""6. ECP — Efficient Context-propagating Perceiver (arXiv 2412.06106; docs/architectures.md §6).

No context/latent split: every one of the N positions is a target. The window is cut
into s segments of S = N / s; in every layer a query in segment g sees all of segment
g - 1 and the causal part of segment g (pairwise segment attention,
:func:`minecp.masks.ecp_rule`). Each query sees at most 2S keys, so a layer costs
O(N * S * d) — LongLoRA's complexity — and depth carries context one segment per layer:
after l layers position i depends on tokens back to the start of segment i // S - l.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attention import ecp_attend
from ..config import ModelConfig
from ..ops import check_backend
from .base import LanguageModel


class ECP(LanguageModel):
    """ECP language model; ``model(idx)`` -> logits [B, T, V] for every position.

    Args:
        config: model configuration (``num_segments`` sets S = seq_len / num_segments).
        attention_backend: "auto", "torch", "sdpa", "flex" or "triton"
            (:data:`minecp.ops.BACKENDS`). "auto" takes the Triton kernel on CUDA for
            fp16/bf16 (e.g. under bf16 autocast) when it supports the head width and S,
            on a CPU the fast two-call path "sdpa" (fp32/bf16/fp16; measured in
            BENCHMARKS.md, "ECP on a CPU: the fast path"), else the readable "torch"
            reference; see :func:`minecp.ops.resolve_backend`. May be reassigned later
            (checked again).

    Raises:
        TypeError: ``config`` is not a ModelConfig.
        ValueError: unknown ``attention_backend`` (the message lists the names).
    """

    name = "ecp"
    accepts_shorter = True

    def __init__(self, config: ModelConfig, attention_backend: str = "auto"):
        super().__init__(config)
        self.attention_backend = attention_backend

    @property
    def attention_backend(self) -> str:
        """Backend name passed to :func:`minecp.ops.ecp_attention`."""
        return self._attention_backend

    @attention_backend.setter
    def attention_backend(self, backend: str) -> None:
        # Checked on every assignment, so a typo fails here, not at the first forward.
        check_backend(backend, "attention_backend")
        self._attention_backend = backend

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        T, S = x.shape[1], self.config.segment_len
        # A window shorter than N may end inside a segment: pad to a whole number of
        # segments. Causality makes the padding invisible to the real positions.
        padded = -(-T // S) * S
        x = F.pad(x, (0, 0, 0, padded - T))
        rope = self.rope(torch.arange(padded, device=x.device))
        attend = ecp_attend(S, self.attention_backend)
        for block in self.blocks:
            x = block(x, rope, attend)
        return x[:, :T]
