"""Attention operators: ECP pairwise segment attention with several backends.

``ecp_attention(q, k, v, segment_len, backend=...)`` is the single entry point; the
backends compute the same function and are tested against dense attention with the
explicit mask from :mod:`minecp.masks`.

| backend   | where     | memory   | notes                                              |
|-----------|-----------|----------|----------------------------------------------------|
| "torch"   | any       | O(N*S)   | segment-pair tiles + SDPA; the readable reference    |
| "flex"    | any       | O(N*S)*  | FlexAttention + block mask (*compiled on CUDA only) |
| "triton"  | CUDA (or CPU under TRITON_INTERPRET=1) | O(N) | fused FlashAttention-2 style kernel |
| "auto"    |           |          | "triton" on CUDA, else "torch"                      |
"""

from __future__ import annotations

import os

import torch

from .ecp_torch import ecp_attention_torch

BACKENDS = ("auto", "torch", "flex", "triton")


def _triton_usable(device: torch.device) -> bool:
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def resolve_backend(backend: str, device: torch.device) -> str:
    """Turn "auto" into a concrete backend for ``device``; validate the name."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "triton" if _triton_usable(device) else "torch"
    return backend


def ecp_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_len: int,
    backend: str = "auto",
    scale: float | None = None,
) -> torch.Tensor:
    """ECP pairwise segment attention (arXiv 2412.06106, Sec. 3.4).

    Query i sees key j iff ``j <= i`` and ``i // S - j // S <= 1`` (S = ``segment_len``),
    i.e. :func:`minecp.masks.ecp_rule`. Work and memory are O(N * S), never O(N^2)
    (except the eager CPU "flex" fallback, see :mod:`minecp.ops.ecp_flex`).

    Args:
        q, k, v: float tensors [B, H, N, D] of one dtype and device; N a multiple of S.
        segment_len: S > 0.
        backend: one of "auto", "torch", "flex", "triton".
        scale: softmax scale; default ``1 / sqrt(D)``.

    Returns:
        Tensor [B, H, N, D] with the dtype of ``q``.

    Raises:
        TypeError: if inputs are not floating-point tensors.
        ValueError: on mismatched shapes, N not a multiple of ``segment_len``,
            or an unknown ``backend``.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}"
                            f"{'' if not isinstance(t, torch.Tensor) else ' of dtype ' + str(t.dtype)}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape [B, H, N, D], got {tuple(t.shape)}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not isinstance(segment_len, int) or isinstance(segment_len, bool) or segment_len <= 0:
        raise ValueError(f"segment_len must be a positive int, got {segment_len!r}")
    N = q.shape[2]
    if N % segment_len != 0:
        raise ValueError(f"sequence length N={N} must be a multiple of segment_len={segment_len}")
    backend = resolve_backend(backend, q.device)
    if backend == "torch":
        return ecp_attention_torch(q, k, v, segment_len, scale)
    if backend == "flex":
        from .ecp_flex import ecp_attention_flex

        return ecp_attention_flex(q, k, v, segment_len, scale)
    # backend == "triton": imported lazily so that TRITON_INTERPRET can be set first.
    if q.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0").lower() in ("", "0", "false"):
        raise ValueError("backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 set before "
                         "importing minecp for the CPU interpreter); use backend='torch' on a CPU")
    from .ecp_triton import ecp_attention_triton

    return ecp_attention_triton(q, k, v, segment_len, scale)


__all__ = ["ecp_attention", "ecp_attention_torch", "resolve_backend", "BACKENDS"]
