"""CPU benchmark: one forward + backward of the attention, dense vs ECP, N = 1k ... 16k.

Prints a markdown table of wall time and peak extra memory (resident set size) per
case. Each case runs in a fresh subprocess, so the peak of one case cannot hide in the
peak of another: peak = ru_maxrss after the call - RSS before it.

    python benchmarks/attention_cpu.py                 # N = 1024 ... 16384, S = 256
    python benchmarks/attention_cpu.py --lengths 1024 2048 --repeats 1

Implementations: dense SDPA (causal), dense with materialised N x N scores, ECP's readable
segment-tile reference (backend "torch") and ECP's fast CPU path (backend "sdpa", two fused
mask-free calls; benchmarks/cpu_speed.py compares them side by side with repeats).

What to expect: ECP's time and memory grow linearly in N (each query sees <= 2S keys);
dense causal attention's time grows as N^2 (PyTorch's fused CPU kernel keeps its memory
linear); the textbook version that materialises the N x N scores grows as N^2 in both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

IMPLEMENTATIONS = ("dense_sdpa", "dense_materialised", "ecp_torch", "ecp_sdpa")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_case(impl: str, N: int, S: int, B: int, H: int, D: int, repeats: int) -> dict:
    """Time one forward+backward (best of ``repeats``) and measure its peak extra RSS."""
    import torch
    import torch.nn.functional as F

    from minecp.attention import reference_attention
    from minecp.masks import causal_rule, mask_matrix
    from minecp.ops import ecp_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, requires_grad=True) for _ in range(3))
    if impl == "dense_sdpa":
        fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    elif impl == "dense_materialised":
        mask = mask_matrix(causal_rule(), N)
        fn = lambda: reference_attention(q, k, v, mask)  # noqa: E731
    elif impl == "ecp_torch":
        fn = lambda: ecp_attention(q, k, v, S, backend="torch")  # noqa: E731
    else:
        fn = lambda: ecp_attention(q, k, v, S, backend="sdpa")  # noqa: E731
    grad = torch.randn(B, H, N, D)
    before = rss_bytes()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        out.backward(grad)
        times.append(time.perf_counter() - t0)
        q.grad = k.grad = v.grad = None
        del out
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"impl": impl, "N": N, "S": S, "seconds": min(times), "peak_mib": max(peak, 0) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--segment-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-materialised", type=int, default=8192,
                        help="skip the materialised dense version above this N (its N^2 scores)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()

    if args.case:
        impl, N = args.case.split(":")
        print(json.dumps(run_case(impl, int(N), args.segment_len, args.batch, args.heads,
                                  args.head_dim, args.repeats)))
        return

    import torch

    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"# B={args.batch}, H={args.heads}, D={args.head_dim}, S={args.segment_len}, float32, "
          f"forward+backward, best of {args.repeats}\n")
    print("| N | implementation | fwd+bwd s | peak extra MiB |")
    print("|---|---|---|---|")
    for N in args.lengths:
        for impl in IMPLEMENTATIONS:
            if impl == "dense_materialised" and N > args.max_materialised:
                print(f"| {N} | {impl} | skipped (N > {args.max_materialised}) | |")
                continue
            cmd = [sys.executable, __file__, "--case", f"{impl}:{N}", "--segment-len", str(args.segment_len),
                   "--batch", str(args.batch), "--heads", str(args.heads), "--head-dim", str(args.head_dim),
                   "--repeats", str(args.repeats)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"| {N} | {impl} | failed: {proc.stderr.strip().splitlines()[-1]} | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {N} | {impl} | {r['seconds']:.3f} | {r['peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
