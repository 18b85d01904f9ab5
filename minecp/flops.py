"""How much attention each architecture computes, counted in visible (query, key) pairs.

Attention work is proportional to the number of (query, key) pairs a mask lets through:
each visible pair costs one dot product q.k and one weighted add of v, 2 * D flops each
per head, so **4 * d_model flops per pair** in a forward pass (all H heads, H * D =
d_model). Masked-out pairs cost nothing in a kernel that skips them (the fused ECP kernel,
FlashAttention's causal mode); a kernel that computes the full score matrix pays for them
anyway, so these counts are the work a *good* kernel does, the yardstick of "useful
FLOP/s". The projections and MLP (24 * N * d^2 flops per layer with a 4x MLP) come on top.

Per layer, with N window positions, M latents, C = N - M context positions (docs/architectures.md
§1–6; Mahmood & Huang, arXiv 2412.06106):

==========================  =====================================================
dense causal                N (N + 1) / 2
PerceiverAR                 layer 1: M C + M (M + 1) / 2;  later: M (M + 1) / 2
enhanced PerceiverAR        C^2 + M C + M (M + 1) / 2
compressed PerceiverAR      layer 1 as enhanced; later: C'^2 + M C' + M (M + 1) / 2
segmented PerceiverAR       C^2 / s_c + M C + M (M + 1) / 2   (s_c context segments)
ECP                         s S (S + 1) / 2 + (s - 1) S^2     (s segments of S)
==========================  =====================================================

``tests/test_flops.py`` checks every formula against the sum of the model's real masks.
"""

from __future__ import annotations

from .config import ModelConfig


def _triangle(n: int) -> int:
    """Causal pairs among n positions: n (n + 1) / 2."""
    return n * (n + 1) // 2


def _check(N: int, M: int | None = None, L: int = 1, compressed_len: int | None = None) -> None:
    """ValueError unless N >= 1, L >= 1, 0 < M < N (if given) and 0 < C' <= C = N - M (if given)."""
    if N < 1 or L < 1:
        raise ValueError(f"need N >= 1 and L >= 1, got N={N}, L={L}")
    if M is not None and not 0 < M < N:
        raise ValueError(f"need 0 < M < N, got M={M}, N={N}")
    if compressed_len is not None and not 0 < compressed_len <= N - M:
        raise ValueError(f"need 0 < C' <= C = N - M = {N - M}, got C'={compressed_len}")


def dense_pairs(N: int, L: int = 1) -> int:
    """Dense causal attention, L layers over N positions: L N (N + 1) / 2.

    Raises:
        ValueError: N < 1 or L < 1.
    """
    _check(N, L=L)
    return L * _triangle(N)


def ecp_pairs(N: int, S: int, L: int = 1) -> int:
    """ECP, L layers: every segment causal within itself, the s - 1 later segments also see
    their predecessor in full (S^2 each).

    Raises:
        ValueError: N not a positive multiple of S, or L < 1.
    """
    _check(N, L=L)
    if S < 1 or N % S:
        raise ValueError(f"N must be a positive multiple of S, got N={N}, S={S}")
    s = N // S
    return L * (s * _triangle(S) + (s - 1) * S * S)


def perceiver_ar_pairs(N: int, M: int, L: int) -> int:
    """PerceiverAR: layer 1 lets the M latents read the C = N - M context and themselves
    causally; the L - 1 later layers are causal self-attention among the M latents.

    Raises:
        ValueError: not 0 < M < N, or L < 1.
    """
    _check(N, M, L)
    return M * (N - M) + _triangle(M) + (L - 1) * _triangle(M)


def enhanced_layer_pairs(C: int, M: int) -> int:
    """One enhanced-PerceiverAR layer over C context + M latents: context <-> context
    (C^2, bidirectional), latents -> context (M C), latents causal among themselves."""
    return C * C + M * C + _triangle(M)


def enhanced_pairs(N: int, M: int, L: int) -> int:
    """Enhanced PerceiverAR: L layers of :func:`enhanced_layer_pairs` over all N positions.

    Raises:
        ValueError: not 0 < M < N, or L < 1.
    """
    _check(N, M, L)
    return L * enhanced_layer_pairs(N - M, M)


def compressed_pairs(N: int, M: int, L: int, compressed_len: int) -> int:
    """Compressed-context PerceiverAR: layer 1 as enhanced over C = N - M; then the context
    is compressed to C' = ``compressed_len`` and L - 1 enhanced layers run over C' + M.

    Raises:
        ValueError: not 0 < M < N, not 0 < C' <= C, or L < 1.
    """
    _check(N, M, L, compressed_len)
    return enhanced_layer_pairs(N - M, M) + (L - 1) * enhanced_layer_pairs(compressed_len, M)


def segmented_pairs(N: int, M: int, L: int, context_segments: int) -> int:
    """Segmented-context PerceiverAR (no shift): the context attends within its own segment
    (C^2 / s_c per layer), the latents as in the enhanced model.

    Raises:
        ValueError: not 0 < M < N, L < 1, or C = N - M not divisible by ``context_segments``.
    """
    _check(N, M, L)
    C = N - M
    if context_segments < 1 or C % context_segments:
        raise ValueError(f"C={C} must be divisible by context_segments={context_segments}")
    return L * (C * C // context_segments + M * C + _triangle(M))


def attention_pairs(name: str, config: ModelConfig) -> int:
    """Visible (query, key) pairs of one forward pass of model ``name``, all layers, per head
    and per sequence.

    Args:
        name: one of :data:`minecp.MODEL_NAMES`.
        config: its configuration (N, M, L, S, C', context segments).

    Returns:
        The pair count (int). Forward attention flops = 4 * d_model * pairs.

    Raises:
        ValueError: an unknown ``name``, or the segmented model with ``context_shift`` > 0
            (the shift moves the group borders of half of the heads, so heads differ).
    """
    N, M, L = config.seq_len, config.latent_len, config.n_layers
    if name == "dense":
        return dense_pairs(N, L)
    if name == "ecp":
        return ecp_pairs(N, config.segment_len, L)
    if name == "perceiver_ar":
        return perceiver_ar_pairs(N, M, L)
    if name == "enhanced_perceiver_ar":
        return enhanced_pairs(N, M, L)
    if name == "compressed_perceiver_ar":
        return compressed_pairs(N, M, L, config.compressed_len)
    if name == "segmented_perceiver_ar":
        if config.context_shift:
            raise ValueError("attention_pairs counts the segmented model without LongLoRA's shift; "
                             f"got context_shift={config.context_shift}")
        return segmented_pairs(N, M, L, config.context_segments)
    from .models import MODEL_NAMES

    raise ValueError(f"unknown model name {name!r}; expected one of {MODEL_NAMES}")


def attention_flops(name: str, config: ModelConfig) -> int:
    """Forward-pass attention flops of one sequence: 4 * d_model * :func:`attention_pairs`
    (backward: about 2.5x more, as FlashAttention counts it).

    Raises:
        ValueError: as :func:`attention_pairs`.
    """
    return 4 * config.d_model * attention_pairs(name, config)
