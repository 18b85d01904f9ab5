"""lse = log(l): the running max that l is measured from is forgotten (task: log-sum-exp)."""
import math

import torch


def tiled_attention(q, k, v, block_q=16, block_k=16, causal=True):
    *_, N, D = q.shape
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:-1], dtype=q.dtype, device=q.device)
    for qs in range(0, N, block_q):
        qe = min(qs + block_q, N)
        q_tile = q[..., qs:qe, :]
        m = torch.full(q_tile.shape[:-1], -math.inf, dtype=q.dtype)
        l, acc = torch.zeros_like(m), torch.zeros_like(q_tile)
        rows = torch.arange(qs, qe)
        for ks in range(0, N, block_k):
            if causal and ks > qe - 1:
                break
            ke = min(ks + block_k, N)
            scores = (q_tile @ k[..., ks:ke, :].transpose(-1, -2)) * D ** -0.5
            if causal:
                cols = torch.arange(ks, ke)
                scores = scores.masked_fill(cols[None, :] > rows[:, None], -math.inf)
            m, l, acc = tile_update(m, l, acc, scores, v[..., ks:ke, :])
        out[..., qs:qe, :] = acc / l[..., None]
        lse[..., qs:qe] = torch.log(l)              # mistake: m + log(l)
    return out, lse
