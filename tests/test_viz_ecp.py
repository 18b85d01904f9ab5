"""minecp.viz.ecp: the data helpers compute what they claim; the plots draw (Agg)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import minecp  # noqa: E402
from minecp.viz import ecp as viz_ecp  # noqa: E402
from minecp.masks import ecp_rule, mask_matrix  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def tiny_ecp(n_layers=3, N=24, segments=4, seed=0):
    torch.manual_seed(seed)
    cfg = minecp.ModelConfig(vocab_size=37, seq_len=N, d_model=16, n_heads=2, n_layers=n_layers,
                             num_segments=segments)
    return minecp.build_model("ecp", cfg).eval()


# ------------------------------------------------------------------ receptive field
def test_receptive_field_rule_matches_brute_force():
    N, S = 20, 4
    for layers in range(0, 5):
        rule = viz_ecp.receptive_field_rule(N, S, layers)
        for i in range(N):
            first = max(i // S - layers, 0) * S if layers else i
            expected = [first <= j <= i for j in range(N)]
            assert rule[i].tolist() == expected, (layers, i)
    # one layer = the attention mask itself
    assert torch.equal(viz_ecp.receptive_field_rule(N, S, 1), mask_matrix(ecp_rule(S), N))
    with pytest.raises(ValueError):
        viz_ecp.receptive_field_rule(N, 0, 1)


def test_logit_receptive_field_support_is_the_rule():
    model = tiny_ecp()
    N, S = 24, 6
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 37, (1, N), generator=g)
    targets = torch.randint(0, 37, (N,), generator=g)
    fields = viz_ecp.logit_receptive_field(model, idx, targets)
    assert fields.shape == (3, N, N)
    for ell in (1, 2, 3):
        assert torch.equal(fields[ell - 1] > 0, viz_ecp.receptive_field_rule(N, S, ell)), ell
    assert not model.training


def test_logit_receptive_field_last_layer_is_the_real_gradient():
    model = tiny_ecp(n_layers=2)
    N = 24
    idx = torch.randint(0, 37, (1, N), generator=torch.Generator().manual_seed(2))
    targets = torch.arange(N) % 37
    fields = viz_ecp.logit_receptive_field(model, idx, targets, layers=[2])
    i = 17
    emb = model.embed(idx).detach().requires_grad_()
    logits = model.lm_head(model.ln_final(model.trunk(emb)))
    (g,) = torch.autograd.grad(logits[0, i, targets[i]], emb)
    torch.testing.assert_close(fields[0, i], g[0].abs().sum(-1), rtol=1e-5, atol=1e-7)


def test_logit_receptive_field_checks_arguments():
    model = tiny_ecp()
    idx = torch.zeros(1, 24, dtype=torch.long)
    with pytest.raises(ValueError):
        viz_ecp.logit_receptive_field(model, idx, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError):
        viz_ecp.logit_receptive_field(model, idx, torch.zeros(24, dtype=torch.long), layers=[4])


# ------------------------------------------------------------------------ KV cache
def test_trace_cache_is_bounded_and_matches_generate():
    model = tiny_ecp(n_layers=2, N=16, segments=4)  # S = 4
    S, prompt = 4, [1, 2, 3]
    trace = viz_ecp.trace_cache(model, prompt, 40, temperature=1.0, seed=3)
    out = minecp.generate(model, torch.tensor(prompt), 40, temperature=1.0, seed=3)
    assert out[len(prompt):].tolist() == trace["new_ids"]
    entries, positions = trace["entries"], trace["positions"]
    assert entries.shape == (40, 2) and trace["logits"].shape == (40, 37)
    assert int(entries.max()) <= 2 * S
    expected = positions - (positions // S - 1).clamp(min=0) * S + 1
    assert torch.equal(entries, expected[:, None].expand(-1, 2))
    assert trace["cache_bytes"] == 2 * 2 * 2 * S * 16 * 4  # layers x (K, V) x 2S x d x fp32


# --------------------------------------------------------------------------- tiles
def test_tile_schedule_of_the_docstring_example():
    # N = 24, S = 6, 4 x 4 tiles: the bands tile_bands returns (see ops/ecp_triton.py)
    bands = torch.tensor([[0, 0, 0, 4], [0, 0, 4, 8], [0, 0, 8, 12], [4, 8, 12, 16], [4, 12, 16, 20],
                          [12, 12, 20, 24]])
    s = viz_ecp.tile_schedule(bands, 24, 4)
    M, F = viz_ecp.MASKED, viz_ecp.FULL
    assert s[0].tolist() == [M, 0, 0, 0, 0, 0]
    assert s[1].tolist() == [F, M, 0, 0, 0, 0]
    assert s[3].tolist() == [0, M, F, M, 0, 0]
    assert s[4].tolist() == [0, M, M, F, M, 0]
    # every visible pair lies in a visited tile, full tiles are fully visible
    vis = mask_matrix(ecp_rule(6), 24)
    for a in range(6):
        for b in range(6):
            block = vis[4 * a:4 * a + 4, 4 * b:4 * b + 4]
            if s[a, b] == viz_ecp.SKIPPED:
                assert not block.any()
            if s[a, b] == viz_ecp.FULL:
                assert block.all()


def test_causal_tile_count():
    for N, bm, bn in [(24, 4, 4), (100, 32, 16), (64, 16, 32), (10, 16, 16)]:
        vis = mask_matrix(lambda q, k: k <= q, N)
        brute = sum(bool(vis[a:a + bm, b:b + bn].any()) for a in range(0, N, bm) for b in range(0, N, bn))
        assert viz_ecp.causal_tile_count(N, bm, bn) == brute


# ----------------------------------------------------------------------- benchmarks
ANCHORS = """# Performance anchors

## What a user could pick instead — measured on one GPU, 2026-11-29
Some prose.

| N | S | implementation | fwd ms | fwd+bwd ms | fwd TF/s | fwd+bwd TF/s |
|---|---|---|---|---|---|---|
| 2048 | 256 | dense causal SDPA (flash) | 0.401 | 1.915 | 515 | 377 |
| 2048 | 256 | ECP via FlexAttention (compiled) | 0.420 | 1.602 | 169 | 155 |
| 8192 | 256 | ECP einsum | 3.457 | 8.509 | 22 | 31 |

Later text.

| N | batch | eager tokens/s |
|---|---|---|
| 2048 | 8 | 419 k |
"""


def test_load_anchor_table(tmp_path):
    assert viz_ecp.load_anchor_table(tmp_path / "missing.md") is None
    path = tmp_path / "PERFORMANCE.md"
    path.write_text(ANCHORS, encoding="utf-8")
    table = viz_ecp.load_anchor_table(path)
    assert table["heading"].startswith("What a user could pick instead")
    assert [r["impl"] for r in table["rows"]] == ["dense_causal_sdpa", "ecp_flex", "ecp_einsum"]
    assert table["rows"][0]["fwdbwd_tflops"] == 377.0 and table["rows"][2]["N"] == 8192
    assert table["markdown"].count("\n") == 4  # header, rule, three rows
    assert viz_ecp.load_bench_results(tmp_path / "none.json") is None


# ---------------------------------------------------------------------------- plots
def test_plots_draw():
    model = tiny_ecp()
    idx = torch.randint(0, 37, (1, 24), generator=torch.Generator().manual_seed(0))
    fields = viz_ecp.logit_receptive_field(model, idx, idx[0])
    fig = viz_ecp.plot_receptive_fields(fields, segment_len=6)
    assert len(fig.axes) >= 3
    trace = viz_ecp.trace_cache(model, [1, 2], 30, temperature=0)
    fig = viz_ecp.plot_cache_entries(trace["entries"], 6, prompt_len=2)
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "tokens generated"
    bands = torch.tensor([[0, 0, 0, 4], [0, 0, 4, 8], [0, 0, 8, 12], [4, 8, 12, 16], [4, 12, 16, 20],
                          [12, 12, 20, 24]])
    fig = viz_ecp.plot_tile_schedule(viz_ecp.tile_schedule(bands, 24, 4), 4, 4, mask_matrix(ecp_rule(6), 24),
                                     segment_len=6)
    assert "visited" in fig.axes[0].get_title()
    rows = [{"N": 2048, "S": 256, "impl": "a", "fwdbwd_tflops": 3.0},
            {"N": 2048, "S": 256, "impl": "b", "fwdbwd_tflops": 4.0},
            {"N": 8192, "S": 256, "impl": "a", "fwdbwd_tflops": 5.0}]
    fig = viz_ecp.plot_bench(rows)
    assert sorted(bar.get_height() for bar in fig.axes[0].patches) == [3.0, 4.0, 5.0]  # one bar per row, its TF/s
