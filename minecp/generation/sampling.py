"""Choosing the next token from logits: greedy, temperature, top-k, top-p (nucleus)."""

from __future__ import annotations

import math

import torch

from ..config import to_int, to_real


# ------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------
def check_sampling(temperature, top_k, top_p) -> tuple[float, int | None, float | None]:
    """Check the sampling parameters of :func:`sample_next_token`.

    Numbers may be Python or numpy numbers or 0-d tensors (integers for ``top_k``).

    Returns:
        ``(temperature, top_k, top_p)`` as builtin float, int / None, float / None.

    Raises:
        ValueError: ``temperature`` not a finite number >= 0, ``top_k`` not None or an
            int >= 1 (bools and floats are refused), ``top_p`` not None or a number in
            (0, 1]; the message names the parameter.
    """
    t = to_real(temperature)
    if t is None or not 0 <= t < math.inf:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    k = None if top_k is None else to_int(top_k)
    if top_k is not None and (k is None or k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    p = None if top_p is None else to_real(top_p)
    if top_p is not None and (p is None or not 0 < p <= 1):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
    return t, k, p


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
        temperature: finite number >= 0 (Python or numpy number, or a 0-d tensor, as
            ``top_k`` and ``top_p``). 0 means greedy (argmax, lowest id on ties;
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
    temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
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
