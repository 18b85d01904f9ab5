"""Tasks: what a training batch is, what the loss is, and how a run's task is built.

A *task* gives the trainer four things: ``batch(split, generator, batch_size, rank,
world_size)`` (a tuple of tensors for this rank), ``loss(model, *batch)`` (a scalar to
minimise), ``val_stats(model, *batch)`` (validation figures) and ``build(name, config)``
(the model to train). :class:`LMTask` is next-token prediction on text, :class:`CopyTask`
Perceiver AR's copy task, :class:`MarkerTask` recall across context segments,
:class:`minecp.classify.ClassifyTask` sCIFAR-10 classification.
:func:`prepare_task` builds the task of a :class:`~minecp.presets.TrainConfig`, loading
(and on first use tokenizing) its data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models import lm_loss
from .presets import TrainConfig


# -- tasks: what a batch is and what the loss is ---------------------------------------------
def sample_windows(tokens, batch_size: int, length: int, generator: torch.Generator,
                   rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """This rank's slice of a random global batch of windows from a token array.

    Every rank draws the whole global batch (same generator state everywhere), then keeps
    rows ``rank * b .. rank * b + b - 1`` with b = batch_size / world_size.

    Args:
        tokens: 1-D array of ids (numpy memmap or ndarray), len >= length.
        batch_size: global batch size (divisible by ``world_size``).
        length: window length (N + 1 for language modelling).
        generator: the seeded data generator.

    Returns:
        LongTensor [batch_size / world_size, length].
    """
    from .data import random_windows

    per = batch_size // world_size
    return random_windows(tokens, batch_size, length, generator)[rank * per:(rank + 1) * per]


class LMTask:
    """Next-token prediction on flat token streams (text datasets).

    Args:
        train_tokens, val_tokens: 1-D id arrays (documents concatenated).
        seq_len: N; windows of N + 1 tokens are drawn.
    """

    kind = "lm"

    def __init__(self, train_tokens, val_tokens, seq_len: int):
        self.tokens = {"train": train_tokens, "val": val_tokens}
        self.seq_len = seq_len

    def batch(self, split, generator, batch_size, rank=0, world_size=1):
        """(window LongTensor [batch_size / world_size, N + 1],) from split "train" or "val"."""
        return (sample_windows(self.tokens[split], batch_size, self.seq_len + 1, generator, rank, world_size),)

    def loss(self, model, window):
        """Mean next-token cross-entropy (nats) over the positions the model predicts."""
        return lm_loss(model, window)

    def build(self, name, config):
        """The model to train: :func:`minecp.build_model`."""
        from .models import build_model
        return build_model(name, config)

    def val_stats(self, model, *batch) -> dict:
        """Validation figures of one batch: {"val_loss": nats per token}."""
        return {"val_loss": self.loss(model, *batch).item()}


class CopyTask(LMTask):
    """Perceiver AR's copy task: L random tokens, then the same L again; LM loss on the copy.

    A sequence ``x`` of N tokens (from :func:`minecp.data.copy_task_batch`) is read as the
    window ``[0] + x`` of N + 1 tokens: the model's inputs are ``0, x[0] .. x[N-2]`` and
    its targets are all of ``x``, so every copied token x[L + j] = x[j] is predictable from
    the inputs. Only targets in the copied half count (the first half is noise).

    Args:
        seq_len: N (even). vocab_size: symbols are uniform in [0, vocab_size).

    Raises:
        ValueError: odd ``seq_len``.
    """

    kind = "copy"

    def __init__(self, seq_len: int, vocab_size: int):
        if seq_len % 2:
            raise ValueError(f"the copy task needs an even --seq-len, got {seq_len}")
        self.seq_len, self.vocab_size = seq_len, vocab_size

    def batch(self, split, generator, batch_size, rank=0, world_size=1):
        """(window LongTensor [b, N + 1], copy mask bool [b, N + 1]) for this rank; both
        splits are fresh random sequences (validation uses its own seeded generator)."""
        from .data import copy_task_batch

        x, mask = copy_task_batch(batch_size, self.seq_len, self.vocab_size, generator)
        window = F.pad(x, (1, 0))  # a 0 in front: inputs [0, x[:-1]], targets x
        mask = F.pad(mask, (1, 0))
        per = batch_size // world_size
        return window[rank * per:(rank + 1) * per], mask[rank * per:(rank + 1) * per]

    def _scored(self, model, window, mask):
        """(logits [K, V], targets [K]) of the copied targets among the predicted ones."""
        logits = model(window[:, :-1])  # row j predicts the last T targets
        targets = window[:, 1:][:, -logits.shape[1]:]
        keep = mask[:, 1:][:, -logits.shape[1]:]
        return logits[keep].float(), targets[keep]

    def loss(self, model, window, mask):
        """Mean cross-entropy (nats) over the copied half."""
        logits, targets = self._scored(model, window, mask)
        return F.cross_entropy(logits, targets)

    def val_stats(self, model, window, mask) -> dict:
        """{"val_loss": nats per copied token, "val_copy_acc": fraction copied right}."""
        logits, targets = self._scored(model, window, mask)
        return {"val_loss": F.cross_entropy(logits, targets).item(),
                "val_copy_acc": (logits.argmax(-1) == targets).float().mean().item()}


class MarkerTask(LMTask):
    """The marker task (:func:`minecp.data.synthetic.marker_task_batch`): recall the symbol
    that followed a marker in the context; loss and accuracy on that one target per window.

    Validation splits the accuracy by whether marker and symbol lie in two context segments
    of ``segment_len`` ("val_acc_crossing") or in one ("val_acc_within"): what a segmented
    context costs, and what a shift restores (notebook 05). It has no ``TrainConfig.dataset``
    name of its own (``prepare_task`` does not build it): hand it to
    :class:`minecp.train.Trainer` directly.

    Args:
        context_len: C. segment_len: S, the context segment length of the model under test.
        latent_len: M, with C + M the model's N. num_symbols: the vocabulary is num_symbols + 1.

    Raises:
        ValueError: sizes :func:`~minecp.data.synthetic.marker_task_batch` rejects.
    """

    kind = "marker"

    def __init__(self, context_len: int, segment_len: int, latent_len: int, num_symbols: int = 16):
        from .data.synthetic import marker_task_batch

        marker_task_batch(1, context_len, segment_len, latent_len, num_symbols, 0)  # check the sizes now
        self.sizes = (context_len, segment_len, latent_len, num_symbols)
        self.seq_len, self.vocab_size = context_len + latent_len, num_symbols + 1

    def batch(self, split, generator, batch_size, rank=0, world_size=1):
        """(window [b, N + 1], scored [b, N + 1], crossing [b, N + 1]) for this rank; both splits
        are fresh random windows (validation uses its own seeded generator)."""
        from .data.synthetic import marker_task_batch

        tensors = marker_task_batch(batch_size, *self.sizes, generator=generator)
        per = batch_size // world_size
        return tuple(t[rank * per:(rank + 1) * per] for t in tensors)

    def _scored(self, model, window, scored, crossing):
        """(logits [K, V], targets [K], crossing [K]) of the scored targets."""
        logits = model(window[:, :-1])                       # the last T targets
        T = logits.shape[1]
        keep = scored[:, 1:][:, -T:]
        return logits[keep].float(), window[:, 1:][:, -T:][keep], crossing[:, 1:][:, -T:][keep]

    def loss(self, model, window, scored, crossing):
        """Mean cross-entropy (nats) over the scored targets."""
        logits, targets, _ = self._scored(model, window, scored, crossing)
        return F.cross_entropy(logits, targets)

    def val_stats(self, model, window, scored, crossing) -> dict:
        """{"val_loss", "val_acc", "val_acc_crossing", "val_acc_within"}: accuracy = fraction of
        scored targets predicted right (all / crossing windows / windows with the pair inside
        one segment)."""
        logits, targets, cross = self._scored(model, window, scored, crossing)
        right = (logits.argmax(-1) == targets).float()
        return {"val_loss": F.cross_entropy(logits, targets).item(), "val_acc": right.mean().item(),
                "val_acc_crossing": right[cross].mean().item(), "val_acc_within": right[~cross].mean().item()}


# -- data for a run ----------------------------------------------------------------------------
#: text files have no splits: the last HELD_OUT of their tokens are validation and test.
HELD_OUT = 0.1
SCIFAR_VAL = 5000  # sCIFAR-10 has no validation split: the last 5,000 train images are held out


def tokenizer_spec(cfg: TrainConfig) -> str:
    """The :func:`minecp.tokenizer.get_tokenizer` spec of a run ("bpe" -> "bpe:<vocab_size>")."""
    return f"bpe:{cfg.vocab_size}" if cfg.tokenizer == "bpe" else cfg.tokenizer


def load_lm_ids(dataset: str, split: str, tokenizer, data_dir=None, max_books: int | None = None):
    """Token ids of one split of a text dataset, plus the tokenizer (trained if needed).

    ``text:<path>`` files have no splits: "train" is the first 90 % of the tokens,
    "validation" and "test" the last 10 %. ``max_books`` (PG-19 only) reads the first
    that many books of the split; a BPE trained here is trained on the same books.

    Returns:
        (ids: 1-D uint16/int32 array (memory-mapped), tokenizer).
    """
    from .data import load_corpus

    if dataset.startswith("text:"):
        corpus = load_corpus(dataset, "train", tokenizer=tokenizer, data_dir=data_dir)
        cut = int(len(corpus.ids) * (1 - HELD_OUT))
        return (corpus.ids[:cut] if split == "train" else corpus.ids[cut:]), corpus.tokenizer
    corpus = load_corpus(dataset, split, tokenizer=tokenizer, data_dir=data_dir, max_books=max_books)
    return corpus.ids, corpus.tokenizer


def load_scifar(split: str, data_dir=None):
    """(tokens uint8 [n, 1024] gray-level pixel ids, labels int64 [n]) of sCIFAR-10.

    "train" = the first 45,000 training images, "validation" the last 5,000, "test" the
    official 10,000 test images.
    """
    from .data import image_tokens, load_scifar10

    pixels, labels = load_scifar10("test" if split == "test" else "train", data_dir=data_dir)
    tokens = image_tokens(pixels, mode="gray")
    if split == "train":
        return tokens[:-SCIFAR_VAL], labels[:-SCIFAR_VAL]
    if split == "validation":
        return tokens[-SCIFAR_VAL:], labels[-SCIFAR_VAL:]
    return tokens, labels


def prepare_task(cfg: TrainConfig, data_dir=None):
    """Load (and on first use tokenize) the data of a run.

    Returns:
        (task, vocab_size, tokenizer description dict or None, extra checkpoint entries).

    Raises:
        ValueError: unknown dataset, a split too short for one window, a sequence length
            that does not fit the dataset; FileNotFoundError: data not found (see
            :mod:`minecp.data`).
    """
    from .classify import ClassifyTask
    from .data import SCIFAR_LEN, SCIFAR_VOCAB

    if cfg.dataset == "copy":
        return CopyTask(cfg.seq_len, cfg.vocab_size), cfg.vocab_size, None, {}
    if cfg.dataset == "scifar10":
        if cfg.seq_len != SCIFAR_LEN:
            raise ValueError(f"sCIFAR-10 sequences are {SCIFAR_LEN} pixels long: --seq-len must be "
                             f"{SCIFAR_LEN}, got {cfg.seq_len}")
        task = ClassifyTask(load_scifar("train", data_dir), load_scifar("validation", data_dir), 10)
        return task, SCIFAR_VOCAB, None, {"num_classes": 10}
    train_ids, tok = load_lm_ids(cfg.dataset, "train", tokenizer_spec(cfg), data_dir, max_books=cfg.max_books)
    val_ids, _ = load_lm_ids(cfg.dataset, "validation", tok, data_dir)
    for split, ids in (("train", train_ids), ("validation", val_ids)):
        if len(ids) < cfg.seq_len + 1:
            raise ValueError(f"the {split} split of {cfg.dataset!r} has {len(ids)} tokens, fewer than one "
                             f"training window (--seq-len {cfg.seq_len} + 1); use a shorter --seq-len")
    return LMTask(train_ids, val_ids, cfg.seq_len), tok.vocab_size, tok.to_dict(), {}
