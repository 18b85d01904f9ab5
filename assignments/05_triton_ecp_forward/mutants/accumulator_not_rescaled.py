"""The online softmax rescales the denominator but not the accumulated output when the running
max grows (task: online softmax)."""
import triton
import triton.language as tl


@triton.jit
def ecp_fwd_kernel(Q, K, V, O, LSE,
                   stride_qb, stride_qh, stride_qn,
                   stride_kb, stride_kh, stride_kn,
                   stride_vb, stride_vh, stride_vn,
                   stride_ob, stride_oh, stride_on,
                   H, N, S, qk_scale,
                   HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """One program: output rows [m0, m0 + BLOCK_M) of one (batch, head), and their LSE.

    Grid: (cdiv(N, BLOCK_M), H, B). Q, K, V, O: [B, H, N, HEAD_DIM] with the last dimension
    contiguous (any other strides). LSE: contiguous float32 [B, H, N], natural log.
    qk_scale: softmax scale * log2(e).
    """
    pid_m = tl.program_id(0)
    h = tl.program_id(1)
    b = tl.program_id(2)
    q_base = Q + b * stride_qb + h * stride_qh
    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    o_base = O + b * stride_ob + h * stride_oh
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)                  # the tile's query positions
    offs_d = tl.arange(0, HEAD_DIM)

    # (a) The query tile [BLOCK_M, HEAD_DIM]; rows >= N do not exist.
    q = tl.load(q_base + offs_m[:, None] * stride_qn + offs_d[None, :],
                mask=(offs_m < N)[:, None], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)    # running max (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)                  # running denominator
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)        # running un-normalised output

    lo, hi = key_tile_range(m0, N, S, BLOCK_M, BLOCK_N)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)         # this tile's key positions
        # (b) Load the K and V tiles [BLOCK_N, HEAD_DIM] (keys >= N do not exist), compute the
        #     scores s [BLOCK_M, BLOCK_N] in log2 units and hide what the ECP rule hides.
        key_ok = (offs_n < N)[:, None]
        k = tl.load(k_base + offs_n[:, None] * stride_kn + offs_d[None, :], mask=key_ok, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :], mask=key_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision="ieee") * qk_scale
        visible = ((offs_n[None, :] <= offs_m[:, None])
                   & (offs_m[:, None] // S - offs_n[None, :] // S <= 1))
        s = tl.where(visible, s, float("-inf"))
        # (c) Fold the tile into (m_i, l_i, acc): the online softmax, in base 2.
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)    # padding rows: no NaN
        p = tl.exp2(s - m_sub[:, None])
        alpha = tl.exp2(m_i - m_sub)                             # rescales what came before
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc + tl.dot(p, v, input_precision="ieee")  # the mistake: acc not rescaled by alpha
        m_i = m_new

    # (d) Normalise; store the output rows and the LSE (natural log) of the real queries.
    row_ok = offs_m < N
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)                      # only padding rows have l = 0
    out = acc / l_safe[:, None]
    tl.store(o_base + offs_m[:, None] * stride_on + offs_d[None, :], out, mask=row_ok[:, None])
    lse = (m_i + tl.log2(l_safe)) * 0.6931471805599453
    tl.store(LSE + (b * H + h) * N + offs_m, lse, mask=row_ok)
