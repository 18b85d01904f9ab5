"""The loss takes the first M targets window[:, 1:M+1] (context positions) instead of the last M (task: loss positions)."""
import torch.nn.functional as F


def latent_loss(logits, window):
    B, M, V = logits.shape
    targets = window[:, 1:M + 1]                   # mistake: window[:, 1:][:, -M:]
    return F.cross_entropy(logits.reshape(B * M, V).float(), targets.reshape(B * M))
