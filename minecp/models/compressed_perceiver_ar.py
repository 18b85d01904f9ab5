"""4. Compressed-context PerceiverAR (authors' "CompressedDoubleAttention"; docs/architectures.md, Sec. 4).

Layer 1 is an enhanced-PerceiverAR layer on all N positions. Then the C context
positions are mapped to C' positions by a learned linear map *along the sequence axis*
(a C' x C weight), and layers 2..L run on C' + M positions: the compressed context
attends within itself (bidirectionally), latents attend to the compressed context and
causally to latents. Loss on the M latents.

Mixing positions like this is legal only because the context is never a target and
precedes all latents: no latent can learn about its own future through the map.

Two choices of ours (see "Known quirks" in docs/architectures.md):
- the residual stream itself is compressed by the same map (the authors add the first
  C' + M input embeddings, which do not line up with the compressed positions);
- compressed slot c gets the RoPE position at the centre of the span of tokens it starts
  out averaging, ``(c + 1/2) * C / C' - 1/2``, so relative positions stay meaningful.
The map is initialised as average pooling over C / C' neighbouring tokens.
Cost: layer 1 O(C^2 d + M N d), later layers O(C'^2 d + M (C' + M) d).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..attention import masked_attend
from ..config import ModelConfig
from ..masks import enhanced_rule, mask_matrix
from .base import LanguageModel


class CompressedPerceiverAR(LanguageModel):
    """Compressed-context PerceiverAR; ``model(idx)`` [B, N] -> logits [B, M, V].

    Attributes:
        compress: ``nn.Linear(C, C', bias=False)`` applied along the sequence axis; its
            weight [C', C] is the learned compression map (plotted in notebook 4).
    """

    name = "compressed_perceiver_ar"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        C, Cc, N, M = config.context_len, config.compressed_len, config.seq_len, config.latent_len
        self.compress = nn.Linear(C, Cc, bias=False)
        with torch.no_grad():  # average pooling: slot c averages tokens [c*C/C', (c+1)*C/C')
            owner = (torch.arange(C) * Cc) // C
            pool = (owner[None, :] == torch.arange(Cc)[:, None]).float()
            self.compress.weight.copy_(pool / pool.sum(dim=1, keepdim=True))
        self.register_buffer("mask_full", mask_matrix(enhanced_rule(C), N), persistent=False)
        self.register_buffer("mask_compressed", mask_matrix(enhanced_rule(Cc), Cc + M), persistent=False)

    @property
    def compressed_positions(self) -> torch.Tensor:
        """float64 [C' + M] RoPE positions after compression: slot c sits at the centre of the
        tokens it starts out averaging, (c + 1/2) C / C' - 1/2; the latents keep C .. N - 1.

        Computed on demand in float64 rather than stored as a buffer, so that
        ``model.to(torch.bfloat16)`` cannot round them (bf16 has 8 significant bits: at
        N = 2048 it would merge positions 2043 .. 2047).
        """
        C, Cc, N = self.config.context_len, self.config.compressed_len, self.config.seq_len
        centres = (torch.arange(Cc, dtype=torch.float64) + 0.5) * C / Cc - 0.5
        return torch.cat([centres, torch.arange(C, N, dtype=torch.float64)])

    @property
    def num_predicted(self) -> int:
        return self.config.latent_len

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        C = self.config.context_len
        x = self.blocks[0](x, self.rope(torch.arange(x.shape[1], device=x.device)), masked_attend(self.mask_full))
        # [B, C, d] -> [B, C', d]: the linear map acts on the sequence axis.
        context = self.compress(x[:, :C].transpose(1, 2)).transpose(1, 2)
        x = torch.cat([context, x[:, C:]], dim=1)
        rope = self.rope(self.compressed_positions.to(x.device))
        attend = masked_attend(self.mask_compressed)
        for block in self.blocks[1:]:
            x = block(x, rope, attend)
        return x[:, self.config.compressed_len:]
