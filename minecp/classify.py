"""Sequence classification with a minecp language model as the trunk (sCIFAR-10).

sCIFAR-10 (Long Range Arena, Tay et al. 2021) flattens a 32x32 image into a sequence of
pixel values and asks for its class. Every trunk reads the sequence causally, so its *last*
position is the one that may have seen every pixel: a linear head on that position's final
hidden state gives the class logits, trained with cross-entropy.

"May": dense attention and the PerceiverAR family let the last position see the whole
window, but ECP's last position sees back only to the start of segment s - 1 - L after L
layers (s segments; docs/architectures.md §6). Unless L >= s - 1 the first
segments of the image cannot influence the class; :func:`last_position_reach` computes
how much is seen and :class:`SequenceClassifier` warns when it is not everything.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masks import receptive_field_rule
from .models import LanguageModel


def last_position_reach(backbone: LanguageModel) -> int:
    """How many of the N window positions the backbone's last output position depends on.

    Args:
        backbone: a minecp :class:`LanguageModel` fed full windows of N = ``config.seq_len``
            tokens (ECP also accepts shorter inputs; their last position is not covered here).

    Returns:
        int in [1, N]: N for dense attention and the PerceiverAR family; for ECP with s
        segments of S and L layers, N - S * max(0, s - 1 - L) (the receptive field of
        docs/architectures.md §6 at position N - 1), so all N exactly when L >= s - 1.
    """
    cfg = backbone.config
    if getattr(backbone, "name", None) != "ecp":
        return cfg.seq_len
    return int(receptive_field_rule(cfg.seq_len, cfg.segment_len, cfg.n_layers)[-1].sum())


class SequenceClassifier(nn.Module):
    """``features(idx)[:, -1]`` of a language model -> Linear -> class logits.

    Args:
        backbone: a minecp :class:`LanguageModel` (its ``lm_head`` is unused).
        num_classes: number of classes (>= 2).

    ``model(idx)`` with idx LongTensor [B, N] returns float logits [B, num_classes].

    Raises:
        ValueError: ``num_classes`` is not an int >= 2.

    Warns:
        UserWarning: an ECP backbone whose last position cannot see the first positions
            (n_layers < num_segments - 1; see :func:`last_position_reach`).
    """

    def __init__(self, backbone: LanguageModel, num_classes: int):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        N, reach = backbone.config.seq_len, last_position_reach(backbone)
        if reach < N:
            cfg = backbone.config
            warnings.warn(f"the classifier reads ECP's last position, which sees only the last {reach} of {N} "
                          f"positions with n_layers={cfg.n_layers} and num_segments={cfg.num_segments}: the "
                          f"first {N - reach} cannot affect the class. Use n_layers >= num_segments - 1 "
                          f"(here >= {cfg.num_segments - 1}) or fewer num_segments.", UserWarning, stacklevel=2)
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.d_model, num_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def config(self):
        """The backbone's :class:`minecp.ModelConfig`."""
        return self.backbone.config

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Class logits float [B, num_classes] for token ids [B, N]."""
        return self.head(self.backbone.features(idx)[:, -1])


def classification_loss(model: SequenceClassifier, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of ``model(idx)`` [B, C] against int ``labels`` [B]."""
    return F.cross_entropy(model(idx).float(), labels)


@torch.no_grad()
def accuracy(model: SequenceClassifier, idx: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(number correct, number of examples) for one batch, idx [B, N], labels [B]."""
    pred = model(idx).argmax(-1)
    return int((pred == labels).sum()), int(labels.numel())


class ClassifyTask:
    """Training task for :class:`minecp.train.Trainer`: sequences + labels, cross-entropy.

    Args:
        train, val: (tokens, labels) pairs — tokens int array [n, N], labels int [n].
        num_classes: number of classes.
    """

    kind = "classify"

    def __init__(self, train, val, num_classes: int):
        self.data = {"train": train, "val": val}
        self.num_classes = num_classes
        self.seq_len = train[0].shape[1]

    def batch(self, split, generator, batch_size, rank=0, world_size=1):
        """This rank's slice of a random global batch: (idx LongTensor [b, N], labels [b])."""
        tokens, labels = self.data[split]
        pick = torch.randint(0, len(labels), (batch_size,), generator=generator)
        per = batch_size // world_size
        pick = pick[rank * per:(rank + 1) * per].sort().values.numpy()  # sorted: memmap-friendly
        return (torch.from_numpy(tokens[pick].astype("int64")), torch.from_numpy(labels[pick].astype("int64")))

    def build(self, name, config):
        """A :class:`SequenceClassifier` around ``build_model(name, config)``."""
        from .models import build_model
        return SequenceClassifier(build_model(name, config), self.num_classes)

    def loss(self, model, idx, labels):
        """Mean cross-entropy (nats)."""
        return classification_loss(model, idx, labels)

    def val_stats(self, model, idx, labels) -> dict:
        """{"val_loss": nats, "val_acc": fraction correct} of one batch."""
        logits = model(idx).float()
        return {"val_loss": F.cross_entropy(logits, labels).item(),
                "val_acc": (logits.argmax(-1) == labels).float().mean().item()}
