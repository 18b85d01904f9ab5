"""minecp — a small, readable implementation of the ECP family of long-context models.

Mahmood & Huang, "Efficient Context Propagating Perceiver Architectures for
Auto-Regressive Language Modeling", arXiv 2412.06106.

    >>> import torch, minecp
    >>> cfg = minecp.ModelConfig(vocab_size=256, seq_len=64, d_model=64, n_heads=2, n_layers=2)
    >>> model = minecp.build_model("ecp", cfg)
    >>> model(torch.zeros(1, 64, dtype=torch.long)).shape
    torch.Size([1, 64, 256])
"""

from .config import ModelConfig
from .models import MODEL_NAMES, LanguageModel, build_model, lm_loss
from .generation import generate, generate_stream  # cached decoding (module minecp.generation)
from .evaluate import sliding_window_nll  # every token scored once (module minecp.evaluate)

__version__ = "0.1.0"

__all__ = ["ModelConfig", "MODEL_NAMES", "build_model", "lm_loss", "LanguageModel"]
__all__ += ["generate", "generate_stream"]
__all__ += ["sliding_window_nll"]
