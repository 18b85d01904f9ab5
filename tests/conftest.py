"""Shared pytest setup.

Without a CUDA GPU, run Triton kernels in Triton's CPU interpreter. ``@triton.jit``
decides interpreter-or-GPU when a kernel is defined (at import of the module holding
it), so the variable must be set here, before any test module imports minecp's Triton
code. ``setdefault`` leaves an explicit TRITON_INTERPRET=0/1 from the caller alone.
"""

import os

try:
    import torch

    _has_cuda = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a hard dependency
    _has_cuda = False

if not _has_cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests never touch the network: Hugging Face libraries read these when first imported.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run every test with one torch thread.

    The tests use tiny models, for which a thread pool costs more than it gains, and
    PyTorch's OpenMP threads slow down many times over when another process is busy on
    the other core of a small CI machine.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
