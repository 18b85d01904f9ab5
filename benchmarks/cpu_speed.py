"""CPU speed, side by side: a minimal GPT vs minecp dense vs minecp ECP, and ECP attention alone.

Part 1, models. One AdamW training step (forward, backward, update) of three language
models of one shape (d = 128, 4 layers, 4 heads, MLP 4d, byte vocabulary of 256):

* ``mini-gpt``     a plain GPT written below in ~40 lines (learned positions, fused QKV,
                   causal SDPA): the stand-in for what a learner would write instead;
* ``minecp-dense`` ``minecp.build_model("dense", ...)``;
* ``minecp-ecp``   ``minecp.build_model("ecp", ...)`` with the default backend "auto"
                   (on a CPU: the fast two-call path, :mod:`minecp.ops.ecp_sdpa`).

For each window N the batch shrinks so that a step sees about the same number of tokens
(``--tokens-per-step``). Per N the three models train in one fresh process, interleaved
step by step (gpt, dense, ecp, gpt, dense, ecp, ...), so that load from other jobs falls
on all three alike; the ECP / dense ratio is taken per round of adjacent steps. Peak
resident memory is measured separately, each model alone in a fresh process.

Part 2, attention alone. Forward + backward of one attention call, B = 1, H = 4, D = 64:
dense SDPA (causal) vs ECP's fast path ("sdpa") vs ECP's readable reference ("torch"),
interleaved repeats; the speed-up of ECP over dense divided by the ratio of visible
(query, key) pairs is the per-pair efficiency (1.0 = as efficient per pair as dense).

    python benchmarks/cpu_speed.py                  # N in 128 1024 4096 16384
    python benchmarks/cpu_speed.py --quick          # a smaller sweep, ~2 minutes
    python benchmarks/cpu_speed.py --sizes 128 1024 --steps 5 --skip-attention

Units: tokens/s (higher is better), peak RSS in MiB (whole process: interpreter, torch,
model, optimizer state and activations), seconds. Figures are min / median / max over
the timed steps (models) or repeats (attention).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

MODELS = ("mini-gpt", "minecp-dense", "minecp-ecp")
SHAPE = dict(vocab_size=256, d_model=128, n_layers=4, n_heads=4)


def segment_len_for(N: int, max_segment: int) -> int:
    """ECP's segment length in part 1: S = min(max_segment, N / 8) (at least 8 segments)."""
    return min(max_segment, N // 8)


# --- the minimal GPT (the learner's stand-in) --------------------------------------------

def mini_gpt(vocab_size: int, seq_len: int, d_model: int, n_layers: int, n_heads: int):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
            self.proj = nn.Linear(d_model, d_model, bias=False)
            self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, n_heads, C // n_heads).unbind(2)
            y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                               is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab_size, d_model)
            self.pos = nn.Embedding(seq_len, d_model)
            self.blocks = nn.ModuleList(Block() for _ in range(n_layers))
            self.ln = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, vocab_size, bias=False)
            self.head.weight = self.tok.weight

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return GPT()


def build(name: str, N: int, max_segment: int):
    import minecp

    if name == "mini-gpt":
        return mini_gpt(seq_len=N, **SHAPE)
    cfg = minecp.ModelConfig(seq_len=N, num_segments=N // segment_len_for(N, max_segment), **SHAPE)
    return minecp.build_model("dense" if name == "minecp-dense" else "ecp", cfg)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_model_case(names: list, N: int, batch: int, steps: int, max_segment: int, compile_: bool) -> dict:
    """Build ``names``' models; after one warm-up step each, time ``steps`` training steps of
    each, interleaved step by step (model 1, model 2, ..., model 1, ...), so that load from
    other jobs falls on all of them alike. With one name it also reports the process's
    peak RSS (that model's memory). Returns {name: [seconds per step]} (+ "peak_rss_mib")."""
    import torch
    import torch.nn.functional as F

    data = torch.randint(0, SHAPE["vocab_size"], (batch, N + 1), generator=torch.Generator().manual_seed(0))
    runs = {}
    for name in names:
        torch.manual_seed(0)
        model = build(name, N, max_segment)
        runs[name] = (torch.compile(model) if compile_ else model, torch.optim.AdamW(model.parameters(), lr=1e-3))

    def step(name):
        model, opt = runs[name]
        t0 = time.perf_counter()
        logits = model(data[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), data[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for name in names:                                   # warm-up (and compile)
        step(name)
    times = {name: [] for name in names}
    for _ in range(steps):
        for name in names:
            times[name].append(step(name))
    times["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return times


def case(names, N, batch, args, steps) -> dict | None:
    cmd = [sys.executable, __file__, "--model-case", json.dumps(
        dict(names=names, N=N, batch=batch, steps=steps, max_segment=args.max_segment, compile_=args.compile)),
        "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# {names} N={N} failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(xs, fmt="{:.0f}") -> str:
    return "/".join(fmt.format(x) for x in (min(xs), statistics.median(xs), max(xs)))


def models_table(args) -> None:
    rows = []
    for N in args.sizes:
        batch = max(1, args.tokens_per_step // N)
        t = case(list(MODELS), N, batch, args, args.steps)
        if t is None:
            continue
        # peak RSS: each model alone in a fresh process (one warm-up step, no timed step)
        rss = {m: (case([m], N, batch, args, 0) or {}).get("peak_rss_mib", float("nan")) for m in MODELS}
        tps = {m: [batch * N / x for x in t[m]] for m in MODELS}
        # ratio per interleaved round: the two steps ran one right after the other
        ratios = [d / e for d, e in zip(t["minecp-dense"], t["minecp-ecp"])]
        rows.append((N, batch, tps, ratios, [g / d for g, d in zip(t["mini-gpt"], t["minecp-dense"])], rss))
        print(f"# N={N} done, load average {os.getloadavg()[0]:.2f}", flush=True)

    print(f"\n## Training step (AdamW), tokens/s min/median/max over {args.steps} steps per model, "
          "interleaved step by step in one process (after one warm-up step each)")
    print(f"d=128, 4 layers, 4 heads, V=256, fp32; ECP S = min({args.max_segment}, N/8); "
          f"~{args.tokens_per_step} tokens per step{'; torch.compile' if args.compile else ''}; "
          "ratios are per round (adjacent steps), median (min-max)\n")
    print("| N | batch | S | mini-gpt tok/s | minecp-dense tok/s | minecp-ecp tok/s | ECP / dense | dense / mini-gpt "
          "| peak RSS MiB (gpt / dense / ecp) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for N, batch, tps, ratios, gd, rss in rows:
        print(f"| {N} | {batch} | {segment_len_for(N, args.max_segment)} | {spread(tps['mini-gpt'])} "
              f"| {spread(tps['minecp-dense'])} | {spread(tps['minecp-ecp'])} "
              f"| {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"| {statistics.median(gd):.2f}x ({min(gd):.2f}-{max(gd):.2f}) "
              f"| {rss['mini-gpt']:.0f} / {rss['minecp-dense']:.0f} / {rss['minecp-ecp']:.0f} |", flush=True)


# --- part 2: attention alone --------------------------------------------------------------

def visible_pairs_ratio(N: int, S: int) -> float:
    """(pairs dense causal sees) / (pairs ECP sees): N(N+1)/2 over s·S(S+1)/2 + (s-1)·S²."""
    s = N // S
    return (N * (N + 1) / 2) / (s * S * (S + 1) / 2 + (s - 1) * S * S)


def attention_table(args) -> None:
    import torch
    import torch.nn.functional as F

    from minecp.ops import ecp_attention

    B, H, D = 1, 4, 64
    print(f"\n## Attention alone, forward + backward, B={B}, H={H}, D={D}: seconds min/median/max "
          f"over {args.attn_repeats} interleaved repeats")
    print("speed-up = dense median / ECP median; efficiency = speed-up / ratio of visible pairs "
          "(1.0 = as fast per pair as dense)\n")
    print("| dtype | N | S | dense SDPA causal s | ECP sdpa (fast) s | ECP torch (reference) s | visible-pair ratio "
          "| speed-up fast | efficiency fast | speed-up reference | efficiency reference |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dtype in args.dtypes:
        dt = getattr(torch, dtype)
        for N in args.attn_sizes:
            torch.manual_seed(0)
            q, k, v = (torch.randn(B, H, N, D, dtype=dt, requires_grad=True) for _ in range(3))
            grad = torch.randn(B, H, N, D, dtype=dt)
            fns = {"dense": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)}
            for S in args.segment_lens:
                if N % S == 0 and N // S >= 2:
                    fns[("sdpa", S)] = (lambda S: lambda: ecp_attention(q, k, v, S, backend="sdpa"))(S)
                    if not args.skip_reference:
                        fns[("torch", S)] = (lambda S: lambda: ecp_attention(q, k, v, S, backend="torch"))(S)
            times = {key: [] for key in fns}
            for _ in range(args.attn_repeats):
                for key, fn in fns.items():
                    t0 = time.perf_counter()
                    fn().backward(grad)
                    times[key].append(time.perf_counter() - t0)
                    q.grad = k.grad = v.grad = None
            dense = statistics.median(times["dense"])
            for S in args.segment_lens:
                if ("sdpa", S) not in times:
                    continue
                ratio = visible_pairs_ratio(N, S)
                fast = statistics.median(times[("sdpa", S)])
                ref = times.get(("torch", S))
                ref_cols = (f"{spread(ref, '{:.3f}')} " if ref else "not run ")
                ref_eff = (f"| {dense / statistics.median(ref):.1f}x | {dense / statistics.median(ref) / ratio:.2f} |"
                           if ref else "| | |")
                print(f"| {dtype} | {N} | {S} | {spread(times['dense'], '{:.3f}')} | {spread(times[('sdpa', S)], '{:.3f}')} "
                      f"| {ref_cols}| {ratio:.1f} | {dense / fast:.1f}x | {dense / fast / ratio:.2f} {ref_eff}",
                      flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 1024, 4096, 16384],
                   help="windows N for the model table")
    p.add_argument("--tokens-per-step", type=int, default=16384)
    p.add_argument("--steps", type=int, default=5, help="timed steps per model (interleaved rounds)")
    p.add_argument("--max-segment", type=int, default=256, help="ECP's S = min(this, N / 8) in the model table")
    p.add_argument("--attn-sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    p.add_argument("--segment-lens", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    p.add_argument("--attn-repeats", type=int, default=3)
    p.add_argument("--skip-reference", action="store_true", help="attention table without ECP 'torch'")
    p.add_argument("--skip-models", action="store_true")
    p.add_argument("--skip-attention", action="store_true")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1: the machine is shared, so one thread gives steadier ratios)")
    p.add_argument("--compile", action="store_true", help="torch.compile the three models (part 1)")
    p.add_argument("--quick", action="store_true",
                   help="sizes 128 1024 4096, 8192 tokens/step, 2 rounds; attention N 4096 at S 256, fp32")
    p.add_argument("--model-case", help=argparse.SUPPRESS)   # internal: one (model, N) case as JSON
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.model_case:
        print(json.dumps(run_model_case(**json.loads(args.model_case))))
        return
    if args.quick:
        args.sizes, args.tokens_per_step, args.steps = [128, 1024, 4096], 8192, 3
        args.attn_sizes, args.segment_lens, args.dtypes = [4096], [256], ["float32"]

    print(f"# {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{args.threads} thread(s), CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"# load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# command: python benchmarks/cpu_speed.py {' '.join(sys.argv[1:])}")
    if not args.skip_models:
        models_table(args)
    if not args.skip_attention:
        attention_table(args)
    print(f"\n# load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
