"""The rule reaches back two segments (g - 2 instead of g - 1) (task: visibility rule)."""
import torch


def ecp_mask(n, segment_len):
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    return (j <= i) & (i // segment_len - j // segment_len <= 2)
