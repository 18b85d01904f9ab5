"""A query sees its whole own segment, future keys included (task: visibility rule)."""
import torch


def ecp_mask(n, segment_len):
    i = torch.arange(n)[:, None] // segment_len
    j = torch.arange(n)[None, :] // segment_len
    return (i == j) | (i - j == 1)
