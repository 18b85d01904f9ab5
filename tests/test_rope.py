"""Rotary position embeddings: exact angles, relative-position scores, at any position."""

import math

import numpy as np
import pytest
import torch

from minecp.rope import apply_rope, rope_angles


def _score(q, k, p_q, p_k, D, base=10000.0):
    """q . k after rotating q to position p_q and k to p_k (q, k: [D])."""
    cq, sq = rope_angles(torch.tensor([p_q]), D, base)
    ck, sk = rope_angles(torch.tensor([p_k]), D, base)
    return (apply_rope(q.view(1, 1, 1, D), cq, sq) * apply_rope(k.view(1, 1, 1, D), ck, sk)).sum().item()


def test_angles_match_the_formula():
    D, base = 8, 500.0
    positions = torch.tensor([0, 1, 7, 12345])
    cos, sin = rope_angles(positions, D, base)
    assert cos.shape == sin.shape == (4, D // 2) and cos.dtype == sin.dtype == torch.float32
    for i, p in enumerate(positions.tolist()):
        for j in range(D // 2):
            angle = p * base ** (-2 * j / D)
            assert cos[i, j].item() == pytest.approx(math.cos(angle), abs=1e-7)
            assert sin[i, j].item() == pytest.approx(math.sin(angle), abs=1e-7)


@pytest.mark.parametrize("D", [16, 64])
def test_score_of_a_fixed_offset_does_not_drift_with_position(D):
    """q at p + 3 against k at p scores the same at p = 3 and p = 10**7.

    With float32 angles the scores differed by ~20% at p = 10**7 (ECP decodes at
    absolute positions without bound); float64 angles keep them within 1e-4.
    """
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(D, generator=g), torch.randn(D, generator=g)
    near = _score(q, k, 3 + 3, 3, D)
    for p in (10**6, 10**7):
        assert _score(q, k, p + 3, p, D) == pytest.approx(near, rel=1e-4)
    # and the score does depend on the offset (so the comparison above can fail)
    assert abs(_score(q, k, 3 + 1, 3, D) - near) > 1.0


def test_fractional_positions():
    cos, sin = rope_angles(torch.tensor([0.5, 2.25]), 4)
    torch.testing.assert_close(cos[:, 0], torch.tensor([math.cos(0.5), math.cos(2.25)]))
    torch.testing.assert_close(sin[:, 1], torch.tensor([math.sin(0.005), math.sin(0.0225)]))


@pytest.mark.parametrize("args,error,match", [
    ((torch.zeros(2, 3), 8), ValueError, r"positions must have shape \[T\]"),
    (([0, 1], 8), TypeError, "positions must be a 1-D torch.Tensor"),
    ((torch.arange(3), 7), ValueError, "head_dim must be an even int"),
    ((torch.arange(3), 8.0), TypeError, "head_dim must be an int"),
    ((torch.arange(3), 8, float("nan")), ValueError, "base must be a finite number > 1"),
    ((torch.arange(3), 8, float("inf")), ValueError, "base must be a finite number > 1"),
    ((torch.arange(3), 8, 1.0), ValueError, "base must be a finite number > 1"),
    ((torch.arange(3), 8, "1e4"), TypeError, "base must be a real number"),
    ((torch.arange(3), True), TypeError, "head_dim must be an int"),
    ((torch.arange(3), np.bool_(True)), TypeError, "head_dim must be an int"),
    ((torch.arange(3), np.float64(8.0)), TypeError, "head_dim must be an int"),
    ((torch.arange(3), torch.tensor([8])), TypeError, "head_dim must be an int"),
    ((torch.arange(3), 8, torch.tensor(True)), TypeError, "base must be a real number"),
])
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        rope_angles(*args)


def test_numpy_and_tensor_numbers_are_accepted():
    positions = torch.tensor([0, 3, 12345])
    expected = rope_angles(positions, 8, 500.0)
    for D, base in ((np.int64(8), np.float32(500.0)), (torch.tensor(8), torch.tensor(500.0)), (8, np.int64(500))):
        for got, want in zip(rope_angles(positions, D, base), expected):
            assert torch.equal(got, want)
