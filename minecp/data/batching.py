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
        ids: 1-D integer array of token ids (e.g. ``Corpus.ids``, a memmap; only the
            windows are read), or a list of ints.
        batch_size: B, an int >= 1. window_len: T, an int with 1 <= T <= len(ids).
        generator: seeded ``torch.Generator`` (None: torch's global RNG).

    Returns:
        int64 tensor ``[B, T]`` on the CPU.

    Raises:
        ValueError: ids not a 1-D integer array, sizes not ints or out of range, or
            ``generator`` neither None nor a ``torch.Generator``.
    """
    if isinstance(ids, torch.Tensor):
        ids = ids.cpu().numpy()
    elif not isinstance(ids, np.ndarray):
        ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D array of integer token ids, got {ids.dtype} of shape {ids.shape}")
    for name, v in (("batch_size", batch_size), ("window_len", window_len)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{name} must be an int, got {v!r}")
    if batch_size < 1 or not 1 <= window_len <= len(ids):
        raise ValueError(f"need batch_size >= 1 and 1 <= window_len <= len(ids) = {len(ids)}, "
                         f"got batch_size={batch_size}, window_len={window_len}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be None or a torch.Generator, got {generator!r}")
    offsets = torch.randint(0, len(ids) - window_len + 1, (batch_size,), generator=generator).numpy()
    idx = offsets[:, None] + np.arange(window_len)[None, :]  # [B, T] positions
    return torch.from_numpy(np.asarray(ids[idx], dtype=np.int64))
