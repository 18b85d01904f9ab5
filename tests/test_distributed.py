"""DDP with 2 gloo ranks on CPU equals one process with the same global batch.

Why allclose and not torch.equal: DDP all-reduces (sums) the two ranks' gradients of
their half-batches and divides by 2, whereas one process averages the full batch inside
the loss. Both are the same mean, but floating-point addition is not associative, so
the order of the sums differs in the last bits (measured: max |difference| 1.4e-7 after 4 steps), and AdamW's division
by sqrt(v) can amplify such differences in parameters whose gradients are near zero.
"""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from minecp.presets import TrainConfig
from minecp.tasks import LMTask
from minecp.train import Trainer



V = 40


def config(**kw):
    return TrainConfig(model="ecp", seq_len=16, d_model=16, n_heads=2, n_layers=2, num_segments=2, steps=4,
                       batch_size=4, grad_accum=2, lr=3e-3, warmup_steps=1, eval_every=2, save_every=100,
                       log_every=1, eval_batches=1, vocab_size=V, device="cpu", dropout=0.0, **kw)


def data():
    return torch.randint(0, V, (3000,), generator=torch.Generator().manual_seed(0)).numpy()


def worker(rank, world, port, run_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from minecp.distributed import shutdown_distributed
    tokens = data()
    try:
        Trainer(config(), LMTask(tokens, tokens, 16), V, run_dir, progress=False).fit()
    finally:
        shutdown_distributed()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_ranks_match_single_process(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    tokens = data()
    single = Trainer(config(), LMTask(tokens, tokens, 16), V, tmp_path / "one", progress=False)
    single.fit()
    ddp = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert ddp["step"] == 4 and len(ddp["rng"]) == 2  # one RNG state per rank
    start = Trainer(config(), LMTask(tokens, tokens, 16), V, tmp_path / "init", progress=False).model
    moved = 0.0
    for name, p in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], p, rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, float((p - start.state_dict()[name]).abs().max()))
    assert moved > 1e-3, "training moved the parameters, so the comparison means something"
