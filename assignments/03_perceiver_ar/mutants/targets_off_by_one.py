"""Targets misaligned by one: each latent is scored on its own input token window[:, p] instead of window[:, p + 1] (task: loss positions)."""
import torch


def target_positions(context_len, seq_len):
    return torch.arange(context_len, seq_len)      # mistake: arange(C + 1, N + 1)
