"""The per-layer key/value cache, and cached decoding as one more attention pattern (:class:`CachedAttend`)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.base import LanguageModel

#: Models whose full forward predicts only the M latents of an N-token window.
PERCEIVER_FAMILY = ("perceiver_ar", "enhanced_perceiver_ar", "compressed_perceiver_ar",
                    "segmented_perceiver_ar")


# ------------------------------------------------------------------------------------------
# The per-layer key/value cache
# ------------------------------------------------------------------------------------------
class KVCache:
    """Keys and values of one attention layer, in a buffer allocated once.

    The buffer holds ``capacity`` positions; entries ``[0, length)`` are in use, and
    entry 0 belongs to position ``start`` (absolute for ECP, window-relative otherwise).
    Allocating once (instead of ``torch.cat`` at every token) keeps the memory constant
    and makes "bytes held by the cache" a well-defined number for the benchmark.

    Args:
        n_heads, head_dim: H and D of the layer.
        capacity: the most positions the cache may ever hold (2S for ECP, N otherwise).
        dtype, device: those of the model's parameters.
    """

    def __init__(self, n_heads: int, head_dim: int, capacity: int, dtype, device):
        self.k = torch.zeros(1, n_heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.capacity = capacity
        self.length = 0
        self.start = 0

    def reset(self, start: int = 0) -> None:
        """Forget every entry; the next entry will belong to position ``start``."""
        self.length, self.start = 0, start

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add keys/values of the next T positions.

        Args:
            k, v: [1, H, T, D] in the cache's dtype and device (keys RoPE-rotated).

        Raises:
            RuntimeError: the cache would hold more than ``capacity`` positions. The
                decoders drop or reset entries before appending, so this means a bug in
                a decoder, not bad user input (hence not a ValueError).
        """
        T = k.shape[2]
        if self.length + T > self.capacity:
            raise RuntimeError(f"KV cache overflow: {self.length} + {T} > capacity {self.capacity}")
        self.k[:, :, self.length:self.length + T] = k
        self.v[:, :, self.length:self.length + T] = v
        self.length += T

    def drop_before(self, position: int) -> None:
        """Forget the entries of positions < ``position`` (moves the rest to the front)."""
        n = position - self.start
        if n <= 0:
            return
        keep = max(self.length - n, 0)
        # .clone(): source and destination overlap inside the same buffer.
        self.k[:, :, :keep] = self.k[:, :, n:n + keep].clone()
        self.v[:, :, :keep] = self.v[:, :, n:n + keep].clone()
        self.length, self.start = keep, position

    @property
    def keys(self) -> torch.Tensor:
        """Keys in use, [1, H, length, D] (a view, RoPE already applied)."""
        return self.k[:, :, :self.length]

    @property
    def values(self) -> torch.Tensor:
        """Values in use, [1, H, length, D] (a view)."""
        return self.v[:, :, :self.length]

    @property
    def nbytes(self) -> int:
        """Bytes allocated for keys and values (the whole buffer, used or not)."""
        return self.k.numel() * self.k.element_size() * 2


class CachedAttend:
    """The attention pattern of cached decoding, as an ``attend`` for :class:`~minecp.blocks.Block`.

    Called with the T new positions' q, k, v [1, H, T, D], it first appends the new keys
    and values to ``cache``, then lets new query a (absolute index ``before + a``) see
    every cached key and the new keys up to itself. That one rule is right for every
    cached path in this module, because each decoder keeps in its cache *exactly* the
    keys a new position may see (see the decoders). Plugged into ``Block.forward``, it
    makes decoding run the very same block code as training.

    Args:
        cache: the layer's :class:`KVCache`.
    """

    def __init__(self, cache: KVCache):
        self.cache = cache

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        before = self.cache.length
        self.cache.append(k, v)
        T = q.shape[2]
        mask = None if T == 1 else self.mask(T, before + T, device=q.device)  # one query sees all
        return F.scaled_dot_product_attention(q, self.cache.keys, self.cache.values, attn_mask=mask)

    def mask(self, q_len: int, k_len: int, device=None) -> torch.Tensor:
        """bool [q_len, k_len]: the last q_len of k_len keys are the new ones, causal among them."""
        before = k_len - q_len
        return torch.arange(k_len, device=device)[None, :] <= before + torch.arange(q_len, device=device)[:, None]


def forward_chunk(model: LanguageModel, caches: Sequence[KVCache], x: torch.Tensor,
                   positions: torch.Tensor) -> torch.Tensor:
    """Run T new positions through every layer, attending to each layer's cache.

    Args:
        model: a minecp model (its blocks, RoPE and final LayerNorm are used).
        caches: one :class:`KVCache` per layer; the new keys/values are appended.
        x: float [1, T, d], input embeddings of the new positions.
        positions: [T] RoPE positions of the new tokens.

    Returns:
        Final hidden states [1, T, d] after ``model.ln_final``.
    """
    rope = model.rope(positions)
    for block, cache in zip(model.blocks, caches):
        x = block(x, rope, CachedAttend(cache))
    return model.ln_final(x)


class RecordKeysValues:
    """Context manager: run a model's own forward and record each layer's keys/values.

    Inside the ``with`` block every ``block.attn.project`` is wrapped so that the keys
    and values it returns (RoPE applied) are appended to a list, in layer order. We use
    this to fill the caches of the PerceiverAR family from the model's *own* forward
    pass, so the prefill is the training-time computation by construction (no second
    copy of four different trunks to keep in sync).
    """

    def __init__(self, model: LanguageModel):
        self.model = model
        self.records: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __enter__(self):
        for block in self.model.blocks:
            original = block.attn.project      # the bound method of the class

            def project(x_q, x_kv, rope_q, rope_k, _original=original):
                q, k, v = _original(x_q, x_kv, rope_q, rope_k)
                self.records.append((k, v))
                return q, k, v

            # an instance attribute shadows the class method for this object only
            block.attn.project = project
        return self.records

    def __exit__(self, *exc):
        for block in self.model.blocks:
            del block.attn.project             # back to the class method
        return False
