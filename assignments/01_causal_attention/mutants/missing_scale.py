"""Scores q k^T without the 1 / sqrt(D) scale (task: scores; also attention)."""


def attention_scores(q, k):
    return q @ k.transpose(-2, -1)
