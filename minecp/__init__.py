"""minecp — a small, readable implementation of the ECP family of long-context models.

Mahmood & Huang, "Efficient Context Propagating Perceiver Architectures for
Auto-Regressive Language Modeling", arXiv 2412.06106.

    >>> import torch, minecp
    >>> cfg = minecp.ModelConfig(vocab_size=256, seq_len=64, d_model=64, n_heads=2, n_layers=2)
    >>> model = minecp.build_model("ecp", cfg)
    >>> model(torch.zeros(1, 64, dtype=torch.long)).shape
    torch.Size([1, 64, 256])

Where things live: models in ``minecp.models``, visibility rules in ``minecp.masks``,
attention backends in ``minecp.ops``, attention work in ``minecp.flops``, data in
``minecp.data``, batches and losses in ``minecp.tasks``, training in ``minecp.train``,
evaluation in ``minecp.evaluate``, decoding in ``minecp.generation``, the comparison
study in ``minecp.compare``.
"""

from .config import ModelConfig
from .evaluate import sliding_window_nll
from .generation import generate, generate_stream
from .models import MODEL_NAMES, LanguageModel, build_model, lm_loss

__version__ = "0.1.0"

__all__ = ["ModelConfig", "MODEL_NAMES", "build_model", "lm_loss", "LanguageModel",
           "generate", "generate_stream", "sliding_window_nll"]
