"""Visibility rules: which key each query may attend to, written once.

Every attention pattern in minecp is a *rule*: a function ``rule(q_idx, k_idx)`` of
two integer tensors of absolute positions (broadcastable against each other) that
returns a bool tensor, True where query ``q_idx`` sees key ``k_idx``. The same rule is

* turned into an explicit boolean matrix by :func:`mask_matrix` (reference attention,
  tests, pictures in the notebooks),
* handed to ``torch.nn.attention.flex_attention`` as a ``mask_mod`` (flex backend),
* re-derived inside the Triton kernel, whose tests compare against :func:`mask_matrix`.

So a mistake in a rule shows up everywhere at once instead of hiding in one code path.
:func:`receptive_field_rule` stacks ECP's rule over L layers (what a position can depend
on); the sCIFAR read-out check and the copy study's reach are computed from it.

Source: Mahmood & Huang, arXiv 2412.06106; docs/architectures.md §3–6 (the four paradigms) and its
"Masks at a glance" (the N = 8 pictures that ``tests/test_masks.py`` checks).
"""

from __future__ import annotations

from typing import Callable

import torch

Rule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def causal_rule() -> Rule:
    """Dense causal attention: query i sees key j iff j <= i.

    Returns:
        rule(q_idx, k_idx) -> bool tensor (broadcast shape of the inputs).
    """

    def rule(q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
        return k_idx <= q_idx

    return rule


def ecp_rule(segment_len: int) -> Rule:
    """ECP pairwise segment attention (arXiv 2412.06106; docs/architectures.md §6).

    Query i sees key j iff ``j <= i`` and ``i // S - j // S <= 1``: the whole previous
    segment plus the causal part of its own segment. Segment 0 is plain causal.

    Args:
        segment_len: S, positions per segment (> 0).

    Raises:
        ValueError: if ``segment_len`` is not a positive int.
    """
    _check_positive("segment_len", segment_len)

    def rule(q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
        return (k_idx <= q_idx) & (q_idx // segment_len - k_idx // segment_len <= 1)

    return rule


def enhanced_rule(context_len: int) -> Rule:
    """Enhanced PerceiverAR ("DoubleAttention", arXiv 2412.06106; docs/architectures.md §3).

    The first ``context_len`` (C) positions are the context, the rest are latents.
    A context query sees every context key (bidirectional: no context position is
    ever a target, and all of them precede every latent, so nothing leaks). A latent
    query sees all context keys and the latents up to itself.

    PerceiverAR's first layer (cross-attention) is this rule restricted to latent
    queries; the compressed model uses it with C' compressed context positions.

    Raises:
        ValueError: if ``context_len`` is not a positive int.
    """
    _check_positive("context_len", context_len)

    def rule(q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
        q_is_context = q_idx < context_len
        k_is_context = k_idx < context_len
        return torch.where(q_is_context, k_is_context, k_idx <= q_idx)

    return rule


def segmented_context_rule(context_len: int, context_segment_len: int, shift: int = 0) -> Rule:
    """Segmented-context PerceiverAR ("sSplitAttention", arXiv 2412.06106; docs/architectures.md §5).

    As :func:`enhanced_rule`, but a context query sees only the context keys of its own
    segment of ``context_segment_len`` positions (block-diagonal, bidirectional).
    Latents see all context and the latents up to themselves.

    ``shift`` moves the segment borders by that many positions, as LongLoRA's S²-Attn
    does for half of the heads (Chen et al. 2023, Sec. 3.2): context position p belongs
    to group ``(p + shift) // context_segment_len``. With ``shift = context_segment_len
    // 2`` on half of the heads, information crosses the borders of the other half.

    Raises:
        ValueError: if a length is not a positive int or ``shift`` is negative.
    """
    _check_positive("context_len", context_len)
    _check_positive("context_segment_len", context_segment_len)
    if not isinstance(shift, int) or shift < 0:
        raise ValueError(f"shift must be an int >= 0, got {shift!r}")

    def rule(q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
        q_is_context = q_idx < context_len
        k_is_context = k_idx < context_len
        same_group = (q_idx + shift) // context_segment_len == (k_idx + shift) // context_segment_len
        context_row = k_is_context & same_group
        latent_row = k_idx <= q_idx
        return torch.where(q_is_context, context_row, latent_row)

    return rule


# -- what L layers of a rule reach ---------------------------------------------------------------
def receptive_field_rule(seq_len: int, segment_len: int, layers: int) -> torch.Tensor:
    """ECP's receptive field after ``layers`` layers (docs/architectures.md §6).

    Position i depends on token j iff ``j <= i`` and j lies at or after the start of
    segment ``max(i // S - layers, 0)``: every layer reaches back one more segment.

    Args:
        seq_len: N. segment_len: S > 0. layers: l >= 0 (0 = only the token itself).

    Returns:
        Bool [N, N], True where output position i (row) depends on input token j (column).
    """
    if segment_len <= 0 or layers < 0 or seq_len <= 0:
        raise ValueError(f"need seq_len > 0, segment_len > 0, layers >= 0; got {seq_len}, "
                         f"{segment_len}, {layers}")
    i = torch.arange(seq_len)[:, None]
    j = torch.arange(seq_len)[None, :]
    if layers == 0:
        return i == j
    first = (i // segment_len - layers).clamp(min=0) * segment_len
    return (j <= i) & (j >= first)



def mask_matrix(
    rule: Rule,
    q_positions: torch.Tensor | int,
    k_positions: torch.Tensor | int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Evaluate ``rule`` on every (query, key) pair.

    Args:
        rule: a visibility rule from this module.
        q_positions: 1-D LongTensor of absolute query positions, or an int n meaning
            ``arange(n)``.
        k_positions: the same for keys; defaults to ``q_positions``.
        device: where to build the matrix when ints are given.

    Returns:
        Bool tensor [len(q_positions), len(k_positions)], True where the query sees the key.
    """
    if isinstance(q_positions, int):
        q_positions = torch.arange(q_positions, device=device)
    if k_positions is None:
        k_positions = q_positions
    elif isinstance(k_positions, int):
        k_positions = torch.arange(k_positions, device=device)
    return rule(q_positions[:, None], k_positions[None, :])


def render(mask: torch.Tensor, seen: str = "x", hidden: str = ".") -> str:
    """Draw a 2-D bool mask as text, one query row per line (as in docs/architectures.md)."""
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D, got shape {tuple(mask.shape)}")
    return "\n".join("".join(seen if v else hidden for v in row) for row in mask.tolist())
