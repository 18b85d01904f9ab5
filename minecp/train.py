"""The training loop: AdamW + warm-up/cosine schedule, accumulation, clipping, exact resume.

What a step does (``grad_accum`` micro-steps, then one optimizer step):

1. every rank draws the *same* global batch of ``batch_size`` examples from a seeded
   ``torch.Generator`` and keeps its own slice (rank r takes rows r*b .. r*b + b - 1), so
   one process and K DDP ranks see exactly the same data;
2. forward under bf16 autocast on CUDA (fp32 on CPU), loss / grad_accum, backward (DDP
   averages gradients over ranks on the last micro-step only: ``no_sync`` before);
3. clip the global gradient norm, AdamW step, scheduler step.

Exact resume: the checkpoint stores model, optimizer and scheduler state, the step, the
data generator's state and every RNG the step touches (torch CPU/CUDA for dropout, Python
``random``). Restoring them makes steps k+1.. identical to an uninterrupted run on CPU
(on GPU, non-deterministic kernels can still differ in the last bits).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from . import distributed as D
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .device import autocast, resolve_device
from .presets import TrainConfig

CHECKPOINT_NAME, METRICS_NAME = "checkpoint.pt", "metrics.jsonl"
#: fields that define the model and its vocabulary: a resume must not change them.
IDENTITY_FIELDS = ("model", "dataset", "tokenizer", "vocab_size", "seq_len", "d_model", "n_heads",
                   "n_layers", "mlp_ratio", "num_segments", "latent_len", "context_segments",
                   "compressed_len", "context_shift")


# -- optimiser and schedule -----------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay on ``nn.Linear`` weights only.

    Weight decay pulls weights towards 0; that regularises matrices that mix features,
    but hurts embeddings (rare tokens would decay towards 0 between their updates),
    LayerNorm gains (whose natural value is 1) and biases. With tied embeddings the output
    projection *is* the embedding matrix, so it is not decayed either.

    Returns:
        [{"params": decayed, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}];
        every trainable parameter appears exactly once.
    """
    no_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - no_decay
    seen, groups = set(), ([], [])
    for p in model.parameters():  # parameters() already skips the tied duplicate
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            groups[0 if id(p) in decay else 1].append(p)
    return [{"params": groups[0], "weight_decay": weight_decay}, {"params": groups[1], "weight_decay": 0.0}]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based).

    Linear warm-up from lr/warmup to lr over ``warmup`` steps (Adam's second-moment
    estimate is noisy at first; small early steps avoid a bad start), then a half cosine
    from 1 down to ``min_ratio`` at ``total`` steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    """(AdamW over :func:`param_groups` with betas (``cfg.beta1``, ``cfg.beta2``),
    LambdaLR scheduler applying :func:`lr_factor`); step the scheduler once per
    optimizer step."""
    fused = device.type == "cuda"  # one kernel for all parameters on GPU
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                            betas=(cfg.beta1, cfg.beta2), fused=fused)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
    return opt, sched


# -- runtime helpers --------------------------------------------------------------------------
def rng_state(generator: torch.Generator) -> dict:
    """Every random state a training step touches (for exact resume)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "data": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume_compatible(saved: dict, cfg: TrainConfig, path, tokenizer: dict | None = None) -> None:
    """Raise CheckpointError if ``cfg`` (or ``tokenizer``) changes the architecture, data or vocabulary."""
    old, old_tok = saved.get("train_config", {}), saved.get("tokenizer")
    for name in IDENTITY_FIELDS:
        if name in old and old[name] != getattr(cfg, name):
            raise CheckpointError(
                f"cannot resume {str(path)!r}: it was trained with --{name.replace('_', '-')} "
                f"{old[name]}, this run asks for {getattr(cfg, name)}; start a new run directory instead")
    if tokenizer and old_tok and tokenizer.get("fingerprint") != old_tok.get("fingerprint"):
        raise CheckpointError(f"cannot resume {str(path)!r}: it was trained with tokenizer {old_tok.get('name')!r} "
                              f"(fingerprint {old_tok.get('fingerprint')}), this run's tokenizer is "
                              f"{tokenizer.get('name')!r} (fingerprint {tokenizer.get('fingerprint')})")


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Train one model on one task; checkpoints and metrics go to ``run_dir``.

    Every logged record (what ``metrics.jsonl`` holds) is also kept in ``history``, so a
    notebook can train with ``run_dir=None`` (nothing written to disk) and plot
    ``trainer.train_losses``.

    Args:
        cfg: the run's :class:`minecp.presets.TrainConfig`.
        task: an :class:`minecp.tasks.LMTask`, :class:`minecp.tasks.CopyTask` or
            :class:`minecp.classify.ClassifyTask`.
        vocab_size: V of the tokenizer (or number of symbols of the task).
        run_dir: output directory (``checkpoint.pt``, ``metrics.jsonl``), or None to
            keep everything in memory (no checkpoint, no resume).
        tokenizer: serialisable tokenizer description stored in checkpoints (or None).
        resume: continue from ``run_dir/checkpoint.pt`` (exact resume).
        extra: additional entries for the checkpoint (e.g. ``num_classes``).
        progress: show a tqdm bar (rank 0 only).

    Raises:
        ValueError: ``resume`` without a ``run_dir``; ``batch_size`` not divisible by the
            number of processes.
        CheckpointError: resume requested but the checkpoint is missing, unreadable, or
            belongs to another architecture/vocabulary; or a checkpoint already exists
            and ``resume`` is False (a new run never overwrites an old one).
    """

    def __init__(self, cfg: TrainConfig, task, vocab_size: int, run_dir=None, tokenizer=None,
                 resume: bool = False, extra: dict | None = None, progress: bool = True):
        if resume and run_dir is None:
            raise ValueError("resume=True needs run_dir (the directory holding checkpoint.pt), got None")
        self.cfg, self.task = cfg, task
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.ckpt_path = None if run_dir is None else self.run_dir / CHECKPOINT_NAME
        self.history: list[dict] = []  # every logged record, in order (rank 0)
        self.device = resolve_device(cfg.device)
        self.dist = D.init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if cfg.batch_size % self.dist.world_size:
            raise ValueError(f"batch_size={cfg.batch_size} must be divisible by the number of "
                             f"processes ({self.dist.world_size})")
        self.progress = progress and self.dist.is_main
        self.tokenizer, self.extra = tokenizer, dict(extra or {})
        saved = None
        if resume:
            saved = load_checkpoint(self.ckpt_path, map_location="cpu")
            check_resume_compatible(saved, cfg, self.ckpt_path, tokenizer)
            if "optimizer" not in saved:
                raise CheckpointError(f"{str(self.ckpt_path)!r} holds no training state to resume")
        elif self.ckpt_path is not None and self.ckpt_path.exists():
            raise CheckpointError(f"{str(self.ckpt_path)!r} already exists; pass --resume to continue "
                                  "that run or choose another --out directory")

        # Same seed on every rank: identical initial replicas and identical data order.
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.model_config = cfg.model_config(vocab_size)
        self.model = task.build(cfg.model, self.model_config).to(self.device)
        self.optimizer, self.scheduler = make_optimizer(self.model, cfg, self.device)
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        if saved is not None:
            self._restore(saved)
        # Dropout masks should differ between ranks: offset the torch seed by the rank.
        if saved is None and self.dist.enabled:
            torch.manual_seed(cfg.seed + 1000 * self.dist.rank)
        self.train_model = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DDP(self.model, device_ids=ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)

    # -- state ---------------------------------------------------------------------------------
    def _restore(self, saved: dict) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.step = int(saved["step"])
        rngs = saved["rng"]
        set_rng_state(rngs[self.dist.rank] if self.dist.rank < len(rngs) else rngs[0], self.data_gen)

    def state_dict(self) -> dict:
        """The checkpoint dict (collective in DDP: every rank must call it)."""
        rngs = D.gather_objects(rng_state(self.data_gen), self.dist)
        return {"model_name": self.cfg.model, "model_config": self.model_config.to_dict(),
                "task": self.task.kind, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "step": self.step, "rng": rngs, "train_config": self.cfg.to_dict(),
                "tokenizer": self.tokenizer, **self.extra}

    def save(self) -> None:
        """Write ``run_dir/checkpoint.pt`` atomically (rank 0; every rank must call it).

        Without a ``run_dir`` there is nothing to write and this does nothing.
        """
        if self.run_dir is None:
            return
        state = self.state_dict()
        if self.dist.is_main:
            save_checkpoint(state, self.ckpt_path)
        D.barrier(self.dist)

    def log(self, record: dict) -> None:
        """Append ``record`` to ``history`` and as one JSON line to ``run_dir/metrics.jsonl`` (rank 0)."""
        if self.dist.is_main:
            self.history.append(record)
        if self.dist.is_main and self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / METRICS_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")

    @property
    def train_losses(self) -> list[float]:
        """Training loss (nats per target token) of every logged step, from ``history``."""
        return [r["loss"] for r in self.history if "loss" in r]

    # -- steps ---------------------------------------------------------------------------------
    def train_step(self) -> float:
        """One optimizer step; returns this rank's mean micro-batch loss."""
        cfg, model = self.cfg, self.train_model
        model.train()
        total = 0.0
        for micro in range(cfg.grad_accum):
            batch = [t.to(self.device) for t in self.task.batch(
                "train", self.data_gen, cfg.batch_size, self.dist.rank, self.dist.world_size)]
            last = micro == cfg.grad_accum - 1
            sync = contextlib.nullcontext() if last or not self.dist.enabled else model.no_sync()
            with sync:
                with autocast(self.device, cfg.precision):
                    loss = self.task.loss(model, *batch)
                (loss / cfg.grad_accum).backward()
            total += loss.item()
        # The global gradient norm, clipped to grad_clip (inf = measure only). Checked before
        # the update: a finite loss can still give inf/NaN gradients (an overflow in the
        # backward pass, e.g. under bf16 autocast), and one such update ruins the weights.
        # Gradients are already summed over DDP ranks, so every rank sees the same norm.
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"training diverged: the gradient norm became {grad_norm.item()} at step {self.step + 1} "
                f"(loss {total / cfg.grad_accum:.4g}); that update was not applied and nothing was saved, "
                f"so a checkpoint on disk (if any) is from before. Lower lr (--lr, now {cfg.lr:g}) or keep "
                f"gradient clipping on (--grad-clip, now {cfg.grad_clip:g})")
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the lr this step used
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return total / cfg.grad_accum

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean loss on ``eval_batches`` fixed validation batches (same ones every time)."""
        gen = torch.Generator().manual_seed(self.cfg.seed + 1)  # independent of the data stream
        self.model.eval()
        totals: dict[str, float] = {}
        for _ in range(self.cfg.eval_batches):
            batch = [t.to(self.device) for t in self.task.batch("val", gen, self.cfg.batch_size)]
            with autocast(self.device, self.cfg.precision):
                for k, v in self.task.val_stats(self.model, *batch).items():
                    totals[k] = totals.get(k, 0.0) + v / self.cfg.eval_batches
        self.model.train()
        if self.task.kind == "lm":
            totals["val_ppl"] = math.exp(min(totals["val_loss"], 50.0))
        return totals

    def fit(self, stop_at: int | None = None) -> dict:
        """Train until ``cfg.steps`` (or ``stop_at``) and save a final checkpoint.

        The mean training loss is checked at every log and checkpoint step: a non-finite
        one stops the run before anything is saved, so the last checkpoint (if any) stays
        the last good state.

        Args:
            stop_at: stop after this optimizer step (an int >= 1; as if interrupted,
                resume later).

        Returns:
            The last logged record (step, loss, lr, and val metrics if any).

        Raises:
            ValueError: ``stop_at`` not an int >= 1.
            FloatingPointError: a gradient norm or the training loss became NaN or
                infinite; no such update is applied or saved (the message names the step;
                lower ``lr`` or keep ``grad_clip`` on).
        """
        cfg = self.cfg
        if stop_at is not None and (not isinstance(stop_at, numbers.Integral) or isinstance(stop_at, bool)
                                    or stop_at < 1):
            raise ValueError(f"stop_at must be None or an int >= 1, got {stop_at!r}")
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.seq_len
        bar = None
        if self.progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.model}", unit="step",
                       dynamic_ncols=True, file=sys.stderr)
        record, t0, since = {}, time.time(), time.time()
        window_steps, window_loss = 0, 0.0  # since the last log line
        while self.step < end:
            window_loss += self.train_step()
            window_steps += 1
            if bar is not None:
                bar.update(1)
            save_now = self.step % cfg.save_every == 0 and self.step != end
            if self.step % cfg.log_every == 0 or self.step == end or save_now:
                loss = D.mean_across_ranks(window_loss / window_steps, self.dist, self.device)
                if not math.isfinite(loss):  # the same on every rank: all stop together
                    raise FloatingPointError(
                        f"training diverged: the training loss became {loss} by step {self.step}; "
                        "stopped without saving, so a checkpoint on disk (if any) is from before. Lower "
                        f"lr (--lr, now {cfg.lr:g}) or keep gradient clipping on (--grad-clip, now "
                        f"{cfg.grad_clip:g})")
            if self.step % cfg.log_every == 0 or self.step == end:
                now = time.time()
                record = {"step": self.step, "loss": round(loss, 5), "lr": self.last_lr,
                          "tokens_per_s": round(window_steps * tokens_per_step / max(now - since, 1e-9)),
                          "elapsed_s": round(now - t0, 2)}
                since, window_steps, window_loss = now, 0, 0.0
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{record['lr']:.2e}",
                                    tok_s=record["tokens_per_s"])
                self.log(record)
            if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                if self.dist.is_main:
                    val = {"step": self.step, **{k: round(v, 5) for k, v in self.validate().items()}}
                    self.log(val)
                    record = {**record, **val}
                    if bar is not None:
                        bar.write(f"step {self.step}: " + ", ".join(f"{k} {v}" for k, v in val.items()
                                                                    if k != "step"))
                D.barrier(self.dist)
            if save_now:
                self.save()
        if bar is not None:
            bar.close()
        self.save()
        return record
