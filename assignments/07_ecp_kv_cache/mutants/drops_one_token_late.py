"""Drops with the previous token's position: at a segment's first token the cache overflows (task: decode)."""


def ecp_decode(model, ids, caches):
    S = model.config.segment_len
    out = []
    with torch.no_grad():
        for p, token in enumerate(ids.tolist()):
            for cache in caches:
                cache.drop_before(keep_from(max(p - 1, 0), S))
            x = model.embed(torch.tensor([[token]]))
            rope = model.rope(torch.tensor([p]))
            for block, cache in zip(model.blocks, caches):
                x = block(x, rope, CachedAttend(cache))
            out.append(model.lm_head(model.ln_final(x))[0, -1].float())
    return torch.stack(out)
