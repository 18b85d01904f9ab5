"""Decoding speed and memory: dense (re-run the window) vs dense (KV cache) vs ECP (bounded cache).

Each configuration greedily decodes ``factor * N`` tokens (default 4 N) after a short
prompt, through the same decoders that :func:`minecp.generate` uses
(:mod:`minecp.generation`), and reports

* tokens/s over the whole run and ms/token in chunks of N tokens — ECP's per-token time
  should stay flat however long the text gets (its cache never holds more than 2S
  positions per layer);
* memory. On a GPU: ``torch.cuda.max_memory_allocated`` during decoding (everything
  the caching allocator handed out: weights, cache, activations). On a CPU there is no
  allocator statistic, so we report what we *can* measure, and say what it is:
    - ``kv_cache``: bytes allocated by the decoder's key/value buffers (exact);
    - ``rss_before``: resident set size (Linux /proc/self/statm) just before decoding;
      it includes the interpreter, torch's libraries and the weights;
    - ``rss_max``: the largest resident set size seen while decoding, sampled after
      every token, so ``rss_max - rss_before`` is what decoding added (to within a
      page; allocations freed between two samples are missed). Every configuration
      runs in its own subprocess, so earlier configurations cannot inflate it;
    - ``py_heap_peak``: ``tracemalloc`` peak during decoding. Torch allocates tensor
      memory in C++, which tracemalloc does NOT see: this is Python-object overhead only.

Usage (defaults are a modest CPU size that finishes in a minute or two):

    python benchmarks/generation.py
    python benchmarks/generation.py --seq-len 2048 --segments 8 --d-model 768 --n-layers 12 \
        --n-heads 6 --vocab 28996      # the paper's shape, for a GPU

Source: arXiv 2412.06106; docs/architectures.md §6 (ECP inference needs only the previous and the
current segment per layer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import tracemalloc

CONFIGS = {
    # name: (model, use_cache)
    "dense-recompute": ("dense", False),
    "dense-kv-cache": ("dense", True),
    "ecp-bounded-cache": ("ecp", True),
}


def _rss_bytes() -> int:
    """Current resident set size (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def run_one(args) -> dict:
    """Decode in this process and return the measurements (a JSON-able dict)."""
    import torch

    import minecp
    from minecp.generation import make_decoder

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model_name, use_cache = CONFIGS[args.worker]
    cfg = minecp.ModelConfig(vocab_size=args.vocab, seq_len=args.seq_len, d_model=args.d_model,
                             n_heads=args.n_heads, n_layers=args.n_layers, num_segments=args.segments)
    torch.manual_seed(0)
    model = minecp.build_model(model_name, cfg).to(device).eval()
    if args.dtype != "float32":
        model = model.to(getattr(torch, args.dtype))
    N, S = cfg.seq_len, cfg.segment_len
    n_new = args.factor * N
    prompt = torch.randint(0, cfg.vocab_size, (args.prompt_len,),
                           generator=torch.Generator().manual_seed(1)).tolist()
    decoder = make_decoder(model, use_cache=use_cache)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    # warm-up (allocator, kernels, first-call overheads); not timed
    logits = decoder.prefill(prompt)
    for _ in range(min(8, n_new)):
        logits = decoder.step(int(logits.argmax()))
    sync()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _rss_bytes()
    tracemalloc.start()
    times = []
    max_entries = 0
    rss_max = rss_before
    t_start = time.perf_counter()
    logits = decoder.prefill(prompt)
    sync()
    t_prefill = time.perf_counter() - t_start
    for _ in range(n_new):
        t0 = time.perf_counter()
        token = int(logits.argmax())          # greedy; .item() waits for the device
        logits = decoder.step(token)
        sync()
        times.append(time.perf_counter() - t0)
        rss_max = max(rss_max, _rss_bytes())
        entries = decoder.cache_entries()
        max_entries = max(max_entries, max(entries) if entries else 0)
    total = time.perf_counter() - t_start
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    chunks = [1000 * sum(times[i:i + N]) / len(times[i:i + N]) for i in range(0, n_new, N)]
    result = dict(config=args.worker, tokens=n_new, seconds=total, prefill_s=t_prefill,
                  tokens_per_s=n_new / total, chunk_ms_per_token=chunks,
                  kv_cache_bytes=decoder.cache_bytes(), max_cache_entries=max_entries,
                  rss_before=rss_before, rss_max=rss_max, py_heap_peak=py_peak,
                  device=str(device), threads=torch.get_num_threads(), torch=torch.__version__,
                  params=sum(p.numel() for p in model.parameters()))
    if device.type == "cuda":
        result["cuda_peak"] = torch.cuda.max_memory_allocated(device)
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def mib(x) -> str:
    return f"{x / 2**20:.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq-len", type=int, default=256, help="N (default 256)")
    p.add_argument("--segments", type=int, default=8, help="ECP segments s; S = N / s (default 8)")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--factor", type=int, default=4, help="decode factor * N tokens (default 4)")
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma-separated subset of " + ", ".join(CONFIGS))
    p.add_argument("--repeat", type=int, default=1, help="runs per config; the fastest is shown")
    p.add_argument("--json", default=None, help="also write the raw results to this file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:                              # child process: measure one configuration
        print(json.dumps(run_one(args)))
        return 0

    results = []
    load_before = os.getloadavg()[0]         # other processes on the machine skew CPU timings
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise SystemExit(f"unknown config {name!r}; choose from {', '.join(CONFIGS)}")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name] + [
            a for a in (argv if argv is not None else sys.argv[1:])]
        cmd += ["--device", args.device]
        # On a shared machine other processes slow some runs down: keep the fastest of
        # --repeat runs (each in a fresh process).
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
        results.append(max(runs, key=lambda r: r["tokens_per_s"]))
        results[-1]["all_tokens_per_s"] = [r["tokens_per_s"] for r in runs]
        print(f"  done: {name} ({results[-1]['seconds']:.1f} s)", file=sys.stderr)

    N, S = args.seq_len, args.seq_len // args.segments
    r0 = results[0]
    print(f"# Decoding {args.factor}*N = {args.factor * N} tokens, greedy, batch 1"
          + (f" (fastest of {args.repeat} runs per config)" if args.repeat > 1 else ""))
    print(f"N={N}, S={S}, d={args.d_model}, L={args.n_layers}, H={args.n_heads}, V={args.vocab}, "
          f"{args.dtype}, {r0['params'] / 1e6:.2f} M params; device {r0.get('gpu', r0['device'])}, "
          f"torch {r0['torch']}, {r0['threads']} threads, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} logical CPUs; "
          f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print()
    cuda = "cuda_peak" in r0
    mem_cols = ("| peak alloc (MiB) " if cuda else
                "| RSS before (MiB) | RSS max while decoding (MiB) | tracemalloc peak (MiB) ")
    print("| config | tokens/s | ms/token | KV cache (MiB) | max cache entries/layer " + mem_cols + "|")
    print("|---" * (5 + (1 if cuda else 3)) + "|")
    for r in results:
        mem = (f"| {mib(r['cuda_peak'])} " if cuda else
               f"| {mib(r['rss_before'])} | {mib(r['rss_max'])} | {mib(r['py_heap_peak'])} ")
        print(f"| {r['config']} | {r['tokens_per_s']:.1f} | {1000 / r['tokens_per_s']:.2f} "
              f"| {mib(r['kv_cache_bytes'])} | {r['max_cache_entries']} " + mem + "|")
    print()
    n_chunks = len(r0["chunk_ms_per_token"])
    print("ms/token for each chunk of N generated tokens (flat = cost independent of length):")
    print()
    print("| config | " + " | ".join(f"tokens {i * N}-{(i + 1) * N}" for i in range(n_chunks)) + " |")
    print("|---" * (n_chunks + 1) + "|")
    for r in results:
        print(f"| {r['config']} | " + " | ".join(f"{c:.2f}" for c in r["chunk_ms_per_token"]) + " |")
    if args.repeat > 1:
        print()
        print("tokens/s of every run: " + "; ".join(
            f"{r['config']}: " + ", ".join(f"{x:.1f}" for x in r["all_tokens_per_s"]) for r in results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
