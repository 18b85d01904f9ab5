"""3. Enhanced PerceiverAR (authors' "DoubleAttention"; docs/architectures.md, Sec. 3).

All N positions are kept in every layer, so the context is *refined* layer after layer
instead of being read once:
- context positions attend to all context positions (bidirectional — legal, because no
  context position is a target and all of them precede every latent);
- latents attend to the whole context and causally to latents.
Loss on the M latents. Cost per layer O(C^2 * d + M * N * d).
"""

from __future__ import annotations

import torch

from ..attention import masked_attend
from ..config import ModelConfig
from ..masks import enhanced_rule, mask_matrix
from .base import LanguageModel


class EnhancedPerceiverAR(LanguageModel):
    """Enhanced PerceiverAR; ``model(idx)`` [B, N] -> logits [B, M, V] for the latents."""

    name = "enhanced_perceiver_ar"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.register_buffer("mask", self.build_mask(config), persistent=False)

    def build_mask(self, config: ModelConfig) -> torch.Tensor:
        """bool [N, N] (True = visible), the same in every layer and head."""
        return mask_matrix(enhanced_rule(config.context_len), config.seq_len)

    @property
    def num_predicted(self) -> int:
        return self.config.latent_len

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        rope = self.rope(torch.arange(x.shape[1], device=x.device))
        attend = masked_attend(self.mask)
        for block in self.blocks:
            x = block(x, rope, attend)
        return x[:, self.config.context_len:]
