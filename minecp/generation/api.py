"""``generate`` and ``generate_stream``: prompt ids in, new ids out (checked inputs, a decoder, a sampler)."""

from __future__ import annotations

import numbers
from typing import Iterator

import numpy as np
import torch

from ..config import to_int
from ..models.base import LanguageModel
from .decoders import check_token_id, make_decoder
from .sampling import check_sampling, sample_next_token


# ------------------------------------------------------------------------------------------
# generate / generate_stream
# ------------------------------------------------------------------------------------------
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
    """Check every argument; return them as builtin Python values (the prompt as a list of ints)."""
    if not isinstance(model, LanguageModel):
        raise TypeError(f"model must be a minecp LanguageModel, got {type(model).__name__}")
    V = model.config.vocab_size
    ids = _prompt_list(prompt_ids, V)
    n = to_int(max_new_tokens)
    if n is None or n < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
    if seed is not None and to_int(seed) is None:
        raise ValueError(f"seed must be None or an int, got {seed!r}")
    seed = None if seed is None else to_int(seed)
    eos_id = None if eos_id is None else check_token_id("eos_id", eos_id, V)
    return ids, n, temperature, top_k, top_p, seed, eos_id


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
    prompt, max_new_tokens, temperature, top_k, top_p, seed, eos_id = _validate(
        model, prompt_ids, max_new_tokens, temperature, top_k, top_p, seed, eos_id)
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
    (arXiv 2412.06106; docs/architectures.md §6 — bounded memory, no length limit); dense and the
    PerceiverAR family with a KV cache inside a window of at most N tokens that jumps by
    ``slide`` tokens when full.

    Prompts longer than the model's window: ECP reads all of it (no limit); dense and the
    PerceiverAR family condition on the prompt's *last* N tokens (a left cut — never a
    cut in the middle), and the returned ids still contain the whole prompt.
    PerceiverAR-family prompts shorter than C + 1 tokens are left-padded with ``pad_id``
    (the model needs a full context before its first latent).

    Numbers may be Python or numpy numbers or 0-d tensors, e.g. ``eos_id=tok.encode("\\n")[-1]``
    (a numpy uint16); integer arguments refuse bools and floats rather than rounding them.

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
            one prompt or a 3-D ``prompt_ids``, a negative or non-int ``max_new_tokens``,
            a ``seed`` that is not None or an int, ``slide`` out of range or not
            applicable, ``pad_id``/``eos_id`` not a token id; the message names the
            parameter.
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
