"""The incremental decoders, ``prefill(prompt) -> logits`` and ``step(token) -> logits``, one per caching policy."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..attention import ecp_attend
from ..config import to_int
from ..models.base import LanguageModel
from .cache import PERCEIVER_FAMILY, KVCache, RecordKeysValues, forward_chunk


def check_token_id(name: str, value, vocab_size: int) -> int:
    """Check that ``value`` is a token id and return it as a builtin int.

    Args:
        name: the parameter's name, for the error message (e.g. "pad_id").
        value: an integer (Python or numpy int, e.g. from ``Tokenizer.encode``'s uint16
            array, or a 0-d integer tensor) in [0, vocab_size).
        vocab_size: the model's number of token ids.

    Returns:
        ``value`` as an int.

    Raises:
        ValueError: ``value`` is not an integer (a bool or a float is refused, not
            rounded) or lies outside [0, vocab_size); the message names ``name``.
    """
    token = to_int(value)
    if token is None or not 0 <= token < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, vocab_size={vocab_size}), got {value!r}")
    return token


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

    Cached path for :class:`minecp.models.ECP` (arXiv 2412.06106;
    docs/architectures.md §6). Token t of the text sits at *absolute* position t, forever:
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
      token (docs/architectures.md, "Known quirks").

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
        hidden = forward_chunk(self.model, self.caches, self._embed(ids), positions)
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
        checked = max(1, min(N // 4, max_slide)) if slide is None else to_int(slide)
        if checked is None or not 1 <= checked <= max_slide:
            raise ValueError(f"slide must be an int in [1, {max_slide}] for {model.name}, got {slide!r}")
        self.slide, self.pad_id = checked, check_token_id("pad_id", pad_id, cfg.vocab_size)
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
        hidden = forward_chunk(self.model, self.caches, self._embed([token]),
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
            hidden = forward_chunk(self.model, self.caches, self._embed(window),
                                    torch.arange(n, device=self.device))
            return self._logits(hidden[0, -1])
        # PerceiverAR family: run the model's own forward on the window right-padded to
        # N and record every layer's keys/values.
        idx = torch.tensor([window + [self.pad_id] * (N - n)], device=self.device)
        with RecordKeysValues(self.model) as records:
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
      field, docs/architectures.md Sec. 6). We run the model's blocks on exactly those tokens
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
        self.pad_id = check_token_id("pad_id", pad_id, self.config.vocab_size)
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
    check_token_id("pad_id", pad_id, model.config.vocab_size)
    if slide is not None and (model.name == "ecp" or not use_cache):
        raise ValueError(f"slide applies only to the cached window of dense and PerceiverAR-family models "
                         f"(use_cache=True); got slide={slide!r} for {model.name} with use_cache={use_cache}: "
                         "leave slide=None")
    if not use_cache:
        return RecomputeDecoder(model, pad_id=pad_id)
    if model.name == "ecp":
        return ECPDecoder(model)
    return WindowKVDecoder(model, slide=slide, pad_id=pad_id)
