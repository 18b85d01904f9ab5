"""Keeps only the current segment: the previous one, still visible, is dropped (task: keep from, decode)."""


def keep_from(p, S):
    return (p // S) * S
