"""What every minecp language model shares: embeddings, blocks, output head, checks."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..blocks import Block
from ..config import ModelConfig
from ..rope import rope_angles


class LanguageModel(nn.Module):
    """Base class: token embedding -> architecture-specific trunk -> LayerNorm -> logits.

    Subclasses set ``num_predicted`` (T) and implement :meth:`trunk`.

    Calling ``model(idx)`` with ``idx`` LongTensor [B, N] returns logits float [B, T, V]
    for the last T positions of the window; logit row j predicts the token after position
    N - T + j. Dense and ECP models predict all N positions (T = N); the PerceiverAR
    family predicts only the M latents (T = M).
    """

    name: str = "base"
    #: whether the model accepts windows shorter than ``seq_len`` (dense, ECP).
    accepts_shorter: bool = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a minecp.ModelConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.d_model, config.n_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.n_layers)
        )
        self.ln_final = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2's trick: scale the residual-branch output projections by 1/sqrt(2L) so the
        # residual stream's variance does not grow with depth at initialisation.
        for name, p in self.named_parameters():
            if name.endswith("attn.out.weight") or name.endswith("mlp.down.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layers))
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    # -- helpers used by the subclasses --------------------------------------------------
    @property
    def num_predicted(self) -> int:
        """T: how many (final) positions of a window get logits."""
        return self.config.seq_len

    def rope(self, positions: torch.Tensor):
        """(cos, sin) [T, D/2] at the given absolute positions."""
        return rope_angles(positions, self.config.head_dim, self.config.rope_base)

    def check_input(self, idx: torch.Tensor) -> None:
        """Validate token ids [B, T] (raises TypeError / ValueError naming ``idx``)."""
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"idx must be a torch.LongTensor [B, N], got {type(idx).__name__}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}")
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape [B, N], got {tuple(idx.shape)}")
        T, N = idx.shape[1], self.config.seq_len
        if self.accepts_shorter:
            if not 1 <= T <= N:
                raise ValueError(f"idx length must be in [1, seq_len={N}] for {self.name}, got {T}")
        elif T != N:
            raise ValueError(f"{self.name} reads windows of exactly seq_len={N} tokens, got {T}")
        if not torch.compiler.is_compiling() and idx.numel():
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0 or hi >= self.config.vocab_size:
                raise ValueError(f"token ids must lie in [0, vocab_size={self.config.vocab_size}), "
                                 f"got ids in [{lo}, {hi}]")

    # -- the interface ---------------------------------------------------------------------
    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Architecture-specific layers: embeddings [B, T_in, d] -> hidden [B, T_out, d]."""
        raise NotImplementedError

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states [B, T, d] (after the last LayerNorm) of the predicted positions."""
        self.check_input(idx)
        x = self.embed_dropout(self.embed(idx))
        return self.ln_final(self.trunk(x))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits for the last T = ``num_predicted`` positions of the window.

        Args:
            idx: token ids, int64 or int32 [B, N] with N = ``config.seq_len`` (dense
                and ECP also accept 1 <= N' <= seq_len), each in [0, vocab_size).

        Returns:
            Float [B, T, vocab_size] (float32 unless the model was cast); row j
            predicts the token after position N - T + j.

        Raises:
            TypeError: ``idx`` is not an integer tensor.
            ValueError: ``idx`` not [B, N], a length the model does not accept, or a
                token id outside [0, vocab_size).

        Source: docs/architectures.md (which positions each architecture predicts).
        """
        return self.lm_head(self.features(idx))


def _unwrap(model: nn.Module) -> LanguageModel:
    """The LanguageModel inside DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    inner = model
    for _ in range(4):  # at most compile(DDP(model)): a few layers, never a cycle
        if isinstance(inner, LanguageModel):
            return inner
        wrapped = getattr(inner, "_orig_mod", None)
        inner = wrapped if wrapped is not None else getattr(inner, "module", None)
    raise TypeError(f"model must be a minecp LanguageModel (optionally wrapped in DDP or "
                    f"torch.compile), got {type(model).__name__}")


def lm_loss(model: LanguageModel, window: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) over the positions the model predicts.

    Args:
        model: a minecp model, possibly wrapped in DDP and/or ``torch.compile``.
        window: token ids, int64 or int32 [B, seq_len + 1]; inputs are ``window[:, :-1]``,
            targets ``window[:, 1:]``, of which the last ``model.num_predicted`` are
            scored. Dense and ECP models also take shorter windows [B, T + 1] with
            1 <= T <= seq_len.

    Returns:
        Scalar float32 tensor.

    Raises:
        TypeError: ``model`` is not a (wrapped) minecp model; ``window`` is not an
            integer tensor.
        ValueError: ``window`` not [B, seq_len + 1] (or, for dense/ECP, a length outside
            [2, seq_len + 1]), or a token id outside [0, vocab_size).

    Source: arXiv 2412.06106; docs/architectures.md §3–6 (ECP and dense score every position, the
    PerceiverAR family only the latents).
    """
    if not isinstance(window, torch.Tensor) or window.dtype not in (torch.int64, torch.int32):
        got = f"dtype {window.dtype}" if isinstance(window, torch.Tensor) else type(window).__name__
        raise TypeError(f"window must be an integer (torch.long) tensor [B, seq_len + 1], got {got}")
    core = _unwrap(model)
    N = core.config.seq_len
    # Checked here, not left to the model: its message would speak of idx = window[:, :-1],
    # one token shorter than what the caller passed.
    if window.dim() != 2:
        raise ValueError(f"window must have shape [B, seq_len + 1] = [B, {N + 1}], got {tuple(window.shape)}")
    W = window.shape[1]
    if core.accepts_shorter and not 2 <= W <= N + 1:
        raise ValueError(f"window must have shape [B, T + 1] with 1 <= T <= seq_len={N} for {core.name}, "
                         f"i.e. length in [2, {N + 1}], got length {W}")
    if not core.accepts_shorter and W != N + 1:
        raise ValueError(f"window must have shape [B, seq_len + 1] = [B, {N + 1}] for {core.name} "
                         f"(inputs window[:, :-1], targets window[:, 1:]), got length {W}")
    logits = model(window[:, :-1])
    targets = window[:, 1:][:, -logits.shape[1]:]
    return nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
