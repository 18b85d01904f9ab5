"""Sliding-window evaluation: every token scored exactly once, with maximal left context.

The authors' evaluation (docs/architectures.md, "Known quirks") averages the loss over every
position of overlapping windows, so tokens are counted twice and early-window tokens get
almost no context. The standard instead (as in the Hugging Face perplexity guide and
Transformer-XL / PG-19 practice):

* slide a window of N input tokens over the text with a step of ``stride``;
* in each window score only the targets that no earlier window scored — they sit at the
  end of the window and therefore see at least ``N - stride`` tokens of left context;
* the first window also scores every target it can predict.

A model predicts the last T = ``model.num_predicted`` positions of a window, so the first
window cannot score positions 0 .. N - T (position 0 never has a left context; the
PerceiverAR family also never predicts its C = N - T context positions). Those
``N - T + 1`` prefix tokens are the only ones never scored. Every later token is scored
once as long as ``stride <= T`` (otherwise some targets would fall into the unpredicted
part of their window).

Multi-document splits (PG-19's books, WikiText's articles) are scored as one stream:
the documents are joined with a blank line (:data:`minecp.data.sources.BOOK_SEPARATOR`)
and windows run across the seams, so the first tokens of a book see the end of the
previous one as context, as in the usual concatenated-stream evaluation. That touches
about N tokens per seam (the PG-19 mirror's test split has three books, so two seams in
a 1.71 M-token stream under the cpu-small tokenizer).

Units: NLL in nats (natural log); bits = nats / ln 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import LanguageModel

LN2 = math.log(2.0)


def _check_int(name: str, value, minimum: int) -> None:
    """ValueError naming ``name`` unless ``value`` is an int (not a bool) >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Window:
    """One evaluation window: inputs ``ids[start : start + length]``.

    The model returns logits for the last ``predicted`` input positions; of those, rows
    ``first_row ..`` are scored. Row j predicts the token at absolute position
    ``start + length - predicted + j + 1``.
    """

    start: int
    length: int
    predicted: int
    first_row: int

    @property
    def scored_positions(self) -> range:
        """Absolute positions of the tokens this window scores."""
        first = self.start + self.length - self.predicted + self.first_row + 1
        return range(first, self.start + self.length + 1)


def window_plan(num_tokens: int, seq_len: int, num_predicted: int, stride: int | None = None,
                accepts_shorter: bool = False) -> list[Window]:
    """The windows that score a text of ``num_tokens`` tokens exactly once.

    Args:
        num_tokens: L, the length of the token sequence (>= 2).
        seq_len: N, the window length the model reads.
        num_predicted: T, how many final positions of a window the model predicts.
        stride: step between window starts; 1 <= stride <= T. Default ``min(N // 2, T)``:
            every scored token then sees at least N / 2 tokens of left context.
        accepts_shorter: the model can read windows shorter than N (dense, ECP); a text
            with fewer than N + 1 tokens is then scored in one short window.

    Returns:
        Windows in text order. Together they score positions ``N - T + 1 .. L - 1``
        (``1 .. L - 1`` for a short text read by a model that accepts shorter windows),
        each exactly once.

    Raises:
        ValueError: ``stride`` outside [1, T]; fewer than 2 tokens; a text shorter than
            N + 1 tokens for a model that reads only full windows.
    """
    N, T, L = seq_len, num_predicted, num_tokens
    if not 1 <= T <= N:
        raise ValueError(f"num_predicted must be in [1, seq_len={N}], got {T}")
    stride = max(1, min(N // 2, T)) if stride is None else stride
    if not isinstance(stride, int) or isinstance(stride, bool) or not 1 <= stride <= T:
        raise ValueError(f"stride must be an int in [1, num_predicted={T}] (a larger step would skip "
                         f"tokens the model cannot predict), got {stride!r}")
    if L < 2:
        raise ValueError(f"need at least 2 tokens to score one, got {L}")
    if L - 1 < N:
        if not accepts_shorter:
            raise ValueError(f"the text has {L} tokens but this model reads windows of exactly "
                             f"seq_len={N} tokens (plus one target): need at least {N + 1} tokens")
        return [Window(0, L - 1, L - 1, 0)]
    last_start = L - 1 - N  # the window whose final target is the last token
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    windows, scored_until = [], N - T  # positions <= scored_until are done (or unreachable)
    for a in starts:
        first_predicted = a + N - T + 1
        first_row = scored_until + 1 - first_predicted
        windows.append(Window(a, N, T, first_row))
        scored_until = a + N
    return windows


@torch.no_grad()
def sliding_window_token_nll(model: LanguageModel, ids: torch.Tensor, stride: int | None = None,
                             batch_size: int = 8, progress: bool = False, window: int | None = None):
    """Per-token negative log-likelihood of a token sequence under the sliding-window scheme.

    Args:
        model: a minecp language model (any device); put in eval mode for the call.
        ids: LongTensor [L] of token ids.
        stride: window step, see :func:`window_plan` (default min(N // 2, T)).
        batch_size: windows per forward pass (all full windows have the same length N).
        progress: show a tqdm bar over batches.
        window: window length (default the model's seq_len N); only models that accept
            shorter windows (dense, ECP) allow a smaller one.

    Returns:
        (positions, nll): LongTensor [K] of scored positions (ascending) and float64 [K]
        of their NLL in nats.

    Raises:
        ValueError: ``model`` without the minecp model interface (``config.seq_len``,
            ``config.vocab_size``, ``num_predicted``, ``accepts_shorter``); ``ids`` not a
            1-D integer tensor or with ids outside [0, vocab_size); ``batch_size`` or
            ``window`` not an int >= 1; a window the model was not built for; or see
            :func:`window_plan`.
    """
    if not all(hasattr(model, a) for a in ("config", "num_predicted", "accepts_shorter", "parameters")):
        raise ValueError(f"model must be a minecp language model (see minecp.build_model), got "
                         f"{type(model).__name__}")
    if (not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.is_floating_point() or ids.is_complex()
            or ids.dtype == torch.bool):
        raise ValueError(f"ids must be a 1-D LongTensor of token ids, got "
                         f"{type(ids).__name__} {getattr(ids, 'dtype', '')} {tuple(getattr(ids, 'shape', ()))}")
    V = model.config.vocab_size
    if len(ids) and not (0 <= int(ids.min()) and int(ids.max()) < V):
        raise ValueError(f"ids must lie in [0, vocab_size={V}), got values in [{int(ids.min())}, {int(ids.max())}]")
    _check_int("batch_size", batch_size, 1)
    if window is not None:
        _check_int("window", window, 1)
    N, T = model.config.seq_len, model.num_predicted
    if window is not None and window != N:
        if not model.accepts_shorter or not 1 <= window < N:
            allowed = f"an int in [1, {N}]" if model.accepts_shorter else f"exactly {N}"
            raise ValueError(f"this {type(model).__name__} was built for seq_len={N}: window must be "
                             f"{allowed}, got {window}")
        N = T = window
    plan = window_plan(len(ids), N, T, stride, model.accepts_shorter)
    device = next(model.parameters()).device
    ids = ids.long()
    was_training = model.training
    model.eval()
    positions, nlls = [], []
    batches = [plan[i:i + batch_size] for i in range(0, len(plan), batch_size)]
    if progress:
        from tqdm.auto import tqdm
        batches = tqdm(batches, desc="evaluate", unit="batch", leave=False)
    try:
        for batch in batches:
            x = torch.stack([ids[w.start:w.start + w.length] for w in batch]).to(device)
            logits = model(x)  # [b, T, V]
            for i, w in enumerate(batch):
                pos = torch.tensor(w.scored_positions, dtype=torch.long)
                rows = logits[i, w.first_row:].double()  # float64: exact sums (8.000 bits, not 8.0000000219)
                nll = F.cross_entropy(rows, ids[pos].to(device), reduction="none")
                positions.append(pos)
                nlls.append(nll.double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(positions), torch.cat(nlls)


def sliding_window_nll(model: LanguageModel, ids: torch.Tensor, stride: int | None = None,
                       batch_size: int = 8, progress: bool = False, window: int | None = None) -> tuple[float, int]:
    """Total NLL (nats) of ``ids`` scoring every token once with maximal left context.

    See the module docstring and :func:`window_plan` for the scheme; the first
    ``N - T + 1`` tokens (just token 0 for dense/ECP models) are not scored.

    Args:
        model: a minecp language model.
        ids: LongTensor [L] of token ids.
        stride: window step, 1 <= stride <= model.num_predicted (default min(N // 2, T)).
        batch_size: windows per forward pass (int >= 1).
        progress: show a tqdm bar.
        window: window length (default N; smaller only for dense and ECP).

    Returns:
        (total NLL in nats as float, number of tokens scored as int).

    Raises:
        ValueError: see :func:`sliding_window_token_nll`.
    """
    _, nll = sliding_window_token_nll(model, ids, stride, batch_size, progress, window)
    return float(nll.sum()), int(nll.numel())


def lm_metrics(nll_nats: float, num_tokens: int, num_bytes: int, num_words: int | None = None) -> dict:
    """Turn a total NLL into the usual language-modelling figures.

    Args:
        nll_nats: total negative log-likelihood (nats) of the scored tokens.
        num_tokens: number of scored tokens.
        num_bytes: UTF-8 bytes of the text those tokens spell.
        num_words: whitespace-separated words of that text (optional).

    Returns:
        dict with ``nll_per_token`` (nats), ``token_ppl`` = exp(nll / tokens),
        ``bits_per_byte`` = nll / ln 2 / bytes (tokenizer independent) and, when
        ``num_words`` is given, ``word_ppl`` = exp(nll / words). A perplexity too large
        for a float (exponent > ~709 nats) is ``math.inf``.

    Raises:
        ValueError: ``num_tokens`` or ``num_bytes`` not positive.
    """
    if num_tokens <= 0 or num_bytes <= 0:
        raise ValueError(f"num_tokens and num_bytes must be positive, got {num_tokens}, {num_bytes}")
    out = {"nll_per_token": nll_nats / num_tokens, "token_ppl": _exp(nll_nats / num_tokens),
           "bits_per_byte": nll_nats / LN2 / num_bytes, "tokens": num_tokens, "bytes": num_bytes}
    if num_words:
        out["word_ppl"] = _exp(nll_nats / num_words)
        out["words"] = num_words
    return out


def _exp(x: float) -> float:
    """math.exp, but inf instead of OverflowError."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


# -- evaluating a corpus ------------------------------------------------------------------------
def evaluation_spans(num_tokens: int, max_tokens: int | None, num_spans: int = 4) -> list[tuple[int, int]]:
    """Which part of a long token stream to evaluate when it is capped.

    Args:
        num_tokens: length of the stream (int >= 0).
        max_tokens: cap on the tokens evaluated (None, 0 or >= num_tokens: all of them).
        num_spans: the cap is split into this many equal contiguous spans (int >= 1)
            centred at evenly spaced points of the stream ((i + 1/2) / num_spans), so a
            capped figure samples the whole split rather than only its first document's
            opening pages.

    Returns:
        Sorted, non-overlapping ``(start, end)`` pairs (end exclusive).

    Raises:
        ValueError: ``num_tokens`` or ``max_tokens`` not an int >= 0 (None allowed for
            ``max_tokens``), ``num_spans`` not an int >= 1, or a cap below 2 tokens per
            span (``max_tokens < 2 * num_spans``).
    """
    _check_int("num_tokens", num_tokens, 0)
    _check_int("num_spans", num_spans, 1)
    if max_tokens is not None:
        _check_int("max_tokens", max_tokens, 0)
    if not max_tokens or max_tokens >= num_tokens:
        return [(0, num_tokens)]
    if max_tokens < 2 * num_spans:
        raise ValueError(f"max_tokens must be >= 2 * num_spans = {2 * num_spans} (2 tokens per span), "
                         f"got {max_tokens}")
    length = max_tokens // num_spans
    spans = []
    for i in range(num_spans):
        centre = (2 * i + 1) * num_tokens // (2 * num_spans)
        start = min(max(0, centre - length // 2), num_tokens - length)
        spans.append((start, start + length))
    return spans


def token_byte_lengths(tokenizer) -> "torch.Tensor | None":
    """UTF-8 bytes spelled by each id, when a tokenizer defines that exactly, else None.

    Byte ids: 1 each. Byte-level BPE (GPT-2 style): each character of a token's string
    stands for exactly one byte, so its length is the byte count. Other tokenizers
    (WordPiece drops spaces and adds "##") have no per-token byte count.
    """
    name = type(tokenizer).__name__
    if name == "ByteTokenizer":
        return torch.ones(256, dtype=torch.long)
    hf = getattr(tokenizer, "tok", None)
    if hf is not None and type(hf.decoder).__name__ == "ByteLevel":
        vocab = hf.get_vocab(with_added_tokens=True)
        lengths = torch.zeros(tokenizer.vocab_size, dtype=torch.long)
        for piece, i in vocab.items():
            lengths[i] = len(piece)
        return lengths
    return None


def text_size(tokenizer, ids: torch.Tensor, byte_lengths: torch.Tensor | None = None) -> tuple[int, int]:
    """(UTF-8 bytes, whitespace words) of the text spelled by ``ids`` [K].

    Bytes are exact with ``byte_lengths`` (see :func:`token_byte_lengths`); otherwise the
    ids are decoded and the decoded text is measured.
    """
    text = tokenizer.decode(ids.tolist())
    n_bytes = int(byte_lengths[ids].sum()) if byte_lengths is not None else len(text.encode("utf-8"))
    return n_bytes, len(text.split())


def evaluate_lm(model: LanguageModel, ids, tokenizer, stride: int | None = None,
                max_tokens: int | None = None, num_spans: int = 4, baselines: dict | None = None,
                batch_size: int = 8, progress: bool = False, window: int | None = None) -> dict:
    """Evaluate a language model (and count baselines) on a token stream.

    Each span of :func:`evaluation_spans` is scored with :func:`sliding_window_token_nll`;
    the baselines score exactly the same positions. Bytes and words are those of the
    scored tokens' text (:func:`text_size`).

    Args:
        model: a minecp language model.
        ids: 1-D array/tensor of the split's token ids.
        tokenizer: the tokenizer that produced ``ids`` (``decode``).
        stride, batch_size, progress, window: see :func:`sliding_window_token_nll`.
        max_tokens, num_spans: see :func:`evaluation_spans`.
        baselines: name -> object with ``nll(ids, positions) -> nats`` (e.g.
            :class:`minecp.baselines.BigramBaseline`).

    Returns:
        {"model": :func:`lm_metrics` dict, "baselines": {name: metrics}, "spans": [[start,
        end], ...], "stream_tokens": len(ids)}.

    Raises:
        ValueError: see :func:`evaluation_spans` and :func:`sliding_window_token_nll`;
            capped spans shorter than one window (seq_len + 1 tokens) of a model that
            reads only full windows (the PerceiverAR family).
    """
    ids = torch.as_tensor(ids.astype("int64") if hasattr(ids, "astype") else ids).long()
    byte_lengths = token_byte_lengths(tokenizer)
    spans = evaluation_spans(len(ids), max_tokens, num_spans)
    length = spans[0][1] - spans[0][0]
    if len(spans) > 1 and getattr(model, "accepts_shorter", True) is False and length <= model.config.seq_len:
        N = model.config.seq_len  # such a model reads only full windows of N inputs + 1 target
        raise ValueError(f"max_tokens={max_tokens} / num_spans={num_spans} gives spans of {length} tokens, "
                         f"but this {type(model).__name__} reads windows of exactly seq_len={N} tokens plus "
                         f"one target: need max_tokens >= {num_spans * (N + 1)}, fewer spans, or no cap")
    nll, count, n_bytes, n_words = 0.0, 0, 0, 0
    base = {name: 0.0 for name in (baselines or {})}
    for a, b in spans:
        piece = ids[a:b]
        pos, tok_nll = sliding_window_token_nll(model, piece, stride, batch_size, progress, window)
        nll, count = nll + float(tok_nll.sum()), count + len(pos)
        nb, nw = text_size(tokenizer, piece[pos], byte_lengths)
        n_bytes, n_words = n_bytes + nb, n_words + nw
        for name, bl in (baselines or {}).items():
            base[name] += bl.nll(piece, pos)
    return {"model": lm_metrics(nll, count, n_bytes, n_words),
            "baselines": {k: lm_metrics(v, count, n_bytes, n_words) for k, v in base.items()},
            "spans": [list(s) for s in spans], "stream_tokens": len(ids)}
