"""The six architectures and a factory to build them by name."""

from __future__ import annotations

from ..config import ModelConfig
from .base import LanguageModel, lm_loss
from .compressed_perceiver_ar import CompressedPerceiverAR
from .dense import DenseTransformer
from .ecp import ECP
from .enhanced_perceiver_ar import EnhancedPerceiverAR
from .perceiver_ar import PerceiverAR
from .segmented_perceiver_ar import SegmentedPerceiverAR

_REGISTRY = {
    "dense": DenseTransformer,
    "perceiver_ar": PerceiverAR,
    "enhanced_perceiver_ar": EnhancedPerceiverAR,
    "compressed_perceiver_ar": CompressedPerceiverAR,
    "segmented_perceiver_ar": SegmentedPerceiverAR,
    "ecp": ECP,
}

#: The six architecture names accepted by :func:`build_model`, simplest first.
MODEL_NAMES = tuple(_REGISTRY)


def build_model(name: str, config: ModelConfig, **kwargs) -> LanguageModel:
    """Build an architecture by name.

    Args:
        name: one of :data:`MODEL_NAMES`.
        config: a :class:`minecp.ModelConfig`.
        **kwargs: passed to the model class (e.g. ``attention_backend`` for "ecp").

    Returns:
        The model (float32, on the CPU, in training mode).

    Raises:
        ValueError: unknown ``name`` (the message lists the allowed names); an unknown
            ``attention_backend`` for "ecp" (the message lists :data:`minecp.ops.BACKENDS`).
        TypeError: ``config`` is not a ModelConfig; a keyword the model does not take.

    Source: docs/architectures.md Secs. 1-6 (one class per section).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; allowed names: {', '.join(MODEL_NAMES)}")
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a minecp.ModelConfig, got {type(config).__name__}")
    return _REGISTRY[name](config, **kwargs)


__all__ = ["MODEL_NAMES", "build_model", "lm_loss", "LanguageModel", "DenseTransformer", "PerceiverAR",
           "EnhancedPerceiverAR", "CompressedPerceiverAR", "SegmentedPerceiverAR", "ECP"]
