"""Model configuration shared by all six architectures, and the number checks minecp uses."""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import asdict, dataclass

import numpy as np
import torch


def to_int(value) -> int | None:
    """``value`` as a builtin int if it is an integer, else None.

    Integers are Python and numpy ints and 0-d integer tensors or arrays (e.g. an id
    from ``Tokenizer.encode``'s uint16 array); bools, floats and anything with more
    than one element are not.
    """
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) is torch.bool:
        return None
    if getattr(value, "ndim", 0) != 0:  # operator.index also takes one-element tensors [1]
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def to_real(value) -> float | None:
    """``value`` as a builtin float if it is a real number, else None.

    Real numbers are Python and numpy ints and floats and 0-d real tensors; bools and
    complex numbers are not. Non-finite values are returned (callers check ranges).
    """
    if isinstance(value, torch.Tensor):
        ok = value.dim() == 0 and value.dtype != torch.bool and not value.is_complex()
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    try:
        return float(value) if ok else None
    except OverflowError:  # a Python int beyond the float range
        return math.copysign(math.inf, value)


def _require_int(cfg, name: str, minimum: int = 1) -> None:
    """Check ``cfg.name`` and store it as a builtin int (numpy ints would break checkpoints)."""
    value, number = getattr(cfg, name), to_int(getattr(cfg, name))
    if number is None:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    object.__setattr__(cfg, name, number)


def _require_real(cfg, name: str, allowed: str) -> float:
    """Check that ``cfg.name`` is a real number; store and return it as a builtin float."""
    value, number = getattr(cfg, name), to_real(getattr(cfg, name))
    if number is None:
        raise TypeError(f"{name} must be {allowed}, got {type(value).__name__} ({value!r})")
    object.__setattr__(cfg, name, number)
    return number


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a minecp model, validated on construction.

    Frozen: a model derives buffers (masks, segment lengths) from its config when it is
    built, so changing a field afterwards would silently disagree with them. Make a
    changed copy with ``dataclasses.replace(cfg, field=value)``, which validates again;
    it copies the filled-in defaults of ``latent_len`` and ``compressed_len``, so pass
    them as None to have them recomputed for a new ``seq_len``.

    Notation of arXiv 2412.06106 (see docs/architectures.md): a window of N tokens; the
    PerceiverAR family splits it into a context of C = N - M positions and M latents;
    segment-based models cut a length into segments.

    Attributes:
        vocab_size: number of token ids (ids must lie in [0, vocab_size)).
        seq_len: N, the window length the model reads.
        d_model: d, residual width; must be divisible by ``n_heads``.
        n_heads: H; head width D = d_model / n_heads must be even (RoPE rotates pairs).
        n_layers: L.
        mlp_ratio: hidden width of the GELU MLP is ``mlp_ratio * d_model``.
        dropout: residual/embedding dropout probability in [0, 1).
        num_segments: s, ECP's number of segments; N must be a multiple of it (S = N / s).
        latent_len: M, PerceiverAR latents (0 < M < N); default N // 2.
        context_segments: segmented-context model: the C context positions are cut into
            this many segments (C must be a multiple of it).
        compressed_len: C', compressed-context model: the context is mapped to C'
            positions after layer 1 (0 < C' <= C); default N // 4 (the authors' choice).
        context_shift: segmented-context model: LongLoRA-style shift (in positions) of
            the context segment borders applied to the second half of the heads
            (Chen et al. 2023, Sec. 3.2); 0 = the authors' unshifted variant. Needs
            ``n_heads >= 2`` (with one head there is no other half to shift).
        rope_base: base of the rotary position embedding frequencies (Su et al. 2021),
            a finite number > 1.
        tie_embeddings: bool, share the token embedding and output projection weights.

    An int field accepts any integer (Python or numpy int, 0-d integer tensor; not a
    bool) and a float field any real number; both are stored as builtin ``int`` /
    ``float``, so checkpoints and JSON see plain Python numbers.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a field is out of range or inconsistent with another; the message
            names the field and the allowed values.
    """

    vocab_size: int
    seq_len: int
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    num_segments: int = 8
    latent_len: int | None = None
    context_segments: int = 4
    compressed_len: int | None = None
    context_shift: int = 0
    rope_base: float = 10000.0
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_heads", "n_layers", "mlp_ratio",
                     "num_segments", "context_segments"):
            _require_int(self, name)
        _require_int(self, "context_shift", minimum=0)
        if not 0.0 <= _require_real(self, "dropout", "a float") < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        # NaN fails every comparison, so test "finite" explicitly: NaN/inf give NaN angles.
        rope_base = _require_real(self, "rope_base", "a number")
        if not (math.isfinite(rope_base) and rope_base > 1):
            raise ValueError(f"rope_base must be a finite number > 1, got {self.rope_base!r}")
        # A bool, not anything truthy: tie_embeddings="no" would otherwise mean "tie".
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"tie_embeddings must be True or False, got {self.tie_embeddings!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if (self.d_model // self.n_heads) % 2 != 0:
            raise ValueError(f"head width d_model / n_heads = {self.d_model // self.n_heads} must be "
                             "even (RoPE rotates pairs of features)")
        if self.seq_len % self.num_segments != 0:
            raise ValueError(f"seq_len N={self.seq_len} must be divisible by num_segments "
                             f"s={self.num_segments}; allowed num_segments are divisors of N (one config "
                             "serves all six models, so fields a model ignores are checked too)")
        # The dataclass is frozen, so derived defaults are filled in with object.__setattr__.
        if self.latent_len is None:
            object.__setattr__(self, "latent_len", self.seq_len // 2)
        _require_int(self, "latent_len", minimum=-(2**62))
        if not 0 < self.latent_len < self.seq_len:
            raise ValueError(f"latent_len M must satisfy 0 < M < seq_len={self.seq_len}, "
                             f"got {self.latent_len}")
        context_len = self.context_len
        if context_len % self.context_segments != 0:
            raise ValueError(f"context length C = seq_len - latent_len = {context_len} must be "
                             f"divisible by context_segments={self.context_segments} (checked for every "
                             "model; context_segments=1 always fits)")
        if self.compressed_len is None:
            object.__setattr__(self, "compressed_len", max(1, min(self.seq_len // 4, context_len)))
        _require_int(self, "compressed_len", minimum=-(2**62))
        if not 0 < self.compressed_len <= context_len:
            raise ValueError(f"compressed_len C' must satisfy 0 < C' <= C={context_len}, "
                             f"got {self.compressed_len}")
        if self.context_shift >= self.context_len // self.context_segments and self.context_shift:
            raise ValueError(f"context_shift must be smaller than the context segment length "
                             f"{self.context_len // self.context_segments}, got {self.context_shift}")
        # LongLoRA shifts half of the heads so that the other half's borders are crossed;
        # with a single head there is no unshifted half, and the shift would be dropped.
        if self.context_shift and self.n_heads < 2:
            raise ValueError(f"context_shift > 0 needs n_heads >= 2 (the shift applies to half "
                             f"of the heads), got context_shift={self.context_shift}, n_heads={self.n_heads}")

    @property
    def head_dim(self) -> int:
        """D = d_model / n_heads."""
        return self.d_model // self.n_heads

    @property
    def segment_len(self) -> int:
        """S = N / s, ECP's segment length."""
        return self.seq_len // self.num_segments

    @property
    def context_len(self) -> int:
        """C = N - M, the PerceiverAR context length."""
        return self.seq_len - self.latent_len

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and JSON logs)."""
        return asdict(self)
