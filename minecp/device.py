"""Which device to run on, and in which precision.

:func:`resolve_device` turns a device name ("auto", "cpu", "cuda", "cuda:N", "mps") into a
``torch.device`` that exists on this machine; :func:`autocast` is the mixed-precision
context of a training or evaluation step. Kept apart from the trainer so that the
command line and the decoders can use them without importing training code.
"""

from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str) -> torch.device:
    """The torch device of a device name, checked to exist on this machine.

    Args:
        name: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:<index>" or "mps"
            (:data:`minecp.presets.DEVICES`).

    Returns:
        ``torch.device``.

    Raises:
        ValueError: any other name (the message lists the allowed ones), or a device this
            machine does not have (no CUDA / MPS, or a CUDA index >= the number of GPUs).
    """
    from .presets import check_device_name

    check_device_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but this machine has {torch.cuda.device_count()} "
                             f"CUDA device(s): cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS (Apple GPU) is not available; use --device cpu")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    """bf16 autocast on CUDA by default ("auto"), fp32 elsewhere; "bf16" forces it."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
