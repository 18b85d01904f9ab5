"""Training configuration and named presets (``--preset paper|gpu-small|cpu-small``).

A :class:`TrainConfig` holds every knob of a run: the model shape (passed on to
:class:`minecp.ModelConfig`), the data, the optimiser and schedule, and evaluation
defaults. A preset is just a dict of overrides on top of the dataclass defaults, and the
command line overrides the preset field by field (``--lr 1e-3`` beats the preset's lr).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

from .config import ModelConfig, to_int, to_real
from .data.sources import TEXT_DATASETS
from .models import MODEL_NAMES

#: The ``dataset`` names besides ``"text:<path>"``.
DATASETS = (*TEXT_DATASETS, "scifar10", "copy")
#: Device names accepted by ``TrainConfig.device`` and :func:`minecp.device.resolve_device`.
DEVICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")


def check_device_name(name) -> None:
    """Raise ValueError unless ``name`` is one of :data:`DEVICES` (e.g. "cuda:1").

    Only the spelling is checked; :func:`minecp.device.resolve_device` also checks that
    the device exists on this machine.
    """
    if not isinstance(name, str) or not (name in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", name)):
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")


@dataclass
class TrainConfig:
    """Everything a training run needs. Units: lr per optimizer step; steps = optimizer steps.

    Data: ``dataset`` ("pg19", "wikitext-103", "wikitext-2", "text:<path>", "scifar10",
    "copy"; see :mod:`minecp.data`), ``tokenizer`` ("bpe" = byte-level BPE with
    ``vocab_size`` ids trained on the train split, "bytes", or a pretrained name; for
    "copy", ``vocab_size`` is the number of symbols), ``max_books`` (PG-19 only: train on
    the first this many books of the train split, None = all 28,602 online; the split is
    streamed, so a cap also caps the download).

    Model: ``model`` (one of :data:`minecp.MODEL_NAMES`) and the :class:`minecp.ModelConfig`
    fields of the same names (``seq_len`` = N, ``d_model``, ...).

    Optimisation: AdamW(``beta1``, ``beta2``) with ``weight_decay`` on Linear weights only,
    ``lr`` reached after ``warmup_steps`` of linear warm-up, then a cosine decay to
    ``min_lr_ratio * lr`` at ``steps``; ``grad_clip`` (global L2 norm, 0 = off);
    ``batch_size`` sequences per micro-step (global, summed over DDP ranks) and
    ``grad_accum`` micro-steps per optimizer step.

    Bookkeeping: validate every ``eval_every`` steps on ``eval_batches`` fixed batches,
    checkpoint every ``save_every`` steps (and at the end), log every ``log_every``.

    Evaluation defaults (``minecp evaluate``): ``eval_stride`` (window step; None =
    min(N / 2, T)), ``eval_max_tokens`` (cap on the evaluated tokens of the split, see
    :func:`minecp.evaluate.evaluation_spans`; None or 0 = all).

    Runtime: ``device`` (one of :data:`DEVICES`), ``precision`` ("auto" = bf16 autocast
    on CUDA and fp32 elsewhere, "fp32", "bf16"), ``compile`` (torch.compile), ``seed``.

    Allowed values: ints are integers (Python or numpy ints, 0-d integer tensors; not
    bools or floats) and floats are real numbers, both stored as builtin ``int`` /
    ``float`` (so checkpoints and JSON see plain numbers); ``steps``, ``batch_size``,
    ``grad_accum``, ``eval_every``, ``eval_batches``, ``save_every``, ``log_every`` and
    ``vocab_size`` >= 1 (``vocab_size`` >= 2 for "copy"); ``warmup_steps`` and ``seed``
    >= 0; finite ``lr`` > 0, ``weight_decay`` >= 0,
    ``grad_clip`` >= 0, ``min_lr_ratio`` in [0, 1], ``beta1`` and ``beta2`` in [0, 1);
    ``eval_stride`` None or >= 1, ``eval_max_tokens`` None or >= 0; the model fields as
    :class:`minecp.ModelConfig` requires.

    Raises:
        ValueError: any field of the wrong type or outside its allowed values, model
            fields included (the message names the field).
        TypeError: a keyword that is not a field (from the dataclass ``__init__``).
    """

    # data
    dataset: str = "pg19"
    tokenizer: str = "bpe"
    vocab_size: int = 8192
    max_books: int | None = None
    # model
    model: str = "ecp"
    seq_len: int = 256
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    num_segments: int = 4
    latent_len: int | None = None
    context_segments: int = 4
    compressed_len: int | None = None
    context_shift: int = 0
    # optimisation
    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    # bookkeeping
    eval_every: int = 200
    eval_batches: int = 8
    save_every: int = 500
    log_every: int = 10
    # evaluation defaults
    eval_stride: int | None = None
    eval_max_tokens: int | None = None
    # runtime
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {allowed}, got {getattr(self, name)!r}")

        for name in ("dataset", "tokenizer", "model", "device", "precision"):
            need(isinstance(getattr(self, name), str), name, "a str")
        need(self.dataset in DATASETS or (self.dataset.startswith("text:") and len(self.dataset) > 5),
             "dataset", f"one of {', '.join(DATASETS)} or text:<path>")
        need(self.model in MODEL_NAMES, "model", f"one of {', '.join(MODEL_NAMES)}")

        def number(name: str, to, allowed: str, ok=lambda v: True, optional: bool = False) -> None:
            """Check field ``name`` and store it as a builtin int / float (``to``)."""
            if optional and getattr(self, name) is None:
                return
            value = to(getattr(self, name))
            need(value is not None and ok(value), name, allowed)
            setattr(self, name, value)

        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches", "save_every",
                     "log_every", "vocab_size"):
            number(name, to_int, "an int >= 1", lambda v: v >= 1)
        for name in ("warmup_steps", "seed"):
            number(name, to_int, "an int >= 0", lambda v: v >= 0)
        if self.dataset == "copy":
            need(self.vocab_size >= 2, "vocab_size", "an int >= 2 for the copy task (with one symbol "
                 "there is nothing to copy)")
        number("lr", to_real, "a finite number > 0", lambda v: math.isfinite(v) and v > 0)
        number("min_lr_ratio", to_real, "a number in [0, 1]", lambda v: 0 <= v <= 1)
        number("weight_decay", to_real, "a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
        number("grad_clip", to_real, "a finite number >= 0 (0 = no clipping)", lambda v: math.isfinite(v) and v >= 0)
        for name in ("beta1", "beta2"):
            number(name, to_real, "a number in [0, 1)", lambda v: 0 <= v < 1)
        number("max_books", to_int, "None (all books) or an int >= 1", lambda v: v >= 1, optional=True)
        need(self.max_books is None or self.dataset == "pg19", "max_books",
             "None for datasets other than pg19 (it caps PG-19's training books)")
        number("eval_stride", to_int, "None (default) or an int >= 1", lambda v: v >= 1, optional=True)
        number("eval_max_tokens", to_int, "None or an int >= 0 (None and 0 = all tokens)", lambda v: v >= 0,
               optional=True)
        check_device_name(self.device)
        need(self.precision in ("auto", "fp32", "bf16"), "precision", "one of auto, fp32, bf16")
        need(isinstance(self.compile, bool), "compile", "a bool")
        # The model fields: ModelConfig checks them (types and ranges, one set of rules) and
        # turns numpy / 0-d tensor numbers into builtins; keep its plain values. A wrong type
        # is a ValueError here like every other field (the CLI prints ValueErrors as errors).
        try:
            model = self.model_config(vocab_size=max(self.vocab_size, 2))
        except TypeError as e:
            raise ValueError(str(e)) from None
        for name in _MODEL_FIELDS:
            if getattr(self, name) is not None:  # None = ModelConfig's derived default: keep None
                setattr(self, name, getattr(model, name))

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The :class:`minecp.ModelConfig` of this run for a tokenizer of ``vocab_size`` ids."""
        return ModelConfig(vocab_size=vocab_size, **{name: getattr(self, name) for name in _MODEL_FIELDS})

    def to_dict(self) -> dict:
        """Plain dict (checkpoints, metrics)."""
        return asdict(self)


#: The TrainConfig fields that are ModelConfig fields (vocab_size comes from the tokenizer).
_MODEL_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.name in {g.name for g in fields(ModelConfig)}
                      and f.name != "vocab_size")

#: Named presets: overrides of the :class:`TrainConfig` defaults.
PRESETS: dict[str, dict] = {
    # The authors' setup (docs/differences.md, "The authors' configuration"): 12 layers, d = 768, 6 heads,
    # N = 2048, 8 segments, dropout 0.05, AdamW lr 2e-4, batch 8 x accumulation 2,
    # clipping 1.0, weight decay 0.1 on Linear weights. Their vocabulary is bert-base-cased
    # WordPiece (28,996 ids); the step count is ours (they halve the lr every 100k steps).
    "paper": dict(dataset="wikitext-103", tokenizer="bert-base-cased", seq_len=2048, d_model=768,
                  n_heads=6, n_layers=12, num_segments=8, dropout=0.05, lr=2e-4, batch_size=8,
                  grad_accum=2, weight_decay=0.1, grad_clip=1.0, steps=200_000, warmup_steps=2000,
                  eval_every=2000, eval_batches=32, save_every=2000, log_every=50),
    # Minutes on one H200 (bf16 autocast): ~130 M tokens at N = 1024.
    "gpu-small": dict(seq_len=1024, d_model=512, n_heads=8, n_layers=8, num_segments=8,
                      dropout=0.0, lr=1e-3, batch_size=32, grad_accum=1, steps=4000, warmup_steps=200,
                      eval_every=500, eval_batches=16, save_every=1000, log_every=20,
                      vocab_size=16384),
    # ~2.5 minutes of training on 2 idle CPU cores (~12k tokens/s; 1.6 M training tokens);
    # tuned so that ecp, dense and perceiver_ar beat a unigram model of the same tokens by
    # > 15 % in bits per byte on PG-19 test text (ECP also beats the add-k bigram); a
    # 2,048-id BPE keeps the embedding small enough to learn in that time. Evaluation reads
    # 100k test tokens (see minecp.evaluate.evaluation_spans). Figures: README.md, "Results on the CPU".
    # max_books=24: the offline stand-in's whole train split; online, the first 24 of
    # PG-19's 28,602 training books (streamed: nothing more is downloaded).
    "cpu-small": dict(max_books=24, seq_len=128, d_model=128, n_heads=4, n_layers=4, num_segments=4, dropout=0.0,
                      lr=3e-3, batch_size=16, grad_accum=1, steps=800, warmup_steps=30,
                      eval_every=200, eval_batches=4, save_every=200, log_every=10,
                      vocab_size=2048, eval_max_tokens=100_000),
}


def get_preset(name: str | None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a preset name (None = plain defaults) plus overrides.

    Every given override is applied, None included: ``eval_max_tokens=None`` unsets the
    preset's cap (``--eval-max-tokens none`` on the command line). Leave a field out to
    keep the preset's value.

    Raises:
        ValueError: unknown preset name (the message lists the allowed names), or an
            invalid resulting configuration (see :class:`TrainConfig`).
        TypeError: an override that is not a TrainConfig field.
    """
    if name is not None and name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed presets: {', '.join(PRESETS)}")
    values = {**(PRESETS[name] if name else {}), **overrides}
    if "max_books" not in overrides and values.get("dataset", "pg19") != "pg19":
        values.pop("max_books", None)  # a preset's PG-19 book cap means nothing for other data
    return TrainConfig(**values)


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` applied (None included) and re-validated."""
    return replace(config, **overrides)
