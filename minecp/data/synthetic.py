"""Perceiver AR's synthetic copy task (Hawthorne et al. 2022, Sec. 5.1.1).

Each sequence is ``L`` random tokens followed by the same ``L`` tokens again. The first
half is unpredictable noise; every token of the second half can be predicted exactly by
looking back ``L`` positions, so a model only solves it if its context really reaches
that far (the paper checks perfect copying over distances of >100k tokens). Loss and
accuracy are therefore measured on the copied half only. Generated on the fly from a
seed: no download.
"""

from __future__ import annotations

import torch


def copy_task_batch(batch_size: int, seq_len: int, vocab_size: int = 256,
                    generator: torch.Generator | int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of copy-task sequences and the mask of the copied half.

    Args:
        batch_size: B, an int >= 1. seq_len: total length ``2 * L`` (an even int >= 2).
        vocab_size: tokens are uniform in ``[0, vocab_size)``; an int >= 2 (with a single
            symbol every sequence is the same and there is nothing to copy).
        generator: a seeded ``torch.Generator`` (advanced by the call, for exact resume),
            an int seed, or None (torch's global RNG).

    Returns:
        ``(x, loss_mask)``: x int64 ``[B, seq_len]`` with ``x[:, L:] == x[:, :L]``;
        loss_mask bool ``[B, seq_len]``, True at positions ``t >= L`` (the copy). For
        next-token training (inputs ``x[:, :-1]``, targets ``x[:, 1:]``) weight the loss
        with ``loss_mask[:, 1:]``.

    Raises:
        ValueError: sizes not ints or out of range (odd or too small ``seq_len``,
            ``batch_size`` < 1, ``vocab_size`` < 2), or a ``generator`` of another type.
    """
    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(seq_len) or seq_len < 2 or seq_len % 2:
        raise ValueError(f"seq_len must be an even int >= 2, got {seq_len!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not is_int(vocab_size) or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2 (the copy task needs 2 symbols), got {vocab_size!r}")
    if is_int(generator):
        generator = torch.Generator().manual_seed(generator)
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")
    half = seq_len // 2
    first = torch.randint(0, vocab_size, (batch_size, half), generator=generator)
    x = torch.cat([first, first], dim=1)
    loss_mask = torch.zeros(batch_size, seq_len, dtype=torch.bool)
    loss_mask[:, half:] = True
    return x, loss_mask
