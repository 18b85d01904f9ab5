"""Multi-process data parallelism with PyTorch's own engine (torchrun + DDP).

``torchrun --nproc_per_node=K -m minecp train ...`` starts K copies of the program and
sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Each copy joins one
process group (NCCL between GPUs, gloo on CPU), holds a full model replica wrapped in
:class:`torch.nn.parallel.DistributedDataParallel`, computes gradients on its own slice
of the global batch, and DDP averages the gradients across ranks during ``backward()``.
All ranks then take the same optimizer step, so the replicas stay identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``; ``local_rank`` on its host."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 does the logging, validation and checkpoint writing."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group if launched by torchrun (WORLD_SIZE > 1), else do nothing.

    Args:
        device_type: "cuda" (uses the NCCL backend and binds this process to GPU
            LOCAL_RANK) or "cpu" (gloo backend).

    Returns:
        This process's :class:`DistInfo`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def shutdown_distributed() -> None:
    """Leave the process group (if any); call once at the end of a run."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def mean_across_ranks(value: float, info: DistInfo, device) -> float:
    """Average a Python number over ranks (for logging the global loss)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / info.world_size


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` as a list indexed by rank (e.g. per-rank RNG states)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
