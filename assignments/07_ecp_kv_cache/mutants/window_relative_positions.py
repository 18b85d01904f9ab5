"""RoPE at the position inside a window of N (p % N) instead of the absolute position: wrong past N (task: decode)."""


def ecp_decode(model, ids, caches):
    S, N = model.config.segment_len, model.config.seq_len
    out = []
    with torch.no_grad():
        for p, token in enumerate(ids.tolist()):
            for cache in caches:
                cache.drop_before(keep_from(p, S))
            x = model.embed(torch.tensor([[token]]))
            rope = model.rope(torch.tensor([p % N]))
            for block, cache in zip(model.blocks, caches):
                x = block(x, rope, CachedAttend(cache))
            out.append(model.lm_head(model.ln_final(x))[0, -1].float())
    return torch.stack(out)
