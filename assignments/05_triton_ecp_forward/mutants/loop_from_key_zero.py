"""The key loop starts at key 0 for every query tile: right numbers (the mask hides the
extra keys), but O(N^2) work (task: band-limited key loop)."""
import triton
import triton.language as tl


@triton.jit
def key_tile_range(m0, N, S, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    lo = m0 * 0                     # the mistake: from the first key, as dense causal attention
    hi = tl.minimum(m0 + BLOCK_M, N)
    return lo, hi
