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

import collections
import os
import re
import tempfile
from pathlib import Path

import torch

from .config import ModelConfig

FORMAT, VERSION = "minecp-checkpoint", 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not fit what it is used for."""


# What ``torch.load(weights_only=True)`` can rebuild (torch/_weights_only_unpickler.py,
# ``_get_allowed_globals``; checked one by one in tests/test_checkpoint.py). Exact types:
# a subclass (a namedtuple, a defaultdict, a tensor subclass) pickles as its own class,
# which the safe loader refuses.
_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.Size, torch.device,
           torch.dtype, torch.layout, torch.Tensor, torch.nn.Parameter)
_CONTAINERS = (dict, collections.OrderedDict, collections.Counter, list, tuple, set)


def _check_loadable(obj, where: str, seen: set) -> None:
    """TypeError naming ``where`` (e.g. ``state['train_config']['out']``) for the first
    object inside ``obj`` that a weights-only load could not read back."""
    if type(obj) in _LEAVES:
        return
    if type(obj) not in _CONTAINERS:
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which load_checkpoint's "
                        "safe (weights_only) load cannot read back; store tensors, numbers, str, bytes, None, "
                        "or dict/list/tuple/set of them (e.g. str(path), a plain dict for a dataclass)")
    if id(obj) in seen:                        # shared (or cyclic) containers: check once
        return
    seen.add(id(obj))
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_loadable(k, f"a key of {where}", seen)
            _check_loadable(v, f"{where}[{k!r}]", seen)
    else:
        for i, v in enumerate(obj):
            _check_loadable(v, f"{where}[{i}]" if not isinstance(obj, set) else f"an element of {where}", seen)


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (temp file in the same dir + ``os.replace``).

    If anything fails (including an interrupt) the previous file at ``path``, if any, is
    left untouched and the temporary file is removed.

    Only what :func:`load_checkpoint` can read back may be saved: its ``weights_only``
    load (no code runs while unpickling) rebuilds tensors, numbers, str, bytes, None,
    ``torch.Size``/``device``/``dtype`` and dict/list/tuple/set of these — not, e.g., a
    ``pathlib.Path``, a numpy array or a dataclass. ``state`` is checked *before*
    anything is written, so a bad entry never replaces a good checkpoint with a file
    that cannot be loaded.

    Args:
        state: the checkpoint dict (see module docstring); ``format``/``version`` are added.
        path: destination file; its directory is created if needed.

    Returns:
        The destination path.

    Raises:
        TypeError: ``state`` is not a dict, or holds an object that cannot be read back
            (the message gives its key path, e.g. ``state['train_config']['out']``).
        ValueError: ``state`` holds a ``format``/``version`` other than this minecp's.
        OSError: the file cannot be written (the previous file is kept).
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    _check_loadable(state, "state", set())
    for key, ours in (("format", FORMAT), ("version", VERSION)):
        if state.get(key, ours) != ours:
            raise ValueError(f"state[{key!r}] is {state[key]!r}, but this minecp writes {ours!r}; "
                             "remove the key (save_checkpoint adds it)")
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
        map_location: passed to :func:`torch.load`: a device (str or ``torch.device``,
            e.g. "cpu", "cuda:0"; checked to exist on this machine first), or a dict /
            callable (passed on unchecked).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: the file does not exist, is truncated/corrupt, holds objects a
            safe load refuses, or is not a minecp checkpoint (the message names the path).
        ValueError: ``map_location`` names a device that is malformed or not available
            here (not a CheckpointError: the file is not at fault).
    """
    path = Path(path)
    if isinstance(map_location, (str, torch.device)):
        # Checked first: otherwise torch.load's "no CUDA" error would be reported below as
        # a corrupt file. Allocating an empty tensor is the one probe that works for
        # every device type (cuda, cuda:3, mps, xpu, ...).
        try:
            torch.empty(0, device=torch.device(map_location))
        except Exception as e:
            raise ValueError(f"map_location={map_location!r}: that device is not available on this machine "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                             "use map_location='cpu'") from None
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        # weights_only=True: unpickling cannot run arbitrary code; our checkpoints hold
        # only tensors, numbers, strings, lists and dicts (save_checkpoint checks it).
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt files
        # A well-formed file holding a class the safe loader refuses is not "corrupt"
        # (random bytes also fail as "Weights only load failed", so we look for the class).
        foreign = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if foreign:
            raise CheckpointError(f"checkpoint {str(path)!r} holds a {foreign[1]} object, which the safe "
                                  "(weights_only) load refuses: it was not written by minecp's "
                                  "save_checkpoint") from None
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable (corrupt or truncated?): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a minecp checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {state.get('version')}, "
                              f"this minecp reads version {VERSION}")
    return state


def train_config_of(state: dict, path):
    """The :class:`minecp.presets.TrainConfig` stored in a checkpoint dict (a new instance).

    Raises:
        CheckpointError: the entry is missing or does not fit this minecp's TrainConfig
            (unknown or renamed fields, a value it refuses); the message names ``path``.
    """
    from .presets import TrainConfig

    try:
        return TrainConfig(**state["train_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: its training configuration does not fit this "
                              f"version of minecp ({type(e).__name__}: {e})") from None


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
        checkpoint (a :class:`minecp.tokenizer.Tokenizer`: ``encode(str) -> np.ndarray``,
        ``decode(ids) -> str``; None for datasets without one); meta = the checkpoint
        dict without the weights and training state.

    Raises:
        CheckpointError: see :func:`load_checkpoint`; the weights do not fit the model;
            or the tokenizer entry cannot be rebuilt (the message names the file).
        ValueError: ``map_location`` is not available (see :func:`load_checkpoint`).
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
        try:
            tokenizer = tokenizer_from_dict(state["tokenizer"])
        except (TypeError, ValueError) as e:   # all of tokenizer_from_dict's own errors
            raise CheckpointError(f"checkpoint {str(path)!r} has an unusable tokenizer entry: {e}") from None
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    return model, tokenizer, meta
