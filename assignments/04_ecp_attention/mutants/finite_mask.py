"""Hidden keys get the finite score -1e4 instead of -inf, which large logits overcome
(task: segment-pair attention)."""
import math

import torch


def ecp_attention_segments(q, k, v, segment_len, scale=None):
    B, H, N, D = q.shape
    S, s = segment_len, N // segment_len
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    qs, ks, vs = (t.reshape(B, H, s, S, D) for t in (q, k, v))
    k_pair = torch.cat([torch.cat([torch.zeros_like(ks[:, :, :1]), ks[:, :, :-1]], 2), ks], 3)
    v_pair = torch.cat([torch.cat([torch.zeros_like(vs[:, :, :1]), vs[:, :, :-1]], 2), vs], 3)
    scores = (qs @ k_pair.transpose(-1, -2)) * scale
    a = torch.arange(S)[:, None]
    b = torch.arange(2 * S)[None, :]
    visible = ((b < S) | (b - S <= a)) & ~((torch.arange(s)[:, None, None] == 0) & (b < S))
    scores = scores.masked_fill(~visible, -1e4)         # the mistake: a finite mask value
    return (torch.softmax(scores, dim=-1) @ v_pair).reshape(B, H, N, D)
