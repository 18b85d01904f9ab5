"""Data for the pictures; nothing here draws: which input tokens a layer's outputs depend on
(:func:`influence_map`, by gradients) and how a tokenizer cuts a text (:func:`token_pieces`).
"""

from __future__ import annotations

import torch


# --------------------------------------------------------------------- data for pictures
def influence_map(model: torch.nn.Module, idx: torch.Tensor, layer: int, seed: int = 0) -> torch.Tensor:
    """How strongly each output position of a layer depends on each input token.

    Entry (i, j) is ``|| d (r . h_i) / d e_j ||``: the gradient norm, with respect to the
    input embedding ``e_j`` of token j, of a fixed random projection r of the hidden
    state ``h_i`` that block ``layer`` outputs at its i-th position. Attention that a mask
    forbids has probability exactly 0, so an entry is exactly 0 when no path through the
    masks connects token j to position i, and (for a generic r) non-zero otherwise: the
    map shows how far information has travelled after ``layer`` layers.

    Args:
        model: a minecp language model (put in eval mode; dropout would add noise).
        idx: LongTensor [1, N] of token ids.
        layer: 1-based block index (1 = after the first layer).
        seed: seed of the projection r.

    Returns:
        float32 [T_out, N]: T_out is the number of positions block ``layer`` outputs
        (N for models that keep every position, M for PerceiverAR's later layers, C' + M
        for the compressed-context model's later layers).
    """
    if idx.dim() != 2 or idx.shape[0] != 1:
        raise ValueError(f"idx must have shape [1, N], got {tuple(idx.shape)}")
    if not 1 <= layer <= len(model.blocks):
        raise ValueError(f"layer must be in [1, {len(model.blocks)}], got {layer}")
    captured = {}
    h_emb = model.embed.register_forward_hook(lambda m, i, out: captured.setdefault("emb", out.requires_grad_()))
    h_out = model.blocks[layer - 1].register_forward_hook(lambda m, i, out: captured.setdefault("out", out))
    try:
        with torch.enable_grad():
            model(idx)
            emb, out = captured["emb"], captured["out"]  # [1, N, d], [1, T_out, d]
            r = torch.randn(out.shape[-1], generator=torch.Generator().manual_seed(seed))
            scores = out[0] @ r.to(out)  # [T_out]
            rows = []
            for i in range(scores.shape[0]):
                (g,) = torch.autograd.grad(scores[i], emb, retain_graph=i + 1 < scores.shape[0])
                rows.append(g[0].norm(dim=-1))
    finally:
        h_emb.remove()
        h_out.remove()
    return torch.stack(rows).detach().float()


def token_pieces(tokenizer, text: str) -> list[str]:
    """The pieces a tokenizer cuts ``text`` into, as strings (one per token id).

    Byte-level pieces that are not valid UTF-8 on their own (part of a multi-byte
    character) come out as U+FFFD.
    """
    return [tokenizer.decode([int(i)]) for i in tokenizer.encode(text)]
