"""Mask transposed (j >= i: queries see the future, not the past) (task: causal mask, attention)."""


def causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).triu()
