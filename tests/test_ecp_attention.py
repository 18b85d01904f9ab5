"""Every ecp_attention backend equals dense attention with the explicit ECP mask.

The fast CPU backend "sdpa" has its own, finer sweep in tests/test_ecp_sdpa.py."""

import functools
import sys

import numpy as np
import pytest
import torch

from minecp.attention import ECPAttend, MaskedAttend, reference_attention
from minecp.masks import ecp_rule, mask_matrix
from minecp.ops import BACKENDS, ecp_attention, resolve_backend

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
    q32, k32, v32 = (t.float() for t in (q, k, v))                 # sdpa: fp32 and lower only
    with torch.no_grad():
        out = ecp_attention(q32, k32, v32, 8, backend="sdpa", scale=0.3)
    torch.testing.assert_close(out, reference_attention(q32, k32, v32, mask, scale=0.3), atol=1e-5, rtol=0)


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


# --- backend="auto": which backend for which input (a pure decision, testable without a GPU)

F32, F16, BF16, F64 = torch.float32, torch.float16, torch.bfloat16, torch.float64


@pytest.fixture
def ecp_triton():
    """The kernel module, whose limits "auto" reads (conftest set TRITON_INTERPRET first)."""
    pytest.importorskip("triton")
    from minecp.ops import ecp_triton

    return ecp_triton


@pytest.mark.parametrize("device,dtype,D,S,expected", [
    ("cpu", F32, 64, 16, "sdpa"),         # CPU: the two-call fused path (measured fastest)
    ("cpu", F16, 128, 256, "sdpa"),
    ("cpu", BF16, 8, 2, "sdpa"),
    ("cpu", F64, 64, 16, "torch"),        # float64: the CPU kernel's log-sum-exp is float32
    ("meta", F32, 64, 16, "torch"),       # neither CPU nor CUDA: the reference
    ("cuda:1", BF16, 128, 256, "triton"),  # half precision the fused kernel supports
    ("cuda", F16, 32, 16, "triton"),
    ("cuda", F32, 64, 16, "torch"),       # fp32: the kernel's exact-IEEE path is not the fast one
    ("cuda", F16, 16, 8, "torch"),        # the package's small models: D=16, S=8
    ("cuda", BF16, 64, 8, "torch"),       # S < MIN_SEGMENT_LEN
    ("cuda", BF16, 48, 16, "torch"),      # D not in SUPPORTED_HEAD_DIMS
    ("cuda", F64, 64, 16, "torch"),       # float64
])
def test_auto_picks_a_backend_that_supports_the_input(ecp_triton, device, dtype, D, S, expected):
    assert resolve_backend("auto", torch.device(device), dtype, D, S) == expected
    assert resolve_backend("auto", device, dtype, D, S) == expected   # a string works too


def test_auto_reads_the_triton_limits_from_the_kernel_module(ecp_triton, monkeypatch):
    """If the kernel learns smaller segments, "auto" follows without a second copy of the rule."""
    assert resolve_backend("auto", "cuda", BF16, 64, 8) == "torch"
    monkeypatch.setattr(ecp_triton, "MIN_SEGMENT_LEN", 8)
    assert resolve_backend("auto", "cuda", BF16, 64, 8) == "triton"
    monkeypatch.setattr(ecp_triton, "SUPPORTED_HEAD_DIMS", (16,))
    assert resolve_backend("auto", "cuda", BF16, 64, 8) == "torch"


def test_auto_without_triton_uses_torch(monkeypatch):
    # A None entry in sys.modules makes the import fail, as if Triton were not installed.
    monkeypatch.setitem(sys.modules, "minecp.ops.ecp_triton", None)
    assert resolve_backend("auto", "cuda", BF16, 64, 16) == "torch"


def test_named_backends_pass_through_and_unknown_names_fail():
    for name in ("torch", "sdpa", "flex", "triton"):
        assert resolve_backend(name, "cuda", F64, 8, 1) == name
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'torch', 'sdpa', 'flex', 'triton'\)"):
        resolve_backend("cuda", "cuda", F32, 64, 16)


def test_auto_on_cpu_is_sdpa_for_float32_and_torch_for_float64():
    q, k, v = _inputs(2, 2, 32, 16, torch.float32)
    assert torch.equal(ecp_attention(q, k, v, 8), ecp_attention(q, k, v, 8, backend="sdpa"))
    q, k, v = _inputs(2, 2, 32, 16, torch.float64)
    assert torch.equal(ecp_attention(q, k, v, 8), ecp_attention(q, k, v, 8, backend="torch"))


def test_sdpa_backend_refuses_float64_and_non_cpu_tensors():
    q = torch.randn(1, 2, 32, 8, dtype=torch.float64)
    with pytest.raises(TypeError, match="backend='torch'"):
        ecp_attention(q, q, q, 8, backend="sdpa")
    m = torch.randn(1, 2, 32, 8, device="meta")
    with pytest.raises(ValueError, match="needs CPU tensors"):
        ecp_attention(m, m, m, 8, backend="sdpa")


# --- one validation at the entry, the same for every backend -----------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_entry_validation_is_shared_by_all_backends(backend):
    q = torch.randn(1, 2, 16, 8)
    call = functools.partial(ecp_attention, backend=backend)
    with pytest.raises(TypeError, match="one dtype"):
        call(q, q.double(), q, 8)
    with pytest.raises(ValueError, match="one device"):
        call(q, q.to("meta"), q, 8)
    with pytest.raises(ValueError, match="N=0 must be a positive multiple"):
        call(q[:, :, :0], q[:, :, :0], q[:, :, :0], 8)
    for bad in (8.0, True, np.bool_(True), torch.tensor(True), np.float64(8.0), torch.tensor(8.0),
                torch.tensor([8])):
        with pytest.raises(TypeError, match="segment_len must be an int"):
            call(q, q, q, bad)
    with pytest.raises(ValueError, match="segment_len must be >= 1"):
        call(q, q, q, -8)
    for bad in ("x", True, torch.tensor(0.3)):
        with pytest.raises(TypeError, match="scale must be None or a real number"):
            call(q, q, q, 8, scale=bad)
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be None or a finite number > 0"):
            call(q, q, q, 8, scale=bad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_numpy_and_tensor_segment_len_and_numpy_scale_are_accepted(backend):
    # e.g. a segment length computed with numpy, or read from a tensor
    q, k, v = _inputs(1, 2, 32, 32, torch.float32)               # D, S that Triton supports
    expected = ecp_attention(q, k, v, 16, backend="torch", scale=0.5)
    for S in (np.int64(16), np.uint16(16), torch.tensor(16)):
        with torch.no_grad():                                       # CPU flex has no backward
            torch.testing.assert_close(ecp_attention(q, k, v, S, backend=backend, scale=np.float32(0.5)),
                                       expected)


def test_integer_scale_is_accepted():
    q, k, v = _inputs(1, 1, 16, 8, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ecp_attention(q, k, v, 8, scale=2), ecp_attention(q, k, v, 8, scale=2.0),
                                   atol=0, rtol=0)
        assert not torch.allclose(ecp_attention(q, k, v, 8, scale=2), ecp_attention(q, k, v, 8))


def test_attend_objects_check_their_arguments_at_construction():
    with pytest.raises(ValueError, match="backend must be one of"):
        ECPAttend(8, "cuda")
    with pytest.raises(ValueError, match="segment_len must be >= 1"):
        ECPAttend(0)
    with pytest.raises(TypeError, match="segment_len must be an int"):
        ECPAttend(8.0)
    with pytest.raises(TypeError, match="bool"):
        MaskedAttend(torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"\[Tq, Tk\]"):
        MaskedAttend(torch.ones(4, dtype=torch.bool))
