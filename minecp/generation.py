"""Text generation with key/value caches for all six architectures.

Public entry points (re-exported as ``minecp.generate`` and ``minecp.generate_stream``):

* :func:`generate` — prompt ids in, prompt + new ids out;
* :func:`generate_stream` — the same, but yields each new token id as soon as it exists
  (the CLI uses it to print text while it is being produced);
* :func:`make_decoder` — the incremental decoders themselves (``prefill`` / ``step``),
  for tests, benchmarks and anyone who wants logits instead of samples;
* :func:`register_cli` — adds ``python -m minecp generate`` to the package's CLI.

Why a cache at all? A language model predicts token t+1 from tokens 0..t. Re-running the
whole window for every new token repeats almost all of the previous step's work: in
causal attention the keys and values of old positions do not change when a token is
appended, so they can be kept (the "KV cache") and each new token costs one query per
layer instead of a full forward pass.

Whether old keys/values stay valid depends on the architecture (arXiv 2412.06106;
docs ARCHITECTURES.md):

=====================  =====================================================================
model                  what the cached path does (``use_cache=True``, the default)
=====================  =====================================================================
ECP                    per-layer cache of the previous + current segment only (<= 2S
                       entries); absolute positions forever; exact, unbounded length.
                       See :class:`ECPDecoder`.
dense                  KV cache inside a window of at most N tokens; when the window is
                       full it jumps forward by ``slide`` tokens and is re-encoded.
                       See :class:`WindowKVDecoder`.
PerceiverAR family     same window policy as dense. Inside one window (fixed start) the
(all four)             context never changes and latents are causal, so context and latent
                       keys/values can be cached; when the window moves, every position's
                       state changes, so the new window is re-encoded.
=====================  =====================================================================

``use_cache=False`` re-runs a forward pass for every token instead
(:class:`RecomputeDecoder`): dense and the PerceiverAR family on the last N tokens of the
text (the authors' generation loop; each prediction sees a full window), ECP on exactly
the tokens its prediction depends on (its receptive field) at absolute positions, which
gives the same function as the ECP cache.

Batch size is 1 throughout (one prompt). Everything runs under ``torch.no_grad()`` and
with the model in eval mode (dropout off).
"""

from __future__ import annotations

import numbers
import sys
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .attention import ecp_attend
from .models.base import LanguageModel

__all__ = [
    "generate",
    "generate_stream",
    "make_decoder",
    "sample_next_token",
    "Decoder",
    "ECPDecoder",
    "WindowKVDecoder",
    "RecomputeDecoder",
    "KVCache",
    "register_cli",
]

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


def _forward_chunk(model: LanguageModel, caches: Sequence[KVCache], x: torch.Tensor,
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


class _RecordKeysValues:
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


# ------------------------------------------------------------------------------------------
# Decoders: prefill(prompt) -> logits, step(token) -> logits
# ------------------------------------------------------------------------------------------
class Decoder:
    """Incremental next-token logits for one text (batch 1).

    ``prefill(ids)`` starts a new text and returns the logits for the token after it;
    ``step(token)`` appends one token and returns the logits for the token after that.

    Logits are float32 tensors [vocab_size] on the model's device (natural-log
    unnormalised scores). Every method runs under ``torch.no_grad()``; the caller is
    responsible for ``model.eval()`` (:func:`generate` does it).
    """

    def __init__(self, model: LanguageModel):
        if not isinstance(model, LanguageModel):
            raise TypeError(f"model must be a minecp LanguageModel, got {type(model).__name__}")
        self.model = model
        self.config = model.config
        param = model.embed.weight
        self.device, self.dtype = param.device, param.dtype

    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Start a new text with ``ids`` (ints in [0, vocab_size), at least one).

        Returns:
            float32 logits [vocab_size] for the token that follows ``ids``.
        """
        raise NotImplementedError

    def step(self, token: int) -> torch.Tensor:
        """Append one token id to the text (after :meth:`prefill`).

        Returns:
            float32 logits [vocab_size] for the token that follows it.
        """
        raise NotImplementedError

    def cache_entries(self) -> list[int]:
        """Positions currently held in each layer's cache (empty list: no cache)."""
        return []

    def cache_bytes(self) -> int:
        """Bytes allocated for keys and values by the caches (0: no cache)."""
        return 0

    def _embed(self, ids: Sequence[int]) -> torch.Tensor:
        idx = torch.as_tensor(list(ids), dtype=torch.long, device=self.device)[None]
        return self.model.embed(idx)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[d] final hidden state -> float32 logits [vocab_size]."""
        return self.model.lm_head(hidden).float()


class ECPDecoder(Decoder):
    """ECP with a bounded per-layer cache: the previous and the current segment.

    Cached path for :class:`minecp.models.ECP` (arXiv 2412.06106 (as specified in ARCHITECTURES.md §6);
    ARCHITECTURES.md Sec. 6). Token t of the text sits at *absolute* position t, forever:
    segment borders stay at multiples of S however long the text grows, and RoPE
    rotates keys/queries by that absolute position (RoPE works at any position).

    Why this is the training-time function:

    * In every layer, query i sees key j iff j <= i and i // S - j // S <= 1 (the
      training mask, :func:`minecp.masks.ecp_rule`). The keys a new token at position p
      may see are therefore exactly: all of segment p // S - 1 and the positions of
      segment p // S up to p. That is what the cache holds — nothing else is needed,
      and nothing older can ever be needed again, so "previous + current" is not an
      approximation. When a new segment starts, the old "previous" is dropped and the
      "current" becomes the "previous".
    * Keys/values of a position depend only on that position's hidden state, which
      depends only on earlier positions (causality), so they never change once computed.
    * For positions < N this is literally the training forward (tested to 1e-5). For
      positions >= N each layer applies the same rule at the same relative offsets (RoPE
      scores depend only on i - j), with borders where training put them. If
      L < s (layers < segments), position p depends only on tokens from segment
      p // S - L on, i.e. L + 1 <= s segments, so its output equals the output of a
      training window that starts at that segment border. With L >= s, positions past
      N see further back than any training position could — the same per-layer
      function, applied to a longer history.
    * The authors' generation instead re-ran a sliding window of the last N tokens, so the
      borders moved relative to the tokens and the function changed from token to
      token (ARCHITECTURES.md, "Known quirks").

    Memory: L layers x (K and V) x 2S positions x d values — O(L * S * d), independent of
    how many tokens are generated. Work per token: one query against <= 2S keys per layer.
    A prompt of any length is fed segment by segment, so the prefill is bounded too.
    """

    def __init__(self, model: LanguageModel):
        super().__init__(model)
        cfg = self.config
        self.S = cfg.segment_len
        self.caches = [KVCache(cfg.n_heads, cfg.head_dim, 2 * self.S, self.dtype, self.device)
                       for _ in model.blocks]
        self.position = 0                      # absolute position of the next token

    def _feed(self, ids: Sequence[int]) -> torch.Tensor:
        """Feed tokens that all lie in one segment; returns hidden states [1, T, d]."""
        p, S = self.position, self.S
        # Keys from segment (p // S) - 1 on are visible to the new queries; older ones
        # can never be seen again. At the first token of a segment this drops the old
        # "previous" segment and the "current" becomes the "previous".
        keep_from = max(p // S - 1, 0) * S
        for cache in self.caches:
            cache.drop_before(keep_from)
        positions = torch.arange(p, p + len(ids), device=self.device)
        hidden = _forward_chunk(self.model, self.caches, self._embed(ids), positions)
        self.position += len(ids)
        return hidden

    @torch.no_grad()
    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Start a text: ``ids`` (ints in [0, vocab_size), any length >= 1) at absolute
        positions 0.., fed one segment-aligned chunk at a time (bounded work and memory).

        Returns:
            float32 logits [vocab_size] for the token after ``ids``.
        """
        for cache in self.caches:
            cache.reset()
        self.position = 0
        ids = list(ids)
        i = 0
        while i < len(ids):                    # chunks that end at segment borders
            n = min(self.S - self.position % self.S, len(ids) - i)
            hidden = self._feed(ids[i:i + n])
            i += n
        return self._logits(hidden[0, -1])

    @torch.no_grad()
    def step(self, token: int) -> torch.Tensor:
        """Append ``token`` at the next absolute position; returns float32 logits [vocab_size]
        for the token after it (one query per layer against <= 2S cached keys)."""
        return self._logits(self._feed([token])[0, -1])

    def cache_entries(self) -> list[int]:
        return [c.length for c in self.caches]

    def cache_bytes(self) -> int:
        return sum(c.nbytes for c in self.caches)


class WindowKVDecoder(Decoder):
    """Dense and PerceiverAR-family decoding: KV cache inside a window that jumps.

    These models read windows of at most N tokens, with window-relative positions
    0..N-1 (the training setup). The decoder keeps a *window* of the text, which starts
    at some token and ends at the newest one, and predicts exactly what the model's full
    forward predicts on that window:

    * dense: ``model(window)[-1]`` (dense accepts windows shorter than N);
    * PerceiverAR family: the window right-padded to N tokens, logit row
      ``len(window) - 1 - C``. The padding is invisible: latents are causal and the
      context (the first C tokens, all real) never looks at latents.

    Within a window (fixed start) a new token does not change any earlier position:
    dense is causal; in the PerceiverAR family the context attends only to the context,
    and latents are causal. So every layer's keys/values can be cached and a new token
    costs one query per layer — cached: dense layers, PerceiverAR's layer-1 keys of all N
    positions and layers 2..L latent keys, the enhanced/segmented models' context + latent
    keys, and the compressed model's C' compressed-context + latent keys.

    When the window is full (N tokens) and a token arrives, the window must move. Moving
    it by one token would change *everything*: dense positions get new relative offsets
    to a different first token and lose the oldest one from their attention; in the
    PerceiverAR family the context/latent split moves, every latent loses the oldest
    context token, and the (bidirectional) context of the enhanced/compressed/segmented
    models is a different set. No cached key would stay valid. So the window instead
    jumps forward by ``slide`` tokens and is re-encoded from scratch (one full forward
    pass every ``slide`` tokens). Each prediction then sees between N + 1 - slide and N
    tokens. (``use_cache=False`` — :class:`RecomputeDecoder` — slides by one token and
    recomputes every time: always N tokens of context, N times the work.)

    The first window is the prompt's last N tokens (so a prompt longer than N is read
    from its last N tokens; the returned ids still contain the whole prompt). The
    PerceiverAR family needs at least C + 1 tokens (one latent) in a window: shorter
    prompts are left-padded with ``pad_id`` to C + 1 tokens, as if the text had begun
    with those pad tokens; ``slide`` may be at most M so that every window keeps a latent.

    Args:
        model: a dense or PerceiverAR-family model.
        slide: tokens the window jumps when full; default ``N // 4`` (capped at M for
            the PerceiverAR family), at least 1.
        pad_id: token id used for the left padding described above.

    Raises:
        ValueError: ``slide`` out of range (the message names ``slide``), ``pad_id``
            outside the vocabulary, or an ECP model (use :class:`ECPDecoder`).
    """

    def __init__(self, model: LanguageModel, slide: int | None = None, pad_id: int = 0):
        super().__init__(model)
        cfg = self.config
        if model.name == "ecp":
            raise ValueError("ECP has its own cache with absolute positions: use ECPDecoder")
        self.perceiver = model.name != "dense"
        N = cfg.seq_len
        self.min_window = cfg.context_len + 1 if self.perceiver else 1
        max_slide = cfg.latent_len if self.perceiver else N
        if slide is None:
            slide = max(1, min(N // 4, max_slide))
        if not isinstance(slide, int) or isinstance(slide, bool) or not 1 <= slide <= max_slide:
            raise ValueError(f"slide must be an int in [1, {max_slide}] for {model.name}, got {slide!r}")
        _check_token_id("pad_id", pad_id, cfg.vocab_size)
        self.slide, self.pad_id = slide, pad_id
        self.caches = [KVCache(cfg.n_heads, cfg.head_dim, N, self.dtype, self.device)
                       for _ in model.blocks]
        self.window: list[int] = []            # token ids of the current window
        self.reencodes = 0                     # how many times a window was encoded

    @torch.no_grad()
    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Start a text: encode its last N tokens (left-padded with ``pad_id`` to C + 1
        tokens for the PerceiverAR family) as the first window.

        Returns:
            float32 logits [vocab_size] for the token after ``ids``.
        """
        ids = list(ids)
        ids = [self.pad_id] * max(0, self.min_window - len(ids)) + ids
        return self._encode(ids[-self.config.seq_len:])

    @torch.no_grad()
    def step(self, token: int) -> torch.Tensor:
        """Append ``token``: one cached query per layer, or, when the window is full, a
        jump by ``slide`` tokens and a re-encode. Returns float32 logits [vocab_size]."""
        N = self.config.seq_len
        if len(self.window) == N:              # full: jump forward and re-encode
            return self._encode(self.window[self.slide:] + [token])
        t = len(self.window)                   # window-relative position of the new token
        self.window.append(token)
        hidden = _forward_chunk(self.model, self.caches, self._embed([token]),
                                torch.tensor([t], device=self.device))
        return self._logits(hidden[0, -1])

    def _encode(self, window: list[int]) -> torch.Tensor:
        """Encode a whole window from scratch, fill the caches, return the last logits."""
        self.window = list(window)
        self.reencodes += 1
        for cache in self.caches:
            cache.reset()
        n, N = len(window), self.config.seq_len
        if not self.perceiver:
            # Dense: the causal chunk forward *is* the model's trunk on the window.
            hidden = _forward_chunk(self.model, self.caches, self._embed(window),
                                    torch.arange(n, device=self.device))
            return self._logits(hidden[0, -1])
        # PerceiverAR family: run the model's own forward on the window right-padded to
        # N and record every layer's keys/values.
        idx = torch.tensor([window + [self.pad_id] * (N - n)], device=self.device)
        with _RecordKeysValues(self.model) as records:
            hidden = self.model.features(idx)          # [1, M, d], latents only
        # In every layer the last N - n key positions are padding (latents after the
        # window's end): PerceiverAR layer 1 has N keys, later layers M; enhanced and
        # segmented N; compressed N then C' + M. Drop them; keep the rest.
        for cache, (k, v) in zip(self.caches, records):
            keep = k.shape[2] - (N - n)
            cache.append(k[:, :, :keep], v[:, :, :keep])
        return self._logits(hidden[0, n - 1 - self.config.context_len])

    def cache_entries(self) -> list[int]:
        return [c.length for c in self.caches]

    def cache_bytes(self) -> int:
        return sum(c.nbytes for c in self.caches)


class RecomputeDecoder(Decoder):
    """No cache: one forward pass per token (the baseline, and the authors' method).

    * dense and the PerceiverAR family: the window is the last N tokens of the text (it
      slides by one token per step, so every prediction sees N tokens once the text is
      that long); the PerceiverAR family right-pads windows shorter than N and left-pads
      texts shorter than C + 1 with ``pad_id``, exactly as :class:`WindowKVDecoder`
      does. While the text is at most N tokens long this equals the cached path.
    * ECP: position p depends only on tokens from segment p // S - L on (the receptive
      field, ARCHITECTURES.md Sec. 6). We run the model's blocks on exactly those tokens
      at their absolute positions (padded to whole segments). The first segment of that
      slice is computed without its predecessor, but the error this causes moves one
      segment forward per layer and never reaches segment p // S — so the result equals
      :class:`ECPDecoder` (tested), at (L + 1) S tokens of work per step.

    Args:
        model: any minecp model.
        pad_id: see :class:`WindowKVDecoder`.
    """

    def __init__(self, model: LanguageModel, pad_id: int = 0):
        super().__init__(model)
        _check_token_id("pad_id", pad_id, self.config.vocab_size)
        self.pad_id = pad_id
        self.text: list[int] = []              # the tail of the text that is still needed
        self.offset = 0                        # absolute position of self.text[0] (ECP)

    @torch.no_grad()
    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Start a text (PerceiverAR family: left-padded to C + 1 tokens); returns float32
        logits [vocab_size] from one full forward pass."""
        ids = list(ids)
        if self.model.name in PERCEIVER_FAMILY:
            ids = [self.pad_id] * max(0, self.config.context_len + 1 - len(ids)) + ids
        self.text, self.offset = ids, 0
        return self._predict()

    @torch.no_grad()
    def step(self, token: int) -> torch.Tensor:
        """Append ``token``; returns float32 logits [vocab_size] from a new forward pass."""
        self.text.append(token)
        return self._predict()

    def _predict(self) -> torch.Tensor:
        cfg, model = self.config, self.model
        N = cfg.seq_len
        if model.name == "ecp":
            S, L = cfg.segment_len, cfg.n_layers
            end = self.offset + len(self.text)         # absolute position after the text
            first = max((end - 1) // S - L, 0) * S     # start of the receptive field
            self.text = self.text[first - self.offset:]
            self.offset = first
            n = len(self.text)
            padded = -(-n // S) * S
            x = F.pad(self._embed(self.text), (0, 0, 0, padded - n))
            rope = model.rope(torch.arange(first, first + padded, device=self.device))
            attend = ecp_attend(S, getattr(model, "attention_backend", "auto"))
            for block in model.blocks:
                x = block(x, rope, attend)
            return self._logits(model.ln_final(x)[0, n - 1])
        self.text = self.text[-N:]
        window = self.text
        if model.name == "dense":
            return self._logits(model.features(torch.tensor([window], device=self.device))[0, -1])
        n = len(window)
        idx = torch.tensor([window + [self.pad_id] * (N - n)], device=self.device)
        return self._logits(model.features(idx)[0, n - 1 - cfg.context_len])


def make_decoder(model: LanguageModel, use_cache: bool = True, slide: int | None = None,
                 pad_id: int = 0) -> Decoder:
    """The decoder :func:`generate` uses for ``model``.

    Args:
        model: any minecp model (put it in eval mode first).
        use_cache: ``True``: :class:`ECPDecoder` for ECP, :class:`WindowKVDecoder`
            otherwise; ``False``: :class:`RecomputeDecoder`. Must be a bool: a truthy
            string such as ``"no"`` would otherwise silently mean "use the cache".
        slide: window jump of :class:`WindowKVDecoder`; None means its default. Only the
            cached dense / PerceiverAR path has a window that jumps, so a ``slide`` given
            for ECP or with ``use_cache=False`` is refused rather than ignored.
        pad_id: left padding for PerceiverAR-family prompts shorter than C + 1 tokens.
            Checked to be a token id for every model (a pad outside the vocabulary is a
            bug wherever it is passed), but dense and ECP never pad, so there it has no
            effect.

    Returns:
        A :class:`Decoder`.

    Raises:
        TypeError: ``model`` is not a minecp model, or ``use_cache`` is not a bool.
        ValueError: ``slide`` out of range or given where it does not apply, or
            ``pad_id`` not in [0, vocab_size); the message names the parameter.
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a minecp LanguageModel, got {type(model).__name__}")
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be True or False, got {use_cache!r}")
    _check_token_id("pad_id", pad_id, model.config.vocab_size)
    if slide is not None and (model.name == "ecp" or not use_cache):
        raise ValueError(f"slide applies only to the cached window of dense and PerceiverAR-family models "
                         f"(use_cache=True); got slide={slide!r} for {model.name} with use_cache={use_cache}: "
                         "leave slide=None")
    if not use_cache:
        return RecomputeDecoder(model, pad_id=pad_id)
    if model.name == "ecp":
        return ECPDecoder(model)
    return WindowKVDecoder(model, slide=slide, pad_id=pad_id)


# ------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------
def _check_sampling(temperature, top_k, top_p) -> None:
    """ValueError naming the parameter for a bad temperature / top_k / top_p."""
    if (not isinstance(temperature, (int, float)) or isinstance(temperature, bool)
            or not temperature >= 0 or temperature == float("inf")):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or isinstance(top_p, bool)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> int:
    """Pick the next token id from logits.

    Order of operations (the usual one): temperature, then top-k, then top-p (nucleus,
    Holtzman et al. 2020), then a draw from the renormalised distribution.

    Temperature is applied as ``(logits - max) / temperature`` in float64. Softmax does
    not change when a constant is subtracted, but this way the best token scores exactly
    0 and the others go to -inf as the temperature goes to 0, so a tiny positive
    temperature (1e-40) gives the argmax probability 1 — the greedy limit — instead of
    overflowing to inf / inf = NaN in the sampler. The one remaining non-finite case,
    logits holding +inf (an overflowed model; inf - inf = NaN), falls back to greedy
    argmax: the +inf token is the limit of the distribution.

    Args:
        logits: floating-point tensor [vocab_size] (any device and float dtype); -inf
            means "never this token"; NaN is refused.
        temperature: finite number >= 0. 0 means greedy (argmax, lowest id on ties;
            ``top_k``/``top_p`` are then irrelevant); otherwise scores are divided by it
            (< 1 sharpens, > 1 flattens).
        top_k: None or an int >= 1: keep the k highest scores (and any tied with the
            k-th); ``top_k >= vocab_size`` keeps every token, ``top_k=1`` is greedy.
        top_p: None or a number in (0, 1]: keep the smallest set of most likely tokens
            whose probability reaches ``top_p``. The most likely token is always kept, so
            a tiny ``top_p`` is greedy and ``top_p=1`` keeps every token.
        generator: None (global RNG) or a CPU ``torch.Generator`` for reproducible draws.

    Returns:
        The token id (int in [0, vocab_size)).

    Raises:
        TypeError: ``logits`` is not a floating-point tensor, or ``generator`` is not a
            CPU ``torch.Generator``.
        ValueError: ``logits`` is not 1-D and non-empty, holds NaN, or is -inf
            everywhere; ``temperature``, ``top_k`` or ``top_p`` out of range (the message
            names the parameter).
    """
    _check_sampling(temperature, top_k, top_p)
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor [vocab_size], got {type(logits).__name__}"
                        + (f" of dtype {logits.dtype}" if isinstance(logits, torch.Tensor) else ""))
    if logits.dim() != 1 or logits.numel() == 0:
        raise ValueError(f"logits must be a non-empty 1-D tensor [vocab_size], got shape {tuple(logits.shape)}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise TypeError(f"generator must be None or a CPU torch.Generator, got {generator!r}")
    # Sample on the CPU: the same seed gives the same text on every device.
    raw = logits.detach().cpu().double()
    if raw.isnan().any() or raw.max() == float("-inf"):
        raise ValueError("logits must not contain NaN and must allow at least one token (not all -inf)")
    if temperature == 0 or top_k == 1:
        return int(torch.argmax(raw))
    scores = (raw - raw.max()) / temperature
    if scores.isnan().any():                   # +inf logits: inf - inf
        return int(torch.argmax(raw))
    scores = scores.float()
    if top_k is not None and top_k < scores.numel():
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        # mass of the tokens ranked strictly before each token; drop a token once the
        # tokens before it already reach top_p.
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop = mass_before >= top_p
        scores[order[drop]] = float("-inf")
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


# ------------------------------------------------------------------------------------------
# generate / generate_stream
# ------------------------------------------------------------------------------------------
def _check_token_id(name: str, value, vocab_size: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, vocab_size={vocab_size}), got {value!r}")


def _prompt_list(prompt_ids, vocab_size: int) -> list[int]:
    """Check ``prompt_ids`` (see :func:`generate`) and return it as a list of ints."""
    if isinstance(prompt_ids, (list, tuple)):
        # Element by element: torch.tensor(..., dtype=long) would silently turn 1.5 into 1
        # and True into 1, and a nested list is not how a batch of one is written here.
        bad = [x for x in prompt_ids if not isinstance(x, numbers.Integral) or isinstance(x, (bool, np.bool_))]
        if bad:
            raise TypeError(f"prompt_ids as a list/tuple must be a flat sequence of ints [T]; got an element "
                            f"{bad[0]!r} of type {type(bad[0]).__name__}")
        ids = [int(x) for x in prompt_ids]
    elif isinstance(prompt_ids, (torch.Tensor, np.ndarray)):
        integer = (np.issubdtype(prompt_ids.dtype, np.integer) if isinstance(prompt_ids, np.ndarray) else
                   not (prompt_ids.is_floating_point() or prompt_ids.is_complex() or prompt_ids.dtype == torch.bool))
        if not integer:
            raise TypeError(f"prompt_ids must hold integer token ids, got dtype {prompt_ids.dtype}")
        shape = tuple(prompt_ids.shape)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != 1):
            raise ValueError(f"prompt_ids must be [T] or [1, T] (one prompt), got shape {shape}")
        ids = prompt_ids.reshape(-1).tolist()
    else:
        raise TypeError("prompt_ids must be an integer torch tensor or numpy array [T] or [1, T], or a list "
                        f"of ints; got {type(prompt_ids).__name__}")
    if not ids:
        raise ValueError("prompt_ids is empty: the model needs at least one token to condition on")
    lo, hi = min(ids), max(ids)
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"prompt_ids must lie in [0, vocab_size={vocab_size}), got ids in [{lo}, {hi}]")
    return ids


def _validate(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, eos_id):
    """Check every argument; return the prompt as a list of ints."""
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a minecp LanguageModel, got {type(model).__name__}")
    V = model.config.vocab_size
    ids = _prompt_list(prompt_ids, V)
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    _check_sampling(temperature, top_k, top_p)
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed must be None or an int, got {seed!r}")
    if eos_id is not None:
        _check_token_id("eos_id", eos_id, V)
    return ids


def generate_stream(model: LanguageModel, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                    *, use_cache: bool = True, slide: int | None = None, pad_id: int = 0,
                    eos_id: int | None = None) -> Iterator[int]:
    """Generate tokens one at a time, yielding each new token id as soon as it is chosen.

    Same arguments as :func:`generate`. Arguments are checked when this function is
    called (not at the first ``next()``), so bad arguments raise immediately.

    The model is switched to eval mode while the iterator runs and restored to its
    previous mode when the iterator finishes or is closed.

    Returns:
        An iterator of ints (the new token ids, at most ``max_new_tokens`` of them).

    Raises:
        TypeError, ValueError: as :func:`generate`, at the call.
    """
    prompt = _validate(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, eos_id)
    decoder = make_decoder(model, use_cache=use_cache, slide=slide, pad_id=pad_id)
    generator = None if seed is None else torch.Generator().manual_seed(seed)

    def tokens() -> Iterator[int]:
        if max_new_tokens == 0:
            return
        was_training = model.training
        model.eval()
        try:
            logits = decoder.prefill(prompt)
            for i in range(max_new_tokens):
                token = sample_next_token(logits, temperature, top_k, top_p, generator)
                yield token
                if token == eos_id or i == max_new_tokens - 1:
                    return
                logits = decoder.step(token)
        finally:
            model.train(was_training)

    return tokens()


def generate(model: LanguageModel, prompt_ids, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
             *, use_cache: bool = True, slide: int | None = None, pad_id: int = 0,
             eos_id: int | None = None) -> torch.Tensor:
    """Continue a prompt with up to ``max_new_tokens`` sampled tokens.

    Each architecture decodes with the cache it allows (module docstring): ECP with a
    per-layer cache of the previous and the current segment at absolute positions
    (arXiv 2412.06106 (as specified in ARCHITECTURES.md §6) — bounded memory, no length limit); dense and the
    PerceiverAR family with a KV cache inside a window of at most N tokens that jumps by
    ``slide`` tokens when full.

    Prompts longer than the model's window: ECP reads all of it (no limit); dense and the
    PerceiverAR family condition on the prompt's *last* N tokens (a left cut — never a
    cut in the middle), and the returned ids still contain the whole prompt.
    PerceiverAR-family prompts shorter than C + 1 tokens are left-padded with ``pad_id``
    (the model needs a full context before its first latent).

    Args:
        model: a minecp model (any device/dtype; put in eval mode during the call).
        prompt_ids: the prompt, T >= 1 ids in [0, vocab_size): an integer torch tensor
            or numpy array [T] or [1, T] (any integer dtype, e.g. the uint16 arrays of
            ``Tokenizer.encode`` and of encoded corpora), or a flat list/tuple of ints
            (Python or numpy ints; floats and bools are refused, not rounded).
        max_new_tokens: number of tokens to generate (>= 0).
        temperature: softmax temperature, a finite number >= 0; 0 means greedy decoding,
            and a tiny positive value approaches it without overflow (see
            :func:`sample_next_token`).
        top_k: None or an int >= 1: sample only among the k most likely tokens (k >=
            vocab_size keeps all).
        top_p: None or a number in (0, 1]: nucleus sampling.
        seed: None or an int: seeds a private CPU ``torch.Generator``, so the same seed
            gives the same text (the global RNG is left alone).
        use_cache: bool; False re-runs a forward pass for every token (see
            :class:`RecomputeDecoder`).
        slide: None or the window jump of the cached dense / PerceiverAR path (see
            :class:`WindowKVDecoder`); refused for ECP and with ``use_cache=False``,
            which have no jumping window.
        pad_id: left-padding token for short PerceiverAR-family prompts; must be in
            [0, vocab_size) for every model, but only that family uses it.
        eos_id: stop after this token is generated (it is included in the output).

    Returns:
        LongTensor (int64, whatever integer dtype the prompt had) with the prompt followed
        by the new tokens, in the prompt's layout:
        [T + n] for a 1-D prompt, [1, T + n] for a [1, T] prompt (n <= max_new_tokens),
        on the prompt tensor's device (CPU for a list or numpy array).

    Raises:
        ValueError: ``temperature`` not a finite number >= 0, ``top_p`` not in (0, 1],
            ``top_k`` < 1, an empty ``prompt_ids``, ids outside the vocabulary, more than
            one prompt or a 3-D ``prompt_ids``, a negative ``max_new_tokens``, ``slide``
            out of range or not applicable, ``pad_id``/``eos_id`` not a token id; the
            message names the parameter.
        TypeError: ``model`` is not a minecp model, ``prompt_ids`` is not integer (a float,
            bool or nested element, a float dtype, another type), or ``use_cache`` is not
            a bool.
    """
    new = list(generate_stream(model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed,
                               use_cache=use_cache, slide=slide, pad_id=pad_id, eos_id=eos_id))
    prompt = _prompt_list(prompt_ids, model.config.vocab_size)    # already checked above
    device = prompt_ids.device if isinstance(prompt_ids, torch.Tensor) else "cpu"
    out = torch.tensor(prompt + new, dtype=torch.long, device=device)
    return out[None] if getattr(prompt_ids, "ndim", 1) == 2 else out


# ------------------------------------------------------------------------------------------
# Command line: python -m minecp generate --checkpoint ... --prompt "..."
# ------------------------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    """Add the ``generate`` sub-command to an ``argparse`` sub-parser collection.

    Usage: ``python -m minecp generate --checkpoint ckpt.pt --prompt "Once upon a time"
    [--max-new-tokens 200] [--temperature 1.0] [--top-k K] [--top-p P] [--seed S]
    [--no-cache] [--device cpu|cuda|auto]``. The text is printed while it is generated.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    p = subparsers.add_parser("generate", help="continue a prompt with a trained checkpoint",
                              description="Sample a continuation of --prompt from a checkpoint, "
                                          "printing the text as it is generated.")
    p.add_argument("--checkpoint", required=True, help="path of a checkpoint written by training")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1]")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--no-cache", action="store_true", help="re-run the model for every token")
    p.add_argument("--pad-id", type=int, default=0,
                   help="left padding for PerceiverAR-family prompts shorter than C + 1 tokens")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda if available)")
    p.set_defaults(func=_cli_generate)


def _encode(tokenizer, text: str) -> list[int]:
    """tokenizer.encode(text) as a list of ints (it may return a list, an array, a tensor)."""
    ids = tokenizer.encode(text)
    if hasattr(ids, "ids"):                    # a Hugging Face `tokenizers` Encoding
        ids = ids.ids
    if hasattr(ids, "tolist"):                 # numpy array or torch tensor
        ids = ids.reshape(-1).tolist()
    return [int(i) for i in ids]


def _cli_generate(args, out=None) -> int:
    """Handler of ``minecp generate``: load, generate, print text as tokens arrive."""
    from .checkpoint import load_model         # lazy: only this command needs it

    out = out or sys.stdout
    model, tokenizer, _meta = load_model(args.checkpoint, map_location="cpu")
    if not isinstance(model, LanguageModel):
        raise ValueError(f"checkpoint {args.checkpoint!r} holds a {type(model).__name__}, "
                         "not a language model: it cannot generate text")
    if tokenizer is None:
        raise ValueError(f"checkpoint {args.checkpoint!r} has no tokenizer: cannot turn --prompt into ids")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device)
    prompt = _encode(tokenizer, args.prompt)
    if not prompt:
        raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens; give some text to continue")
    stream = generate_stream(model, torch.tensor(prompt, dtype=torch.long), args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             seed=args.seed, use_cache=not args.no_cache, pad_id=args.pad_id)
    # Tokens are not characters: a word piece ("##ing") joins the previous word, and a
    # byte-level token may be half of a UTF-8 character. So we decode prompt + new ids
    # each time and print only what was added since the last print (quadratic in the
    # length, fine for a CLI), holding back text that ends in an incomplete character
    # (decoded as U+FFFD) until the next token completes it.
    ids = list(prompt)
    printed = tokenizer.decode(ids)
    out.write(printed)
    out.flush()
    text = printed
    for token in stream:
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue                           # maybe the first bytes of a character
        # (if decoding changed earlier text we cannot take back what was printed; we
        # print what follows it)
        out.write(text[len(printed):])
        printed = text
        out.flush()
    out.write(text[len(printed):] + "\n")     # whatever was still held back
    out.flush()
    return 0
