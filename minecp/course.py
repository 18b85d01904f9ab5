"""How a notebook (or a preset) picks its scale: GPU-sized, CPU-small, or a smoke test.

Every course notebook has two branches: a GPU-sized one (longer windows, more steps) and a
small one that finishes in about a minute on a laptop CPU. A learner with a GPU only ever
runs the first, a learner without one only the second — so without help the GPU branch
would never run in CI, which has no GPU. The **smoke mode** closes that gap: it takes the
GPU branch through exactly the same code on the CPU, with shapes and steps cut down so
that it finishes in seconds. It proves the branch runs, not what it learns.

=====================================  ===========================================================
``MINECP_SMALL=1``                     the small branch even on a GPU
``MINECP_GPU_SMOKE=1``                 the GPU branch on the CPU, cut down (what CI runs)
(neither)                              the GPU branch on a GPU, the small branch elsewhere
=====================================  ===========================================================

In a notebook::

    SCALE = course_scale()
    DEVICE, SMALL = SCALE.device, SCALE.small
    STEPS = SCALE.steps(gpu=2000, cpu=200)          # 2 in smoke mode
    N = SCALE.pick(gpu=1024, cpu=128, smoke=64)     # a shape: the smoke value must be given
    if not SCALE.smoke:
        assert final_loss < 2.0                     # claims about learning need real training

For whole training configurations :func:`smoke_config` cuts a :class:`TrainConfig` down
while keeping its structure (model, segment and latent ratios, precision, backend choice):
``python -m minecp train --preset paper --smoke`` runs the ``paper`` preset that way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

#: Optimizer steps of a smoke run: enough to take a step, log, validate and save.
SMOKE_STEPS = 2
#: PG-19 training books a smoke run reads (online it streams only these).
SMOKE_BOOKS = 2


def _flag(name: str) -> bool:
    value = os.environ.get(name, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"environment variable {name} must be 0 or 1 (or unset), got {value!r}")
    return value == "1"


@dataclass(frozen=True)
class CourseScale:
    """Which branch a notebook takes, and where it runs.

    Attributes:
        device: "cuda" or "cpu" — where tensors live.
        small: True = the CPU-sized branch; False = the GPU-sized branch (also in smoke mode).
        smoke: True = the GPU-sized branch run on the CPU with shapes and steps cut down.
    """

    device: str
    small: bool
    smoke: bool

    def pick(self, gpu, cpu, smoke=None):
        """The value of the branch this notebook takes.

        Args:
            gpu, cpu: the value of each branch.
            smoke: the value in smoke mode; default ``gpu`` (fine for choices that do not
                cost time: a flag, a precision, a backend name). Give it for shapes.
        """
        if self.small:
            return cpu
        return gpu if not self.smoke or smoke is None else smoke

    def steps(self, gpu: int, cpu: int) -> int:
        """Training steps of this branch: ``gpu``, ``cpu``, or :data:`SMOKE_STEPS` in smoke mode."""
        if self.small:
            return cpu
        return min(gpu, SMOKE_STEPS) if self.smoke else gpu

    def describe(self) -> str:
        """One line for a notebook's first output (no machine paths, no timings)."""
        branch = "small (CPU-sized)" if self.small else "GPU-sized" + (", smoke test on the CPU" if self.smoke else "")
        return f"device {self.device} | branch: {branch}"


def course_scale() -> CourseScale:
    """The scale of this machine and environment (see the module docstring).

    Raises:
        ValueError: ``MINECP_SMALL`` or ``MINECP_GPU_SMOKE`` set to anything but 0 or 1, or both set.
    """
    small, smoke = _flag("MINECP_SMALL"), _flag("MINECP_GPU_SMOKE")
    if small and smoke:
        raise ValueError("MINECP_SMALL=1 and MINECP_GPU_SMOKE=1 contradict each other: set one of them")
    if smoke:
        return CourseScale(device="cpu", small=False, smoke=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return CourseScale(device=device, small=small or device == "cpu", smoke=False)


def smoke_config(cfg, target_len: int = 64):
    """A cut-down copy of a :class:`minecp.presets.TrainConfig` for a smoke run on the CPU.

    Keeps what decides which code runs — the model, the dataset and tokenizer, the number of
    segments, the ratios of latents / compressed length / context segments to the window,
    dropout, precision, ``compile`` — and shrinks what only costs time: the window is divided
    by the largest power of two that keeps it >= ``target_len`` and every derived length whole,
    the width becomes 8 per head, at most 2 layers, :data:`SMOKE_STEPS` steps of batch 2, a
    vocabulary of at most 512 ids (for a trained BPE; "bytes" and pretrained tokenizers keep
    theirs), at most :data:`SMOKE_BOOKS` PG-19 training books, evaluation on a few windows,
    and the device "cpu".

    Args:
        cfg: the full-size TrainConfig.
        target_len: smallest window the smoke run may use (tokens).

    Returns:
        A new, validated TrainConfig.

    Raises:
        ValueError: ``target_len`` < 8 (the message names it).
    """
    if not isinstance(target_len, int) or target_len < 8:
        raise ValueError(f"target_len must be an int >= 8, got {target_len!r}")
    lengths = {"seq_len": cfg.seq_len, "latent_len": cfg.latent_len, "compressed_len": cfg.compressed_len,
               "context_shift": cfg.context_shift}
    factor = 1
    while cfg.seq_len // (2 * factor) >= target_len and all(
            v is None or v % (2 * factor) == 0 for v in lengths.values()) and \
            (cfg.seq_len // (2 * factor)) % (cfg.num_segments * 2) == 0:
        factor *= 2
    shrunk = {k: (v if v is None else v // factor) for k, v in lengths.items()}
    vocab = cfg.vocab_size if cfg.tokenizer != "bpe" else min(cfg.vocab_size, 512)
    books = min(cfg.max_books or SMOKE_BOOKS, SMOKE_BOOKS) if cfg.dataset == "pg19" else None
    return replace(cfg, **shrunk, d_model=8 * cfg.n_heads, n_layers=min(cfg.n_layers, 2), vocab_size=vocab,
                   max_books=books,
                   steps=SMOKE_STEPS, batch_size=2, grad_accum=min(cfg.grad_accum, 2), warmup_steps=1,
                   eval_every=SMOKE_STEPS, eval_batches=1, save_every=SMOKE_STEPS, log_every=1,
                   eval_max_tokens=4 * shrunk["seq_len"], device="cpu")
