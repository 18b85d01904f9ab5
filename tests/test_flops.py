"""The pair counts of minecp.flops against the real attention of every model."""

import pytest
import torch

import minecp
from minecp.attention import record_attention
from minecp.flops import (attention_flops, attention_pairs, compressed_pairs, dense_pairs, ecp_pairs,
                          perceiver_ar_pairs)

CONFIG = dict(vocab_size=32, seq_len=48, d_model=16, n_heads=2, n_layers=3, num_segments=4, latent_len=16,
              context_segments=4, compressed_len=8)


@pytest.mark.parametrize("name", minecp.MODEL_NAMES)
def test_formula_counts_the_pairs_the_model_attends(name):
    """Count the (query, key) pairs with non-zero probability in every layer of a real forward."""
    torch.manual_seed(0)
    cfg = minecp.ModelConfig(**CONFIG)
    model = minecp.build_model(name, cfg).eval()
    with torch.no_grad(), record_attention() as maps:
        model(torch.randint(0, 32, (1, cfg.seq_len)))
    assert len(maps) == cfg.n_layers
    counted = sum(int((m[0, 0] > 0).sum()) for m in maps)    # head 0; every head has the same mask here
    assert attention_pairs(name, cfg) == counted
    assert attention_flops(name, cfg) == 4 * cfg.d_model * counted


def test_closed_forms_and_errors():
    assert dense_pairs(4) == 10 and ecp_pairs(8, 2) == 4 * 3 + 3 * 4    # N = 8 picture, docs/architectures.md
    assert ecp_pairs(2048, 2048) == dense_pairs(2048)                   # one segment: dense causal
    assert ecp_pairs(8192, 256) / dense_pairs(8192) == pytest.approx(0.0919, abs=1e-4)  # notebook 06: 9.2 %
    with pytest.raises(ValueError, match="multiple of S"):
        ecp_pairs(10, 4)
    with pytest.raises(ValueError, match="unknown model name 'nope'"):
        attention_pairs("nope", minecp.ModelConfig(**CONFIG))
    with pytest.raises(ValueError, match="0 < M < N"):
        perceiver_ar_pairs(4, 16, 1)                                   # would be a negative count
    with pytest.raises(ValueError, match="N >= 1 and L >= 1"):
        dense_pairs(-3)
    with pytest.raises(ValueError, match="C' <= C"):
        compressed_pairs(48, 16, 3, 100)
    with pytest.raises(ValueError, match="context_shift"):
        attention_pairs("segmented_perceiver_ar", minecp.ModelConfig(**CONFIG, context_shift=2))
