"""Right numbers, wrong memory: dense [N, N] scores under the full mask, O(N^2)
(task: segment-pair attention, the memory test)."""
import math

import torch


def ecp_attention_segments(q, k, v, segment_len, scale=None):
    N, D = q.shape[-2], q.shape[-1]
    scale = 1.0 / math.sqrt(D) if scale is None else scale
    i = torch.arange(N)[:, None]
    j = torch.arange(N)[None, :]
    visible = (j <= i) & (i // segment_len - j // segment_len <= 1)
    scores = (q @ k.transpose(-1, -2)) * scale
    return torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1) @ v
