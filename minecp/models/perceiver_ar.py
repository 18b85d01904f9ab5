"""2. PerceiverAR (Hawthorne et al., ICML 2022; docs/architectures.md, Sec. 2).

The window is a context of C positions followed by M latents (N = C + M).
- Layer 1 is a cross-attention: only the M latents ask queries; keys and values are
  all N positions. Latent p sees every j <= p (the whole context, causal among latents).
  The residual carries the latents' own input embeddings.
- Layers 2..L: causal self-attention among the M latents only.
- Loss on the M latents only: the C context tokens inform predictions but are never
  targets — the drawback the ECP paper sets out to remove.
Cost: layer 1 O(M * N * d), the others O(M^2 * d).
"""

from __future__ import annotations

import torch

from ..attention import causal_attend, masked_attend
from ..config import ModelConfig
from ..masks import enhanced_rule, mask_matrix
from .base import LanguageModel


class PerceiverAR(LanguageModel):
    """PerceiverAR; ``model(idx)`` with idx [B, N] -> logits [B, M, V] for the latents."""

    name = "perceiver_ar"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        C, N = config.context_len, config.seq_len
        # Rows C..N-1 of the enhanced mask: latent queries against all N keys.
        cross = mask_matrix(enhanced_rule(C), torch.arange(C, N), torch.arange(N))
        self.register_buffer("cross_mask", cross, persistent=False)

    @property
    def num_predicted(self) -> int:
        return self.config.latent_len

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        C, N = self.config.context_len, self.config.seq_len
        positions = torch.arange(N, device=x.device)
        x = self.blocks[0](x, self.rope(positions), masked_attend(self.cross_mask), query_start=C)
        latent_rope = self.rope(positions[C:])
        for block in self.blocks[1:]:
            x = block(x, latent_rope, causal_attend)
        return x
