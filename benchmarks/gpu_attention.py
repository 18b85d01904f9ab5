"""ECP attention on one GPU: correctness sweep of the Triton kernel, then benchmarks.

One script, sized for one device call (a few minutes on an H200):

(a) correctness: ``minecp.ops.ecp_triton`` in bf16 / fp16 / fp32 on CUDA at larger
    shapes than the CPU tests (D = 32, 64, 128; segments that are and are not a multiple
    of the tile sizes; a transposed input; large logits), checked with the rule of
    docs/testing.md: max|kernel - golden| <= factor * max|ref - golden| + floor, golden
    in float64 with the explicit token mask, ref = the same math in the input dtype.
    Prints one PASS/FAIL line per case and tensor.
(b) benchmarks at B * N = 65,536 tokens, H = 6, D = 128, bf16, for
    (N, S) in (2048, 256), (8192, 256), (8192, 1024), (32768, 512), (32768, 2048):
      dense_causal_sdpa  F.scaled_dot_product_attention(is_causal=True), flash backend
      ecp_flex           FlexAttention, compiled, block mask built once (minecp.ops.ecp_flex)
      ecp_torch          segment-pair tiles + SDPA (minecp.ops.ecp_torch)
      ecp_einsum         scores [B, H, s, S, 2S] materialised (the authors' way)
      ecp_triton         the fused kernel (minecp.ops.ecp_triton)
    fwd ms, fwd+bwd ms (median of CUDA-event-timed calls after warm-ups), useful TFLOP/s
    (visible pairs only: 4 * D flops per pair forward, 3.5 x that forward+backward; the
    dense baseline counts its own causal pairs), peak memory of the fwd+bwd call.
(c) optional (--tune): a few block-size configurations of the Triton kernel at one
    shape, forward and backward timed separately, to pick the per-head-dim table.

Also (no GPU needed): --compile-only compiles every Triton kernel for sm_90a with
Triton's own compiler and ptxas and prints shared memory, registers and spills;
--dry-run runs (a) and (b) at tiny shapes on the CPU under TRITON_INTERPRET=1.

Usage:
    python benchmarks/gpu_attention.py --out $OUT/gpu_attention.json --tune
    python benchmarks/gpu_attention.py --dry-run
    python benchmarks/gpu_attention.py --compile-only

Conventions: those of the published anchor table in docs/performance.md (measured with a
stand-alone script outside this repository), so rows compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCH_CASES = [(2048, 256), (8192, 256), (8192, 1024), (32768, 512), (32768, 2048)]
TOKENS = 65536
IMPLS = ("dense_causal_sdpa", "ecp_flex", "ecp_torch", "ecp_einsum", "ecp_triton")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None,
                   help="JSON results path (default: $OUT/gpu_attention.json, else ./gpu_attention.json)")
    p.add_argument("--dry-run", action="store_true",
                   help="tiny shapes on the CPU under TRITON_INTERPRET=1 (checks the code paths)")
    p.add_argument("--compile-only", action="store_true",
                   help="compile the Triton kernels for sm_90a (no GPU needed), report smem/regs/spills")
    p.add_argument("--skip-check", action="store_true", help="skip the correctness sweep")
    p.add_argument("--skip-bench", action="store_true", help="skip the benchmarks")
    p.add_argument("--tune", action="store_true", help="also time a few Triton block-size configs")
    p.add_argument("--cases", default=None,
                   help="benchmark shapes as N:S,N:S,... (default: the five of docs/performance.md)")
    p.add_argument("--impls", default=",".join(IMPLS), help=f"comma list from {','.join(IMPLS)}")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default 3)")
    p.add_argument("--reps", type=int, default=10, help="timed calls, median reported (default 10)")
    p.add_argument("--budget-s", type=float, default=450.0,
                   help="wall-clock budget: later stages are skipped once exceeded (default 450)")
    args = p.parse_args(argv)
    for name in args.impls.split(","):
        if name not in IMPLS:
            p.error(f"--impls: unknown implementation {name!r}; choose from {', '.join(IMPLS)}")
    if args.cases:
        try:
            args.cases = [tuple(int(x) for x in c.split(":")) for c in args.cases.split(",")]
            assert all(len(c) == 2 and c[0] % c[1] == 0 for c in args.cases)
        except (ValueError, AssertionError):
            p.error("--cases must look like 2048:256,8192:1024 with N a multiple of S")
    if args.dry_run and args.compile_only:
        p.error("--dry-run and --compile-only are exclusive")
    return args


ARGS = parse_args() if __name__ == "__main__" else None

# Triton picks interpreter or GPU compiler when a kernel is *defined*: set the variable
# before anything imports minecp.ops.ecp_triton.
if ARGS is not None and ARGS.dry_run:
    os.environ["TRITON_INTERPRET"] = "1"
if ARGS is not None and ARGS.compile_only:
    os.environ.pop("TRITON_INTERPRET", None)

sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T0 = time.time()


def elapsed() -> float:
    return time.time() - T0


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f}s] {msg}", flush=True)


# ----------------------------------------------------------------------- references
def ecp_mask(N: int, S: int, device) -> torch.Tensor:
    from minecp.masks import ecp_rule, mask_matrix

    return mask_matrix(ecp_rule(S), N, device=device)


def masked_attention(q, k, v, S, scale):
    """Dense attention with the explicit token mask, in the inputs' dtype (golden / ref)."""
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~ecp_mask(q.shape[-2], S, q.device), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def ecp_einsum(q, k, v, S):
    """Materialised scores [B, H, s, S, 2S] per (own segment, previous ++ own) pair."""
    B, H, N, D = q.shape
    s = N // S
    qs, ks, vs = (t.reshape(B, H, s, S, D) for t in (q, k, v))
    k_prev = torch.cat([torch.zeros_like(ks[:, :, :1]), ks[:, :, :-1]], 2)
    v_prev = torch.cat([torch.zeros_like(vs[:, :, :1]), vs[:, :, :-1]], 2)
    kk = torch.cat([k_prev, ks], 3)
    vv = torch.cat([v_prev, vs], 3)
    scores = torch.einsum("bhgqd,bhgkd->bhgqk", qs, kk) * D ** -0.5
    a = torch.arange(S, device=q.device)[:, None]
    j = torch.arange(2 * S, device=q.device)[None, :]
    mask = (j - S <= a).expand(s, S, 2 * S).clone()
    mask[0, :, :S] = False  # segment 0 has no previous segment
    scores = scores.masked_fill(~mask, float("-inf"))
    p = scores.float().softmax(-1).to(q.dtype)
    return torch.einsum("bhgqk,bhgkd->bhgqd", p, vv).reshape(B, H, N, D)


def visible_pairs(N: int, S: int) -> float:
    """ECP's visible (query, key) pairs per (batch, head): :func:`minecp.flops.ecp_pairs`."""
    from minecp.flops import ecp_pairs

    return float(ecp_pairs(N, S))


# ---------------------------------------------------------------------- correctness
def check_case(name, q, k, v, S, dtype, results, scale=None, do=None):
    """Kernel vs ref vs golden for output and gradients; appends PASS/FAIL rows."""
    from minecp.ops.ecp_triton import ecp_attention_triton

    D = q.shape[-1]
    sc = D ** -0.5 if scale is None else scale
    if do is None:
        do = torch.randn(q.shape, device=q.device)

    def run(fn, dt):
        leaves = [t.detach().to(dt).requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        grads = torch.autograd.grad(out, leaves, do.to(dt))
        return [out.detach()] + [g.detach() for g in grads]

    try:
        got = run(lambda a, b, c: ecp_attention_triton(a, b, c, S, scale=scale), dtype)
        ref = run(lambda a, b, c: masked_attention(a, b, c, S, sc), dtype)
        gold = run(lambda a, b, c: masked_attention(a, b, c, S, sc), torch.float64)
    except Exception as e:  # noqa: BLE001 - report and continue
        print(f"FAIL {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)
        results.append({"case": name, "tensor": "*", "ok": False, "error": f"{type(e).__name__}: {e}"[:300]})
        return
    for tname, factor, a, b, c in zip(("out", "dq", "dk", "dv"), (2, 3, 3, 3), got, ref, gold):
        finite = bool(torch.isfinite(a).all())
        err = (a.double() - c).abs().max().item()
        ref_err = (b.double() - c).abs().max().item()
        floor = 4 * torch.finfo(dtype).eps * max(1.0, c.abs().max().item())
        bound = factor * ref_err + floor
        ok = finite and err <= bound
        print(f"{'PASS' if ok else 'FAIL'} {name:44s} {tname:3s} err {err:.3e}  ref_err {ref_err:.3e}"
              f"  bound {bound:.3e}{'' if finite else '  NON-FINITE'}", flush=True)
        results.append({"case": name, "tensor": tname, "ok": ok, "err": err, "ref_err": ref_err,
                        "bound": bound, "finite": finite})


def correctness_sweep(device, dry_run):
    results = []
    g = torch.Generator(device="cpu").manual_seed(0)

    def rnd(*shape, std=1.0):
        return (std * torch.randn(*shape, generator=g)).to(device)

    if dry_run:
        dtypes = {torch.float32: (32,), torch.float16: (32,), torch.bfloat16: (32,)}
        shapes = [(1, 2, 96, 48)]
    else:
        dtypes = {torch.bfloat16: (32, 64, 128), torch.float16: (64, 128), torch.float32: (64, 128)}
        # (B, H, N, S): tile-aligned, and S = 100 / 48 which no tile size divides.
        shapes = [(2, 3, 1024, 256), (1, 4, 500, 100), (3, 2, 240, 48)]
    for dtype, dims in dtypes.items():
        for D in dims:
            for B, H, N, S in shapes:
                q, k, v = (rnd(B, H, N, D) for _ in range(3))
                check_case(f"{str(dtype)[6:]} D={D} B={B} H={H} N={N} S={S}", q, k, v, S, dtype, results)
        log(f"checked {dtype}")
    # Transposed (non-contiguous) inputs, large logits with near ties, a custom scale.
    D = 32 if dry_run else 128
    B, H, N, S = (1, 2, 96, 48) if dry_run else (2, 3, 768, 256)
    q, k, v = (rnd(B, N, H, D).transpose(1, 2) for _ in range(3))
    for dtype in (torch.bfloat16, torch.float32):
        check_case(f"{str(dtype)[6:]} D={D} transposed view", q, k, v, S, dtype, results)
        ql, kl, vl = (rnd(B, H, N, D, std=4.0) for _ in range(3))
        kl[..., 5, :] = kl[..., 6, :]  # exact ties
        check_case(f"{str(dtype)[6:]} D={D} large logits", ql, kl, vl, S, dtype, results)
        check_case(f"{str(dtype)[6:]} D={D} scale=0.3", q, k, v, S, dtype, results, scale=0.3)
    n_fail = sum(not r["ok"] for r in results)
    log(f"correctness: {len(results) - n_fail} PASS, {n_fail} FAIL")
    return results


# ---------------------------------------------------------------------- benchmarking
class Timer:
    def __init__(self, device, warmup, reps):
        self.cuda = device.type == "cuda"
        self.warmup, self.reps = warmup, reps

    def __call__(self, fn) -> float:
        """Median milliseconds of fn() over reps calls after warmup calls."""
        for _ in range(self.warmup):
            fn()
        times = []
        if self.cuda:
            torch.cuda.synchronize()
            for _ in range(self.reps):
                a = torch.cuda.Event(enable_timing=True)
                b = torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b))
        else:
            for _ in range(self.reps):
                t = time.perf_counter()
                fn()
                times.append(1000 * (time.perf_counter() - t))
        return statistics.median(times)


def make_impls(names, S, device):
    impls = {}
    if "dense_causal_sdpa" in names:
        def dense(q, k, v):
            if device.type == "cuda":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        impls["dense_causal_sdpa"] = dense
    if "ecp_flex" in names:
        from minecp.ops.ecp_flex import ecp_attention_flex

        impls["ecp_flex"] = lambda q, k, v: ecp_attention_flex(q, k, v, S)
    if "ecp_torch" in names:
        from minecp.ops.ecp_torch import ecp_attention_torch

        impls["ecp_torch"] = lambda q, k, v: ecp_attention_torch(q, k, v, S)
    if "ecp_einsum" in names:
        impls["ecp_einsum"] = lambda q, k, v: ecp_einsum(q, k, v, S)
    if "ecp_triton" in names:
        from minecp.ops.ecp_triton import ecp_attention_triton

        impls["ecp_triton"] = lambda q, k, v: ecp_attention_triton(q, k, v, S)
    return impls


def benchmark(device, dtype, cases, tokens, H, D, names, timer, budget_s):
    rows = []
    for N, S in cases:
        if elapsed() > budget_s:
            log(f"budget of {budget_s:.0f}s spent: skipping N={N} S={S}")
            continue
        B = max(1, tokens // N)
        g = torch.Generator(device="cpu").manual_seed(0)
        q, k, v = (torch.randn(B, H, N, D, generator=g).to(device, dtype).requires_grad_()
                   for _ in range(3))
        do = torch.randn(B, H, N, D, generator=g).to(device, dtype)
        pairs = visible_pairs(N, S) * B * H
        dense_pairs = N * (N + 1) / 2 * B * H
        for name, fn in make_impls(names, S, device).items():
            npairs = dense_pairs if name == "dense_causal_sdpa" else pairs
            row = {"N": N, "S": S, "B": B, "H": H, "D": D, "dtype": str(dtype)[6:], "impl": name}
            try:
                # Forward with requires_grad inputs, as in the anchor script: one compiled
                # graph serves both timings (FlexAttention recompiles per grad mode).
                f_ms = timer(lambda: fn(q, k, v))
                row.update(fwd_ms=f_ms, fwd_tflops=4 * D * npairs / f_ms / 1e9)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()

                def fwd_bwd():
                    out = fn(q, k, v)
                    torch.autograd.grad(out, (q, k, v), do)

                fb_ms = timer(fwd_bwd)
                row.update(fwdbwd_ms=fb_ms, fwdbwd_tflops=3.5 * 4 * D * npairs / fb_ms / 1e9)
                if device.type == "cuda":
                    row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 1e9
            except Exception as e:  # noqa: BLE001 - OOM, missing backward, compile failure ...
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
            rows.append(row)
            print(json.dumps(row), flush=True)
        del q, k, v, do
    return rows


def markdown_table(rows) -> str:
    lines = ["| N | S | B | implementation | fwd ms | fwd+bwd ms | fwd TF/s | fwd+bwd TF/s | peak GB |",
             "|---|---|---|---|---|---|---|---|---|"]

    def f(r, key, fmt):
        return format(r[key], fmt) if key in r else "-"

    for r in rows:
        if "error" in r and "fwd_ms" not in r:
            lines.append(f"| {r['N']} | {r['S']} | {r['B']} | {r['impl']} | error: {r['error'][:60]} |"
                         " | | | |")
            continue
        note = f" (bwd: {r['error'][:40]})" if "error" in r else ""
        lines.append(f"| {r['N']} | {r['S']} | {r['B']} | {r['impl']}{note} | {f(r, 'fwd_ms', '.3f')} | "
                     f"{f(r, 'fwdbwd_ms', '.3f')} | {f(r, 'fwd_tflops', '.0f')} | "
                     f"{f(r, 'fwdbwd_tflops', '.0f')} | {f(r, 'peak_mem_gb', '.2f')} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- tuning
def tune(device, timer, budget_s, N=8192, S=256, H=6, D=128, dtype=None, tokens=TOKENS,
         fwd_variants=None, bwd_variants=None):
    """Time a few block-size configurations (forward alone; forward+backward)."""
    import dataclasses

    from minecp.ops import ecp_triton as et

    dtype = dtype or torch.bfloat16
    base = et.default_config(D, dtype)
    fwd_variants = fwd_variants or [(128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 3),
                    (128, 32, 4, 4), (128, 64, 8, 4)]
    bwd_variants = bwd_variants or [  # (dkdv m, n, warps, stages, dq m, n, warps, stages)
        (32, 128, 8, 3, 128, 32, 8, 3), (32, 64, 4, 3, 128, 32, 8, 3), (64, 64, 8, 3, 64, 64, 4, 3),
        (32, 128, 8, 2, 128, 32, 8, 2), (64, 128, 8, 2, 128, 64, 8, 2), (16, 128, 4, 3, 128, 16, 4, 3)]
    B = max(1, tokens // N)
    g = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = (torch.randn(B, H, N, D, generator=g).to(device, dtype).requires_grad_() for _ in range(3))
    do = torch.randn(B, H, N, D, generator=g).to(device, dtype)
    flops = 4 * D * visible_pairs(N, S) * B * H
    rows = []
    for kind, variants in (("fwd", fwd_variants), ("fwd+bwd", bwd_variants)):
        for var in variants:
            if elapsed() > budget_s:
                log("budget spent: stopping the tuning sweep")
                return rows
            if kind == "fwd":
                cfg = dataclasses.replace(base, fwd_block_m=var[0], fwd_block_n=var[1],
                                          fwd_warps=var[2], fwd_stages=var[3])
            else:
                cfg = dataclasses.replace(base, dkdv_block_m=var[0], dkdv_block_n=var[1], dkdv_warps=var[2],
                                          dkdv_stages=var[3], dq_block_m=var[4], dq_block_n=var[5],
                                          dq_warps=var[6], dq_stages=var[7])
            row = {"kind": kind, "N": N, "S": S, "B": B, "D": D, "config": dataclasses.asdict(cfg)}
            try:
                if kind == "fwd":
                    ms = timer(lambda: et.ecp_attention_triton(q, k, v, S, config=cfg))
                    row.update(ms=ms, tflops=flops / ms / 1e9)
                else:
                    def fb():
                        out = et.ecp_attention_triton(q, k, v, S, config=cfg)
                        torch.autograd.grad(out, (q, k, v), do)
                    ms = timer(fb)
                    row.update(ms=ms, tflops=3.5 * flops / ms / 1e9)
            except Exception as e:  # noqa: BLE001 - e.g. out of shared memory
                row["error"] = f"{type(e).__name__}: {str(e)[:150]}"
            rows.append(row)
            print(f"tune {kind:8s} {var}  " + (f"{row['ms']:.3f} ms  {row['tflops']:.0f} TF/s"
                                                if "ms" in row else row["error"]), flush=True)
    return rows


# ---------------------------------------------------------------------- compile only
def compile_only():
    """Compile each kernel for sm_90a on this machine (no GPU) and print resources.

    Launch arguments are captured by swapping each kernel for a recorder while the
    real host code runs on empty CPU tensors; then ``triton.compile`` is called with
    the same specialisation a launch would use (ints equal to 1 become constants,
    pointers and multiples of 16 get the divisibility hint).
    """
    import re
    import subprocess
    import tempfile

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from minecp.ops import ecp_triton as et

    names = ["_ecp_fwd_kernel", "_bwd_delta_kernel", "_ecp_bwd_dkdv_kernel", "_ecp_bwd_dq_kernel"]
    ty = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

    class Recorder:
        def __init__(self):
            self.calls = []

        def __getitem__(self, grid):
            return lambda *a, **kw: self.calls.append((a, kw))

    def compile_call(fn, args, kw):
        sig, consts, attrs = {}, {}, {}
        for i, name in enumerate(fn.arg_names):
            val = args[i] if i < len(args) else kw[name]
            if fn.params[i].is_constexpr:
                sig[name], consts[name] = "constexpr", val
            elif isinstance(val, torch.Tensor):
                sig[name], attrs[(i,)] = "*" + ty[val.dtype], [["tt.divisibility", 16]]
            elif isinstance(val, float):
                sig[name] = "fp32"
            elif val == 1:
                sig[name], consts[name] = "constexpr", 1
            else:
                sig[name] = "i32"
                if val % 16 == 0:
                    attrs[(i,)] = [["tt.divisibility", 16]]
        opts = {k: kw[k] for k in ("num_warps", "num_stages") if k in kw}
        return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs),
                              target=GPUTarget("cuda", 90, 32), options=opts)

    def ptxas_report(ptx):
        import triton.backends.nvidia as nv

        bindir = os.path.join(os.path.dirname(nv.__file__), "bin")
        for exe in ("ptxas-blackwell", "ptxas"):
            path = os.path.join(bindir, exe)
            if not os.path.exists(path):
                continue
            with tempfile.TemporaryDirectory() as d:
                src = os.path.join(d, "k.ptx")
                with open(src, "w") as fh:
                    fh.write(ptx)
                r = subprocess.run([path, "-arch=sm_90a", "-v", src, "-o", os.path.join(d, "k.o")],
                                   capture_output=True, text=True)
            regs = re.search(r"Used (\d+) registers", r.stderr)
            spill = re.search(r"(\d+) bytes spill stores", r.stderr)
            if regs:
                return int(regs.group(1)), int(spill.group(1)) if spill else 0
        return None, None

    print(f"triton {triton.__version__}, torch {torch.__version__}; target sm_90a (H100/H200)")
    print("| dtype | D | kernel | blocks | warps/stages | smem KB | regs | spill B |")
    print("|---|---|---|---|---|---|---|---|")
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        for D in et.SUPPORTED_HEAD_DIMS:
            cfg = et.default_config(D, dtype, interpret=False)
            recs = {n: Recorder() for n in names}
            orig = {n: getattr(et, n) for n in names}
            try:
                for n in names:
                    setattr(et, n, recs[n])
                q = k = v = torch.empty(2, 6, 2048, D, dtype=dtype)
                o, stats = et._ecp_forward(q, k, v, 256, D ** -0.5, cfg, "ieee")
                et._ecp_backward(torch.empty_like(o), q, k, v, o, stats, 256, D ** -0.5, cfg, "ieee")
            finally:
                for n in names:
                    setattr(et, n, orig[n])
            for n in names:
                args, kw = recs[n].calls[0]
                t = time.time()
                try:
                    ck = compile_call(orig[n], args, kw)
                    regs, spill = ptxas_report(ck.asm["ptx"])
                    blocks = f"{kw.get('BLOCK_M')}x{kw.get('BLOCK_N', '-')}"
                    print(f"| {ty[dtype]} | {D} | {n} | {blocks} | {kw.get('num_warps', 4)}/"
                          f"{kw.get('num_stages', '-')} | {ck.metadata.shared / 1024:.0f} | {regs} | {spill} |"
                          f"  ({time.time() - t:.1f}s)", flush=True)
                except Exception as e:  # noqa: BLE001
                    print(f"| {ty[dtype]} | {D} | {n} | COMPILE ERROR {type(e).__name__}: {str(e)[:200]} |")


# ----------------------------------------------------------------------------- main
def main(args):
    if args.compile_only:
        compile_only()
        return 0
    import triton

    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: use --dry-run (CPU interpreter) or --compile-only", file=sys.stderr)
        return 2
    out_path = args.out or os.path.join(os.environ.get("OUT", "."), "gpu_attention.json")
    res = {"torch": torch.__version__, "triton": triton.__version__,
           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (TRITON_INTERPRET=1)",
           "dry_run": args.dry_run, "argv": sys.argv[1:]}
    print(f"torch {res['torch']}  triton {res['triton']}  device {res['gpu']}", flush=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 references stay fp32
    timer = Timer(device, args.warmup, args.reps)
    n_fail = 0
    if not args.skip_check:
        try:
            res["correctness"] = correctness_sweep(device, args.dry_run)
            n_fail = sum(not r["ok"] for r in res["correctness"])
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            res["correctness_error"] = traceback.format_exc()[-2000:]
            n_fail = 1
    if not args.skip_bench:
        if args.dry_run:
            cases = args.cases or [(64, 16), (128, 32)]
            tokens, H, D, dtype = 256, 2, 32, torch.float32
        else:
            cases = args.cases or BENCH_CASES
            tokens, H, D, dtype = TOKENS, 6, 128, torch.bfloat16
        rows = benchmark(device, dtype, cases, tokens, H, D, args.impls.split(","), timer, args.budget_s)
        res["bench"] = rows
        print("\n" + markdown_table(rows) + "\n", flush=True)
    if args.tune:
        if args.dry_run:  # one small variant each: exercises the code path only
            res["tune"] = tune(device, timer, args.budget_s, N=64, S=16, H=1, D=32, dtype=torch.float32,
                               tokens=64, fwd_variants=[(32, 32, 4, 1)],
                               bwd_variants=[(16, 32, 4, 1, 32, 16, 4, 1)])
        else:
            res["tune"] = tune(device, timer, args.budget_s)
    res["wall_s"] = elapsed()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(res, fh, indent=1)
    log(f"wrote {out_path}; correctness failures: {n_fail}")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
