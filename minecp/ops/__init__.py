"""Attention operators: ECP pairwise segment attention with several backends.

``ecp_attention(q, k, v, segment_len, backend=...)`` is the single entry point; the
backends compute the same function and are tested against dense attention with the
explicit mask from :mod:`minecp.masks`.

| backend   | where     | memory   | notes                                              |
|-----------|-----------|----------|----------------------------------------------------|
| "torch"   | any       | O(N*S)   | segment-pair tiles + SDPA; the readable reference    |
| "sdpa"    | CPU       | O(N)     | two fused mask-free SDPA kernel calls merged by log-sum-exp (:mod:`~minecp.ops.ecp_sdpa`) |
| "flex"    | any       | O(N*S)*  | FlexAttention + block mask (*compiled on CUDA only) |
| "triton"  | CUDA (or CPU under TRITON_INTERPRET=1) | O(N) | fused FlashAttention-2 style kernel |
| "auto"    |           |          | triton for fp16/bf16 on CUDA, sdpa on a CPU, else torch (:func:`resolve_backend`) |
"""

from __future__ import annotations

import math
import numbers
import os

import torch

from ..config import to_int
from . import ecp_sdpa
from .ecp_torch import ecp_attention_torch

BACKENDS = ("auto", "torch", "sdpa", "flex", "triton")


def check_backend(backend: str, name: str = "backend") -> None:
    """Raise ValueError, naming the parameter ``name``, unless ``backend`` is in :data:`BACKENDS`."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"{name} must be one of {BACKENDS}, got {backend!r}")


def resolve_backend(backend: str, device: torch.device | str, dtype: torch.dtype, head_dim: int,
                    segment_len: int) -> str:
    """The concrete backend that ``backend`` means for inputs like these.

    A pure decision from the inputs' description, so it can be tested without a GPU.
    Names other than "auto" are returned unchanged. "auto" picks:

    1. "triton" on a CUDA device if Triton is installed and the fused kernel supports
       the input at speed: ``dtype`` fp16 or bf16 (the tensor-core path; the kernel's
       fp32 path multiplies in exact IEEE fp32 and is a correctness path, not a fast
       one), ``head_dim`` in ``ecp_triton.SUPPORTED_HEAD_DIMS`` (32, 64, 128) and
       ``segment_len >= ecp_triton.MIN_SEGMENT_LEN`` (16). O(N) memory. A rule of thumb:
       GPU speed has not been timed here (no GPU run yet; see BENCHMARKS.md).
    2. "sdpa" on a CPU for fp32, bf16 and fp16 (when this PyTorch has the CPU flash
       operators, :func:`minecp.ops.ecp_sdpa.available`). Measured on the 2-core AVX2
       development VM with ``benchmarks/cpu_speed.py`` (BENCHMARKS.md, "ECP on a CPU: the
       fast path"): attention alone, forward + backward, N = 4k-8k, S = 128-512, it is
       1.6-2.1x faster than the readable "torch" tiles (fp32; 0.61-0.88 of dense SDPA's
       per-pair efficiency against "torch"'s 0.35-0.45); a whole training step of a
       4-layer d = 128 model runs at 0.98x dense at N = 128 (level, within the noise),
       1.44x at 1k and 2.79x at 4k. Short windows switch to one causal or one masked
       call (:func:`minecp.ops.ecp_sdpa.ecp_attention_sdpa`).
    3. "torch" otherwise: float64 (the CPU flash kernel keeps its log-sum-exp in
       float32, so the merge would lose float64 accuracy), other CUDA inputs. "flex" is
       never picked automatically: it compiles once per shape, and decoding changes the
       shape at every step; ask for it by name for fixed-shape training.

    Args:
        backend: one of :data:`BACKENDS`.
        device: where q, k, v live (a ``torch.device`` or a string such as "cuda:0").
        dtype: their dtype.
        head_dim: D, their last dimension.
        segment_len: S.

    Returns:
        "torch", "sdpa", "flex" or "triton".

    Raises:
        ValueError: ``backend`` is not one of :data:`BACKENDS`.

    Source: the kernel's limits in :mod:`minecp.ops.ecp_triton`.
    """
    check_backend(backend)
    if backend != "auto":
        return backend
    if torch.device(device).type == "cpu":
        return "sdpa" if dtype in ecp_sdpa.FAST_DTYPES and ecp_sdpa.available() else "torch"
    if torch.device(device).type != "cuda":
        return "torch"
    # Imported only here, on CUDA: importing ecp_triton fixes Triton's interpreter-or-GPU
    # choice, which tests make by setting TRITON_INTERPRET before the first import.
    try:
        from .ecp_triton import MIN_SEGMENT_LEN, SUPPORTED_HEAD_DIMS
    except ImportError:  # no Triton installed: no fused kernel
        return "torch"
    fast = dtype in (torch.float16, torch.bfloat16)
    if fast and head_dim in SUPPORTED_HEAD_DIMS and segment_len >= MIN_SEGMENT_LEN:
        return "triton"
    return "torch"


def _check_inputs(q, k, v, segment_len, scale) -> tuple[int, float | None]:
    """Validate :func:`ecp_attention`'s arguments for every backend; return the segment
    length and the scale as builtin int and float (or None)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}"
                            f"{'' if not isinstance(t, torch.Tensor) else ' of dtype ' + str(t.dtype)}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape [B, H, N, D], got {tuple(t.shape)}")
    if not (q.shape == k.shape == v.shape):
        raise ValueError(f"q, k, v must have the same shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must have one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")
    S = to_int(segment_len)                    # builtin int, or None
    if S is None:
        raise TypeError(f"segment_len must be an int, got {type(segment_len).__name__} ({segment_len!r})")
    if S < 1:
        raise ValueError(f"segment_len must be >= 1, got {S}")
    N, D = q.shape[2], q.shape[3]
    if N < 1 or N % S != 0:
        raise ValueError(f"sequence length N={N} must be a positive multiple of segment_len={S}")
    if D < 1:
        raise ValueError(f"head_dim D (last dim of q) must be >= 1, got {D}")
    if scale is None:
        return S, None
    # Not a tensor: float() would silently cut a learnable scale off the autograd graph.
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be None or a real number, got {type(scale).__name__} ({scale!r})")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be None or a finite number > 0, got {scale!r}")
    return S, float(scale)


def ecp_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_len: int,
    backend: str = "auto",
    scale: float | None = None,
) -> torch.Tensor:
    """ECP pairwise segment attention (arXiv 2412.06106; docs/architectures.md §6).

    Query i sees key j iff ``j <= i`` and ``i // S - j // S <= 1`` (S = ``segment_len``),
    i.e. :func:`minecp.masks.ecp_rule`. Work and memory are O(N * S), never O(N^2)
    (except the eager CPU "flex" fallback, see :mod:`minecp.ops.ecp_flex`).

    Args:
        q, k, v: float tensors [B, H, N, D] of one shape, dtype and device; N >= 1 a
            multiple of S.
        segment_len: S, an int >= 1 (a Python or numpy int or a 0-d integer tensor).
        backend: one of "auto", "torch", "sdpa", "flex", "triton". "auto" picks "triton"
            on CUDA for fp16/bf16 inputs the kernel supports (D in (32, 64, 128), S >= 16),
            "sdpa" on a CPU for fp32/bf16/fp16, else "torch"; see :func:`resolve_backend`.
        scale: softmax scale, a finite real > 0 (a Python or numpy number, not a
            tensor); default ``1 / sqrt(D)``.

    Returns:
        Tensor [B, H, N, D] with the dtype of ``q``.

    Raises:
        TypeError: q, k or v not a floating-point tensor, or of different dtypes; a
            non-int ``segment_len`` (a bool or a float); a non-real ``scale``.
        ValueError: q, k, v not all [B, H, N, D] of one shape, on different devices;
            ``segment_len`` < 1; N = 0 or not a multiple of ``segment_len``; D = 0;
            ``scale`` not finite or <= 0; an unknown ``backend``; "triton" on a CPU
            without TRITON_INTERPRET=1; "sdpa" not on a CPU.
        The chosen backend may raise more (e.g. "flex" on a CPU with gradients:
        NotImplementedError; "triton": unsupported D, S or dtype, see
        :func:`minecp.ops.ecp_triton.ecp_attention_triton`).
    """
    check_backend(backend)
    segment_len, scale = _check_inputs(q, k, v, segment_len, scale)
    backend = resolve_backend(backend, q.device, q.dtype, q.shape[-1], segment_len)
    if backend == "torch":
        return ecp_attention_torch(q, k, v, segment_len, scale)
    if backend == "sdpa":
        if q.device.type != "cpu" or not ecp_sdpa.available():
            raise ValueError("backend='sdpa' needs CPU tensors and PyTorch's CPU flash-attention "
                             f"operators (got device {q.device}); use backend='torch' or 'auto'")
        return ecp_sdpa.ecp_attention_sdpa(q, k, v, segment_len, scale)
    if backend == "flex":
        from .ecp_flex import ecp_attention_flex

        return ecp_attention_flex(q, k, v, segment_len, scale)
    # backend == "triton": imported lazily so that TRITON_INTERPRET can be set first.
    if q.device.type != "cuda" and os.environ.get("TRITON_INTERPRET", "0").lower() in ("", "0", "false"):
        raise ValueError("backend='triton' needs a CUDA tensor (or TRITON_INTERPRET=1 set before "
                         "importing minecp for the CPU interpreter); use backend='torch' on a CPU")
    from .ecp_triton import ecp_attention_triton

    return ecp_attention_triton(q, k, v, segment_len, scale)


__all__ = ["BACKENDS", "check_backend", "ecp_attention", "ecp_attention_torch", "resolve_backend"]
