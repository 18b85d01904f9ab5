"""The cost of each architecture: training tokens/s and memory against window length N.

Memory on CUDA is ``torch.cuda.max_memory_allocated``; everywhere (the only figure on a
CPU) :func:`activation_bytes` counts the bytes autograd saves for the backward pass.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from ..presets import TrainConfig


# -- cost: memory and speed ---------------------------------------------------------------------
def activation_bytes(model, loss_fn, *batch) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``loss_fn(model, *batch)``.

    Counted with ``torch.autograd.graph.saved_tensors_hooks`` during one forward (no
    backward is run), each storage once, parameters excluded. This is the activation
    memory of a training step — the part that grows with the window (O(N^2) for scores a
    dense attention keeps, O(N S) for ECP's band) — measured exactly on any device.
    It leaves out parameters, gradients, optimizer state and kernels' workspace.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, *batch)
    del loss
    return int(sum(seen.values()))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cost_model_config(cfg: TrainConfig, vocab_size: int, seq_len: int):
    """The study's model at another window length N, for :func:`measure_cost`.

    Kept fixed as N grows: ECP's segment length S, the M latents, the segmented model's
    context-segment length (the knobs whose cost claims are O(N S), O(M N), O(C^2 / s));
    the compressed model keeps the authors' default C' = N / 4.

    Raises:
        ValueError: ``seq_len`` not a multiple of S or of the context-segment length, or
            not longer than M.
    """
    base = cfg.model_config(vocab_size)
    S, M = base.segment_len, base.latent_len
    seg = base.context_len // base.context_segments
    if seq_len % S or seq_len <= M or (seq_len - M) % seg:
        raise ValueError(f"window length {seq_len} must be a multiple of S={S}, longer than M={M}, and leave a "
                         f"context (N - M) that is a multiple of {seg}; choose lengths like {cfg.seq_len} x 2^k")
    return dataclasses.replace(base, seq_len=seq_len, num_segments=seq_len // S, latent_len=M,
                               context_segments=(seq_len - M) // seg, compressed_len=None)


def measure_cost(model_name: str, cfg: TrainConfig, vocab_size: int, seq_len: int, tokens: int,
                 device: torch.device, repeats: int = 3, warmup: int = 1, ecp_backend: str = "auto") -> dict:
    """Forward+backward speed and memory of one architecture at window length ``seq_len``.

    A batch of B = max(1, tokens // N) random windows; ``warmup`` untimed calls, then the
    median of ``repeats`` timed forward+backward calls of the LM loss (no optimizer step)
    under the study's precision; ECP uses ``ecp_backend``.

    Returns:
        {"seq_len", "batch", "fwd_bwd_s" (median seconds per call), "tokens_per_s" (input
        tokens), "targets_per_s" (scored positions), "activation_bytes"
        (:func:`activation_bytes`), "cuda_peak_bytes" (``torch.cuda.max_memory_allocated``
        during the timed calls; None on CPU), "error" (None, or "out of memory")}.
    """
    from ..models import build_model, lm_loss
    from ..device import autocast

    mc = cost_model_config(cfg, vocab_size, seq_len)
    B = max(1, tokens // seq_len)
    out = {"seq_len": seq_len, "batch": B, "fwd_bwd_s": None, "tokens_per_s": None, "targets_per_s": None,
           "activation_bytes": None, "cuda_peak_bytes": None, "error": None}
    torch.manual_seed(0)
    model = build_model(model_name, mc, **({"attention_backend": ecp_backend} if model_name == "ecp" else {}))
    model = model.to(device)
    window = torch.randint(0, vocab_size, (B, seq_len + 1), generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with autocast(device, cfg.precision):
            out["activation_bytes"] = activation_bytes(model, lm_loss, window)
        times = []
        for i in range(warmup + repeats):
            if device.type == "cuda" and i == warmup:
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            t0 = time.perf_counter()
            with autocast(device, cfg.precision):
                loss = lm_loss(model, window)
            loss.backward()
            synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            out["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
        med = statistics.median(times)
        out.update(fwd_bwd_s=med, tokens_per_s=B * seq_len / med, targets_per_s=B * model.num_predicted / med)
    except torch.OutOfMemoryError:
        out["error"] = "out of memory"
    finally:
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out
