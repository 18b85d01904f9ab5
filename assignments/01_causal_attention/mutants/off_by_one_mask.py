"""Strictly causal mask j < i: a query may not see its own key, row 0 sees nothing (task: causal mask)."""


def causal_mask(n):
    return torch.ones(n, n, dtype=torch.bool).tril(diagonal=-1)
