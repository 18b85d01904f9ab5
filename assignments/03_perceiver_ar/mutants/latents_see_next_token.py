"""Mask off by one: latent at position p also sees key p + 1, the token it must predict (tasks: cross-attention mask, cross-attention layer)."""
import torch


def latent_cross_mask(context_len, seq_len):
    latent_pos = torch.arange(context_len, seq_len)[:, None]
    key_pos = torch.arange(seq_len)[None, :]
    return key_pos <= latent_pos + 1          # mistake: j <= p
