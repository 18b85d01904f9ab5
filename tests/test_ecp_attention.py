"""Every ecp_attention backend equals dense attention with the explicit ECP mask."""

import pytest
import torch

from minecp.attention import reference_attention
from minecp.masks import ecp_rule, mask_matrix
from minecp.ops import ecp_attention

CPU_BACKENDS = ["torch", "flex"]
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def _inputs(B, H, N, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, N, D, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("N,S", [(16, 16), (48, 16), (60, 12), (128, 32)])
def test_backend_matches_masked_dense(backend, dtype, N, S):
    B, H, D = 2, 3, 16
    q, k, v = _inputs(B, H, N, D, dtype)
    mask = mask_matrix(ecp_rule(S), N)
    ref = reference_attention(q, k, v, mask)
    tol = TOLERANCE[dtype]
    if backend == "flex":
        # FlexAttention has no CPU backward: check the forward pass, and that asking for
        # gradients fails loudly rather than silently.
        with torch.no_grad():
            out = ecp_attention(q, k, v, S, backend=backend)
        torch.testing.assert_close(out, ref.detach(), atol=tol, rtol=0)
        with pytest.raises(NotImplementedError, match="backend='torch'"):
            ecp_attention(q, k, v, S, backend=backend)
        return
    out = ecp_attention(q, k, v, S, backend=backend)
    assert out.dtype == dtype and out.shape == (B, H, N, D)
    torch.testing.assert_close(out, ref, atol=tol, rtol=0)

    grad_out = torch.randn_like(out)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad_out)
    out_grads = torch.autograd.grad(out, (q, k, v), grad_out)
    for name, a, b in zip("qkv", out_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=10 * tol, rtol=0, msg=f"d{name} differs")


def test_torch_backend_never_builds_full_scores():
    """The torch backend's largest intermediate is O(N * S): measure via a saved-tensor hook."""
    N, S, D = 512, 32, 8
    q, k, v = _inputs(1, 1, N, D, torch.float32)
    largest = 0

    def pack(t):
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ecp_attention(q, k, v, S, backend="torch").sum().backward()
    assert largest <= (N // S) * S * 2 * S * 2      # tile scores [s, S, 2S] (+ slack for masks)
    assert largest < N * N / 4


def test_scale_argument():
    q, k, v = _inputs(1, 2, 32, 8, torch.float64)
    mask = mask_matrix(ecp_rule(8), 32)
    for backend in CPU_BACKENDS:
        with torch.no_grad():
            out = ecp_attention(q, k, v, 8, backend=backend, scale=0.3)
        torch.testing.assert_close(out, reference_attention(q, k, v, mask, scale=0.3), atol=1e-12, rtol=0)


def test_bad_inputs():
    q = torch.randn(1, 1, 30, 8)
    with pytest.raises(ValueError, match="multiple of segment_len"):
        ecp_attention(q, q, q, 8)
    with pytest.raises(ValueError, match="backend must be one of"):
        ecp_attention(q, q, q, 10, backend="cuda-magic")
    with pytest.raises(ValueError, match="segment_len"):
        ecp_attention(q, q, q, 0)
    with pytest.raises(TypeError, match="floating-point"):
        ecp_attention(q.long(), q, q, 10)
    with pytest.raises(ValueError, match="same shape"):
        ecp_attention(q, q[..., :4], q, 10)
    with pytest.raises(ValueError, match=r"\[B, H, N, D\]"):
        ecp_attention(q[0], q[0], q[0], 10)
