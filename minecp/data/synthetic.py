"""Synthetic tasks generated on the fly: Perceiver AR's copy task and a marker task.

**Copy task** (Hawthorne et al. 2022, Sec. 5.1.1, :func:`copy_task_batch`).

Each sequence is ``L`` random tokens followed by the same ``L`` tokens again. The first
half is unpredictable noise; every token of the second half can be predicted exactly by
looking back ``L`` positions, so a model only solves it if its context really reaches
that far (the paper checks perfect copying over distances of >100k tokens). Loss and
accuracy are therefore measured on the copied half only.

**Marker task** (:func:`marker_task_batch`, minecp's own, for notebook 05): a marker token
somewhere in the context, the symbol right after it to be recalled at the end; in half of
the windows the pair "marker, symbol" straddles a border between context segments. It
separates what a segmented context can and cannot bind together.

Both are generated from a seed: no download.
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


#: The marker's id in :func:`marker_task_batch`; symbols are ids 1 .. num_symbols.
MARKER = 0


def marker_task_batch(batch_size: int, context_len: int, segment_len: int, latent_len: int,
                      num_symbols: int = 16, generator: torch.Generator | int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of marker-task windows; in half of them the evidence crosses a segment border.

    A window holds ``N + 1 = context_len + latent_len + 1`` ids (a model reads the first N;
    the targets are the last N). Everything is a random symbol (ids 1 .. ``num_symbols``)
    except: the marker :data:`MARKER` at one context position p, and the last two ids,
    ``MARKER, x[p + 1]``: the window ends by asking "which symbol followed the marker?".
    The one scored target is that final symbol (the model predicts it at the last input
    position, which holds the marker).

    Rows ``0, 2, 4, ...`` are **crossing**: p is the last position of a context segment of
    ``segment_len`` (a random one of the C/S - 1 borders), so the marker and its symbol lie
    in two segments. Odd rows place the pair inside one segment, at a random place.

    Args:
        batch_size: B >= 1. context_len: C >= 2 * segment_len, a multiple of it (at least
            one border). segment_len: S >= 2. latent_len: M >= 1 (the query sits in the latents).
        num_symbols: symbols besides the marker, >= 2; the vocabulary is ``num_symbols + 1``.
        generator: a seeded ``torch.Generator`` (advanced by the call), an int seed, or None.

    Returns:
        ``(window, scored, crossing)``, each ``[B, N + 1]``: window int64 ids; ``scored`` bool,
        True at the last position only; ``crossing`` bool, True at the last position of the
        crossing rows. For next-token training (inputs ``window[:, :-1]``, targets
        ``window[:, 1:]``) use ``scored[:, 1:]`` and ``crossing[:, 1:]``.

    Raises:
        ValueError: a size that is not an int or is out of range, or ``context_len`` not a
            multiple of ``segment_len``; the message names the parameter.
    """
    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name, value, low in (("batch_size", batch_size, 1), ("segment_len", segment_len, 2),
                             ("latent_len", latent_len, 1), ("num_symbols", num_symbols, 2)):
        if not is_int(value) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not is_int(context_len) or context_len < 2 * segment_len or context_len % segment_len:
        raise ValueError(f"context_len must be a multiple of segment_len={segment_len} and >= "
                         f"{2 * segment_len} (at least one border), got {context_len!r}")
    if is_int(generator):
        generator = torch.Generator().manual_seed(generator)
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, an int seed or None, got {generator!r}")

    C, S, B = context_len, segment_len, batch_size
    window = torch.randint(1, num_symbols + 1, (B, C + latent_len + 1), generator=generator)
    crossing_row = torch.arange(B) % 2 == 0
    # Crossing rows: the marker at the end of segment g = 0 .. C/S - 2, its symbol opens g + 1.
    border_p = (torch.randint(0, C // S - 1, (B,), generator=generator) + 1) * S - 1
    # Other rows: a segment g and an offset 0 .. S - 2 inside it, so p and p + 1 share g.
    inside_p = torch.randint(0, C // S, (B,), generator=generator) * S + \
        torch.randint(0, S - 1, (B,), generator=generator)
    p = torch.where(crossing_row, border_p, inside_p)
    rows = torch.arange(B)
    window[rows, p] = MARKER
    window[:, -2] = MARKER                                      # the question...
    window[:, -1] = window[rows, p + 1]                         # ...and its answer
    scored = torch.zeros_like(window, dtype=torch.bool)
    scored[:, -1] = True
    crossing = scored & crossing_row[:, None]
    return window, scored, crossing
