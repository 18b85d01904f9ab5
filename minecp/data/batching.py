"""Training batches from a 1-D token stream."""

from __future__ import annotations

import numpy as np
import torch


def random_windows(ids: np.ndarray, batch_size: int, window_len: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch_size`` windows of ``window_len`` consecutive tokens at uniform random offsets.

    The offsets come from ``torch.randint(..., generator=generator)``: saving
    ``generator.get_state()`` in a checkpoint and restoring it resumes the exact same
    sequence of batches. For next-token training use ``window_len = context + 1``,
    inputs ``w[:, :-1]`` and targets ``w[:, 1:]``.

    Args:
        ids: 1-D array of token ids (e.g. ``Corpus.ids``, a memmap; only the windows are read).
        batch_size: B >= 1. window_len: T, 1 <= T <= len(ids).
        generator: seeded ``torch.Generator`` (None: torch's global RNG).

    Returns:
        int64 tensor ``[B, T]`` on the CPU.

    Raises:
        ValueError: ids not 1-D, or sizes out of range.
    """
    if np.ndim(ids) != 1:
        raise ValueError(f"ids must be 1-D, got shape {np.shape(ids)}")
    if batch_size < 1 or not 1 <= window_len <= len(ids):
        raise ValueError(f"need batch_size >= 1 and 1 <= window_len <= len(ids) = {len(ids)}, "
                         f"got batch_size={batch_size}, window_len={window_len}")
    offsets = torch.randint(0, len(ids) - window_len + 1, (batch_size,), generator=generator).numpy()
    idx = offsets[:, None] + np.arange(window_len)[None, :]  # [B, T] positions
    return torch.from_numpy(np.asarray(ids[idx], dtype=np.int64))
