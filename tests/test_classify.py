"""The sCIFAR classifier's read-out: which pixels the last position can see."""

import warnings

import pytest
import torch

import minecp
from minecp.classify import SequenceClassifier, last_position_reach


def model(name, n_layers, num_segments=8, N=32):
    cfg = minecp.ModelConfig(vocab_size=16, seq_len=N, d_model=16, n_heads=2, n_layers=n_layers,
                             num_segments=num_segments, latent_len=N // 2)
    return minecp.build_model(name, cfg).eval()


@pytest.mark.parametrize("n_layers, num_segments", [(1, 8), (2, 8), (3, 8), (7, 8), (9, 8), (2, 1), (1, 2)])
def test_reach_is_what_the_last_position_depends_on(n_layers, num_segments):
    """Changing one earlier token moves the last position's features iff it is in reach.

    float64: at initialisation a token many segments back moves the last position by ~1e-10
    (each relay layer damps it), which float32 can round away to exactly zero.
    """
    torch.manual_seed(0)
    m = model("ecp", n_layers, num_segments).double()
    N, reach = 32, last_position_reach(m)
    assert reach == min(N, (n_layers + 1) * N // num_segments)  # (L+1)S positions, N at most
    idx = torch.randint(0, 16, (1, N))
    with torch.no_grad():
        base = m.features(idx)[0, -1]
        for t in range(N):
            changed = idx.clone()
            changed[0, t] = (changed[0, t] + 1) % 16
            moved = not torch.equal(m.features(changed)[0, -1], base)
            assert moved == (t >= N - reach), t


def test_classifier_warns_when_ecp_cannot_see_the_whole_sequence():
    with pytest.warns(UserWarning, match=r"last 12 of 32 positions.*n_layers >= num_segments - 1 \(here >= 7\)"):
        SequenceClassifier(model("ecp", 2), 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SequenceClassifier(model("ecp", 7), 10)           # L = s - 1: the whole sequence
        SequenceClassifier(model("dense", 1), 10)         # dense attention always sees everything
        SequenceClassifier(model("perceiver_ar", 1), 10)
    assert last_position_reach(model("perceiver_ar", 1)) == 32
