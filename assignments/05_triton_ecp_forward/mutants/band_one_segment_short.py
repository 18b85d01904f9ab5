"""The band starts at the query tile's own segment, forgetting the previous one
(task: band-limited key loop; the outputs go wrong too)."""
import triton
import triton.language as tl


@triton.jit
def key_tile_range(m0, N, S, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    lo = (m0 // S * S) // BLOCK_N * BLOCK_N    # the mistake: segment of m0, not the one before
    hi = tl.minimum(m0 + BLOCK_M, N)
    return lo, hi
