"""The measurement back-propagates the sum of *all* outputs instead of output i, so it finds
what any position depends on (always 0) (task: receptive field)."""
import torch


def measure_first_dependency(trunk, x, i):
    x = x.detach().clone().requires_grad_(True)
    out = trunk(x)
    probe = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(0)).to(out.dtype)
    (out * probe).sum().backward()
    return int((x.grad[0].abs().sum(-1) != 0).nonzero()[0])
