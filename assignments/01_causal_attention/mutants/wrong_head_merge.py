"""merge_heads reshapes [B, H, T, D] to [B, T, H*D] without moving H back behind T (task: heads)."""


def merge_heads(x):
    B, H, T, D = x.shape
    return x.reshape(B, T, H * D)
