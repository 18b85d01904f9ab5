"""Every latent sees every key, the later latents included: no causal mask among the latents (tasks: cross-attention mask, cross-attention layer)."""
import torch


def latent_cross_mask(context_len, seq_len):
    return torch.ones(seq_len - context_len, seq_len, dtype=torch.bool)   # mistake: j <= C + r
