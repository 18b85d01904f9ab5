"""The running sum is not rescaled when the max grows: l_new = l + sum(p) (tasks: tile update, tiled attention)."""
import torch


def tile_update(m, l, acc, scores, v):
    m_new = torch.maximum(m, scores.amax(dim=-1))
    base = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
    alpha = torch.exp(m - base)
    p = torch.exp(scores - base[..., None])
    l_new = l + p.sum(dim=-1)                  # mistake: alpha * l
    acc_new = alpha[..., None] * acc + p @ v
    return m_new, l_new, acc_new
