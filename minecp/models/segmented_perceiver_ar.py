"""5. Segmented-context PerceiverAR (authors' "sSplitAttention"; docs/architectures.md, Sec. 5).

As the enhanced model, but the context self-attention is block-diagonal: the C context
positions are cut into ``context_segments`` segments and a context position attends only
within its own segment. Latents still see all context and the latents up to themselves.
Cost per layer O(C^2 / s * d + M * N * d).

The idea comes from LongLoRA's grouped attention (S^2-Attn, Chen et al. 2023), which
also *shifts* half of the heads by half a group so that information crosses the group
borders. The authors' variant has no shift; ``config.context_shift > 0`` applies the
shift (in positions) to the second half of the heads.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from ..masks import mask_matrix, segmented_context_rule
from .enhanced_perceiver_ar import EnhancedPerceiverAR


class SegmentedPerceiverAR(EnhancedPerceiverAR):
    """Segmented-context PerceiverAR; ``model(idx)`` [B, N] -> logits [B, M, V].

    Everything but the mask is the enhanced model's (:class:`EnhancedPerceiverAR`).
    """

    name = "segmented_perceiver_ar"

    def build_mask(self, config: ModelConfig) -> torch.Tensor:
        """bool [H, N, N]: per-head masks, first half of the heads unshifted, second half
        shifted by ``context_shift`` (ModelConfig rejects a shift with one head, which has
        no unshifted half)."""
        C, N, H = config.context_len, config.seq_len, config.n_heads
        group = C // config.context_segments
        plain = mask_matrix(segmented_context_rule(C, group), N)
        shifted = mask_matrix(segmented_context_rule(C, group, config.context_shift), N)
        return torch.stack([plain if h < H // 2 else shifted for h in range(H)])
