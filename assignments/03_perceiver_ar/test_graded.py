"""Graded tests of assignment 03: PerceiverAR's cross-attention layer and its loss positions.

Oracle: minecp itself. The mask is compared with ``minecp.masks.enhanced_rule`` (PerceiverAR's
cross-attention is that rule restricted to the latent queries) and with a built model's
``cross_mask``; the layer with ``minecp.blocks.Block`` and, plugged in as ``model.blocks[0]``,
with a whole ``minecp.models.PerceiverAR`` loaded from the same state_dict; the loss with
``minecp.models.lm_loss``. Tolerance (docs/testing.md): float32 error at most 2 x the error of
minecp's own float32 forward against its float64 forward, plus a rounding floor.
"""

import copy

import torch

import minecp
from assignments.kit import GradingFailure, compare_masks, compare_tensors, graded
from minecp.attention import masked_attend
from minecp.masks import enhanced_rule, mask_matrix
from minecp.models import PerceiverAR, lm_loss

CFG = minecp.ModelConfig(vocab_size=40, seq_len=24, latent_len=8, d_model=32, n_heads=4, n_layers=2)
# A second shape, so that nothing about the first can be hard-coded: C = 7 (the other fields,
# num_segments and context_segments, are only there because one config serves all six models).
CFG_B = minecp.ModelConfig(vocab_size=30, seq_len=20, latent_len=13, d_model=24, n_heads=2, n_layers=3,
                           mlp_ratio=2, num_segments=4, context_segments=1)


# -- helpers -------------------------------------------------------------------------------------
def _expected_mask(C: int, N: int) -> torch.Tensor:
    return mask_matrix(enhanced_rule(C), torch.arange(C, N), torch.arange(N))


def _reference_model(cfg, seed: int) -> PerceiverAR:
    """A seeded minecp PerceiverAR in eval mode, its weights drawn wider than at initialisation
    (std 0.2, LayerNorm gains 1 +- 0.2) so that every term of the layer visibly matters."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PerceiverAR(cfg)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.startswith("embed"):
                    p.normal_(0.0, 1.0)
                elif p.dim() == 1 and name.endswith("weight"):   # LayerNorm gains
                    p.copy_(1 + 0.2 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.2)
    return model.eval()


def _student_layer(sub, cfg):
    try:
        return sub.LatentCrossAttention(cfg.d_model, cfg.n_heads, cfg.mlp_ratio)
    except GradingFailure:
        raise
    except Exception as err:   # noqa: BLE001 - the message names what went wrong
        raise GradingFailure(f"LatentCrossAttention({cfg.d_model}, {cfg.n_heads}, {cfg.mlp_ratio}) "
                             f"raised {type(err).__name__}: {err}") from err


def _load(module, state_dict, what):
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        raise GradingFailure(f"{what}: minecp's weights do not fit your layer's parameters "
                             f"(keep the names and shapes of minecp.blocks.Block): {err}") from err


def _plugged_model(sub, cfg, reference):
    """A fresh PerceiverAR whose first block is the student's layer, loaded from `reference`."""
    model = PerceiverAR(cfg)
    model.blocks[0] = _student_layer(sub, cfg)     # nn.ModuleList item assignment swaps the layer
    _load(model, reference.state_dict(), "model.load_state_dict(reference.state_dict())")
    return model.eval()


def _close_to_golden(yours, golden, reference, what):
    """docs/testing.md: |yours - golden| <= 2 |reference - golden| + a rounding floor."""
    if not isinstance(yours, torch.Tensor):
        raise GradingFailure(f"{what}: expected a torch.Tensor, got {type(yours).__name__}"
                             + (" (did forward forget to `return`?)" if yours is None else ""))
    if yours.dtype != reference.dtype:
        raise GradingFailure(f"{what}: dtype {yours.dtype} (yours) vs {reference.dtype} (minecp's)")
    ref_err = (reference.double() - golden).abs().max()
    floor = 8 * torch.finfo(reference.dtype).eps * golden.abs().max().clamp_min(1.0)
    compare_tensors(yours, golden, what=what, atol=float(2 * ref_err + floor), rtol=0.0, check_dtype=False)


def _diagnose_layer(sub, cfg, block, x, rope, attend, C):
    """Which part of the layer differs: switch off the attention and/or MLP outputs (zero
    attn.out / mlp.down in both layers) and compare again. Returns a hint for the student."""
    def run(module, zero):
        module = copy.deepcopy(module)
        with torch.no_grad():
            for name in zero:
                module.get_submodule(name).weight.zero_()
            return module(x, rope, attend, query_start=C)

    layer = _student_layer(sub, cfg)
    _load(layer, block.state_dict(), "layer.load_state_dict(minecp_block.state_dict())")
    layer.eval()
    stages = [(("attn.out", "mlp.down"), "with attn.out and mlp.down set to 0 your layer should return "
               "x[:, C:] unchanged (the residual carries the latents' own inputs, not h = ln_attn(x)); "
               "it does not"),
              (("mlp.down",), "with mlp.down set to 0 (no MLP) your layer differs: look at the attention "
               "part (queries from h[:, C:] only, keys and values from all of h, RoPE at positions "
               "C..N-1 for the queries and 0..N-1 for the keys, the mask, the 1/sqrt(D) scale, heads)"),
              ((), "the residual and the attention part agree, so look at the MLP part: "
               "y + mlp.down(gelu(mlp.up(ln_mlp(y))))")]
    for zero, hint in stages:
        try:
            close = torch.allclose(run(layer, zero), run(block, zero), atol=1e-4, rtol=1e-4)
        except Exception as err:   # noqa: BLE001 - a crash is a hint too
            return f"(while diagnosing: {type(err).__name__}: {err})"
        if not close:
            return "hint: " + hint
    return ""


# -- task 1: cross-attention mask ----------------------------------------------------------------
@graded("cross-attention mask", points=1)
def test_mask_small_window(sub):
    compare_masks(sub.latent_cross_mask(3, 8), _expected_mask(3, 8),
                  what="latent_cross_mask(3, 8): 5 latents (positions 3..7) x 8 keys")


@graded("cross-attention mask", points=2)
def test_mask_matches_minecp(sub):
    for C, N in [(1, 2), (1, 9), (5, 6), (7, 20)]:
        compare_masks(sub.latent_cross_mask(C, N), _expected_mask(C, N), what=f"latent_cross_mask({C}, {N})")
    model = PerceiverAR(CFG)
    C = CFG.seq_len - CFG.latent_len
    compare_masks(sub.latent_cross_mask(C, CFG.seq_len), model.cross_mask,
                  what=f"latent_cross_mask({C}, {CFG.seq_len}) vs a minecp PerceiverAR's cross_mask")


# -- task 2: the cross-attention layer -----------------------------------------------------------
@graded("cross-attention layer", points=2)
def test_layer_matches_minecp_block(sub):
    for cfg, seed in [(CFG, 1), (CFG_B, 2)]:
        reference = _reference_model(cfg, seed)
        block = reference.blocks[0]
        layer = _student_layer(sub, cfg)
        _load(layer, block.state_dict(), "layer.load_state_dict(minecp_block.state_dict())")
        layer.eval()
        C, N = cfg.seq_len - cfg.latent_len, cfg.seq_len
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(2, N, cfg.d_model, generator=g)
        rope = reference.rope(torch.arange(N))
        attend = masked_attend(reference.cross_mask)
        with torch.no_grad():
            yours = layer(x, rope, attend, query_start=C)
            ref = block(x, rope, attend, query_start=C)
            gold = copy.deepcopy(block).double()(x.double(), rope, attend, query_start=C)
        try:
            _close_to_golden(yours, gold, ref, f"layer(x, rope, attend, query_start={C}) with x [2, {N}, "
                             f"{cfg.d_model}], {cfg.n_heads} heads, vs minecp.blocks.Block")
        except GradingFailure as err:
            hint = _diagnose_layer(sub, cfg, block, x, rope, attend, C)
            raise GradingFailure(f"{err}\n  {hint}" if hint else str(err), err.pictures) from None


@graded("cross-attention layer", points=2)
def test_plugged_into_perceiver_ar(sub):
    for cfg, seed in [(CFG, 3), (CFG_B, 4)]:
        reference = _reference_model(cfg, seed)
        model = _plugged_model(sub, cfg, reference)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len), generator=g)
        with torch.no_grad():
            yours, ref = model(idx), reference(idx)
            gold = copy.deepcopy(reference).double()(idx)
        _close_to_golden(yours, gold, ref, f"logits of a PerceiverAR (N={cfg.seq_len}, M={cfg.latent_len}, "
                         f"L={cfg.n_layers}) with your layer as blocks[0]")


@graded("cross-attention layer", points=1)
def test_latents_read_the_context_but_not_the_future(sub):
    cfg = CFG
    reference = _reference_model(cfg, 5)
    layer = _student_layer(sub, cfg)
    _load(layer, reference.blocks[0].state_dict(), "layer.load_state_dict(minecp_block.state_dict())")
    layer.eval()
    C, N = cfg.seq_len - cfg.latent_len, cfg.seq_len
    rope, attend = reference.rope(torch.arange(N)), masked_attend(reference.cross_mask)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, N, cfg.d_model, generator=g)
    with torch.no_grad():
        base = layer(x, rope, attend, query_start=C)
        for t in range(C, N):        # change positions t..N-1: latents before t must not move
            x2 = x.clone()
            x2[:, t:] = torch.randn(1, N - t, cfg.d_model, generator=g)
            moved = (layer(x2, rope, attend, query_start=C) - base).abs().amax(-1)[0]
            r = t - C
            if moved[:r].max() > 1e-6 if r else False:
                first = int((moved[:r] > 1e-6).nonzero()[0])
                raise GradingFailure(f"changing the inputs at positions {t}..{N - 1} changed the output of "
                                     f"latent {first} (position {C + first}) by {float(moved[first]):.3g}: "
                                     f"a latent at position p must not see keys j > p")
            if moved[r] < 1e-6:
                raise GradingFailure(f"changing the input at position {t} left latent {r} (position {t}) "
                                     "unchanged: a latent must see itself (j <= p) and carry its own input")
        x2 = x.clone()
        x2[:, 0] = torch.randn(cfg.d_model, generator=g)
        moved = (layer(x2, rope, attend, query_start=C) - base).abs().amax(-1)[0]
        if moved.min() < 1e-6:
            raise GradingFailure(f"changing the context token at position 0 left latent {int(moved.argmin())} "
                                 "unchanged: every latent must read the whole context")


# -- task 3: loss positions ----------------------------------------------------------------------
def _loss_hint(yours, logits, window) -> str:
    """Name the usual mistake when the student's loss equals the loss of a wrong choice of targets."""
    if not isinstance(yours, torch.Tensor) or yours.numel() != 1:
        return ""
    B, M, V = logits.shape
    N = window.shape[1] - 1
    flat = logits.reshape(B * M, V).float()

    def ce(targets, reduction="mean"):
        return torch.nn.functional.cross_entropy(flat, targets.reshape(B * M), reduction=reduction)

    wrong = [(ce(window[:, N - M:N]), f"your targets look like window[:, {N - M}:{N}], the latents' own "
              "input tokens: latent p predicts window[:, p + 1]"),
             (ce(window[:, 1:M + 1]), f"your targets look like window[:, 1:{M + 1}], the first M: "
              "PerceiverAR's logit rows are the LAST M positions"),
             (ce(window[:, :M]), f"your targets look like window[:, :{M}]: the first M, and not shifted"),
             (ce(window[:, N + 1 - M:], "sum"), "you return the sum over targets: take the mean")]
    for value, hint in wrong:
        if abs(float(yours) - float(value)) <= 1e-4 * max(1.0, abs(float(value))):
            return "\n  hint: " + hint
    return ""


@graded("loss positions", points=1)
def test_target_positions(sub):
    for C, N in [(16, 24), (1, 2), (5, 9)]:
        M = N - C
        expected = torch.arange(N + 1)[1:][-M:]        # lm_loss: targets window[:, 1:], last M of them
        compare_tensors(sub.target_positions(C, N), expected, what=f"target_positions({C}, {N})",
                        atol=0, rtol=0)


@graded("loss positions", points=2)
def test_latent_loss_matches_minecp(sub):
    for cfg, seed in [(CFG, 6), (CFG_B, 7)]:
        reference = _reference_model(cfg, seed)
        g = torch.Generator().manual_seed(seed)
        window = torch.randint(0, cfg.vocab_size, (3, cfg.seq_len + 1), generator=g)
        with torch.no_grad():
            logits = reference(window[:, :-1])
            yours = sub.latent_loss(logits, window)
            expected = lm_loss(reference, window)
        if isinstance(yours, torch.Tensor) and yours.dim() != 0:
            raise GradingFailure(f"latent_loss should return a scalar (the mean), got shape {tuple(yours.shape)}")
        try:
            compare_tensors(yours, expected, what=f"latent_loss(logits [3, {cfg.latent_len}, {cfg.vocab_size}], "
                            f"window [3, {cfg.seq_len + 1}]) vs minecp.models.lm_loss", atol=1e-5, rtol=1e-5)
        except GradingFailure as err:
            raise GradingFailure(f"{err}{_loss_hint(yours, logits, window)}") from None
    # Logits that put all their mass on the right next tokens score almost 0 nats.
    N, M, V = 10, 4, 7
    window = torch.arange(N + 1)[None] % V
    perfect = 30.0 * torch.nn.functional.one_hot(window[:, N + 1 - M:], V).float()
    compare_tensors(sub.latent_loss(perfect, window), torch.tensor(0.0),
                    what=f"latent_loss of logits that predict window[:, {N + 1 - M}:{N + 1}] exactly "
                    f"(window = 0, 1, ..., {N} mod {V}; M = {M})", atol=1e-3, rtol=0)
