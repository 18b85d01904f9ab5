"""Queries rotated at positions 0..M-1 (their latent index) instead of their absolute positions C..N-1 (task: cross-attention layer)."""
import torch
import torch.nn.functional as F
from minecp.rope import apply_rope


class LatentCrossAttention(LatentCrossAttention):
    def forward(self, x, rope, attend=None, query_start=0):
        B, N, d = x.shape
        C, H = query_start, self.n_heads
        cos, sin = rope

        def heads(t):
            return t.view(B, t.shape[1], H, d // H).transpose(1, 2)

        h = self.ln_attn(x)
        q = apply_rope(heads(self.attn.query(h[:, C:])), cos[:N - C], sin[:N - C])   # mistake: cos[C:]
        k = apply_rope(heads(self.attn.key(h)), cos, sin)
        v = heads(self.attn.value(h))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=latent_cross_mask(C, N))
        y = x[:, C:] + self.attn.out(a.transpose(1, 2).reshape(B, N - C, d))
        return y + self.mlp.down(F.gelu(self.mlp.up(self.ln_mlp(y))))
