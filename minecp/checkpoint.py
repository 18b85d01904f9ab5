"""Checkpoints: atomic writes, checked reads, and rebuilding a model from a file.

Why atomic? ``torch.save(obj, "checkpoint.pt")`` truncates the old file first; a crash,
a full disk or a Ctrl-C halfway through leaves neither the old nor the new checkpoint.
Instead we write to a temporary file *in the same directory* and ``os.replace`` it over
the old one: on POSIX and Windows a rename within one file system is atomic, so a reader
sees either the complete old file or the complete new one, never a mix.

A checkpoint is a plain dict (everything needed for an exact resume and for inference):

=================  ==========================================================================
key                contents
=================  ==========================================================================
format, version    ``"minecp-checkpoint"``, ``1``
model_name         one of :data:`minecp.MODEL_NAMES`
model_config       :meth:`minecp.ModelConfig.to_dict`
task               ``"lm"``, ``"copy"`` or ``"classify"`` (then also ``num_classes``)
model              ``state_dict`` (for "classify": of :class:`minecp.classify.SequenceClassifier`)
tokenizer          ``Tokenizer.to_dict()`` (self-contained; see :mod:`minecp.tokenizer`) or None
train_config       :class:`minecp.presets.TrainConfig` as a dict
step, optimizer,   training state for ``--resume`` (absent from inference-only files)
scheduler, rng
=================  ==========================================================================
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .config import ModelConfig

FORMAT, VERSION = "minecp-checkpoint", 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit what it is used for."""


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same dir + ``os.replace``).

    If anything fails (including an interrupt) the previous file at ``path``, if any, is
    left untouched and the temporary file is removed.

    Args:
        state: the checkpoint dict (see module docstring); ``format``/``version`` are added.
        path: destination file; its directory is created if needed.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: checkpoint file.
        map_location: passed to :func:`torch.load` (e.g. "cpu", "cuda").

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: the file does not exist, is truncated/corrupt, or is not a minecp
            checkpoint (the message names the path).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        # weights_only=True: unpickling cannot run arbitrary code; our checkpoints hold
        # only tensors, numbers, strings, lists and dicts.
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable (corrupt or truncated?): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a minecp checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {state.get('version')}, "
                              f"this minecp reads version {VERSION}")
    return state


def build_from_checkpoint(state: dict):
    """Build the (untrained) model a checkpoint dict describes, without loading weights.

    Returns:
        A :class:`minecp.LanguageModel`, or a :class:`minecp.classify.SequenceClassifier`
        for ``task == "classify"``.
    """
    from .classify import SequenceClassifier
    from .models import build_model

    config = ModelConfig(**state["model_config"])
    model = build_model(state["model_name"], config)
    if state.get("task") == "classify":
        model = SequenceClassifier(model, int(state["num_classes"]))
    return model


def load_model(path: str | os.PathLike, map_location="cpu"):
    """Load a trained model for inference.

    Args:
        path: checkpoint file written by ``minecp train``.
        map_location: device for the weights (the model is moved there).

    Returns:
        (model, tokenizer, meta): the model in eval mode (a LanguageModel, or a
        SequenceClassifier for sCIFAR-10 checkpoints); the tokenizer rebuilt from the
        checkpoint (``encode(str) -> list[int]``, ``decode(list[int]) -> str``; None
        for datasets without one); meta = the checkpoint dict without the weights and
        training state.

    Raises:
        CheckpointError: see :func:`load_checkpoint`, or the weights do not fit the model.
    """
    state = load_checkpoint(path, map_location)
    try:
        model = build_from_checkpoint(state)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not describe a loadable model: {e}") from None
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model = model.to(map_location)
    model.eval()
    tokenizer = None
    if state.get("tokenizer") is not None:
        from .tokenizer import tokenizer_from_dict
        tokenizer = tokenizer_from_dict(state["tokenizer"])
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    return model, tokenizer, meta
