"""Which models (and variants) a study trains, and ECP's receptive field on the copy task.

ECP position i sees back to the start of segment floor(i/S) - L after L layers
(docs/architectures.md §6; Mahmood & Huang, arXiv 2412.06106), so a copy at
distance N/2 is in reach only when the receptive field covers it.
"""

from __future__ import annotations

import torch

from ..masks import receptive_field_rule
from ..presets import TrainConfig
from .store import CompareOptions


# -- arms: which models (and variants) a study trains -----------------------------------------
def copy_reachable_fraction(seq_len: int, segment_len: int, n_layers: int) -> float:
    """Fraction of copy-task targets an ECP model can see the source of.

    Copy task (:class:`minecp.tasks.CopyTask`): input position j >= N/2 must predict the
    token that sits at input position j - N/2 + 1. After L layers ECP position j sees back
    to the start of segment floor(j / S) - L (docs/architectures.md), i.e. at least L*S
    and at most (L+1)*S - 1 positions: a copy at distance N/2 - 1 is always visible when
    L*S >= N/2 - 1 and never when (L+1)*S - 1 < N/2 - 1.

    Returns:
        fraction in [0, 1] of the N/2 copy positions whose source is in the receptive field.
    """
    half = seq_len // 2
    j = torch.arange(half, seq_len)
    seen = receptive_field_rule(seq_len, segment_len, n_layers)[j, j - half + 1]  # target j, its source
    return float(seen.float().mean())


def copy_reach_arms(cfg: TrainConfig) -> list[tuple[str, dict]]:
    """ECP variants for the copy task: receptive field shorter and longer than N/2.

    Picks, among segment counts s dividing N, the largest s whose every copy source is
    visible (:func:`copy_reachable_fraction` = 1) and the smallest s none of whose
    sources is (fraction = 0). The first needs the longest relay: a source k segments
    back reaches its target through k segment borders, one per layer ("k hops"; with
    S = N/s and copy distance N/2 - 1, k is s/2 or s/2 - 1). When s_long > 4, a third arm
    with s = 4 (S = N/4, sources 1-2 segments back, in reach whenever L >= 2) separates
    "in reach" from "in reach within two hops" (on the CPU, one seed each, a 4-layer ECP
    learned the 1-2-hop copy and not the 3-4-hop one; RESULTS.md §1.2).

    Returns:
        [(label, overrides)], e.g. [("ecp S=16 ((L+1)S=48<copy 64)", {"num_segments": 8}), ...].

    Raises:
        ValueError: no such pair of segment counts for this N and depth.
    """
    N, L = cfg.seq_len, cfg.n_layers
    options = [s for s in range(1, N + 1) if N % s == 0]
    full = [s for s in options if copy_reachable_fraction(N, N // s, L) == 1.0]
    none = [s for s in options if copy_reachable_fraction(N, N // s, L) == 0.0]
    if not full or not none:
        raise ValueError(f"--copy-reach needs a segment count whose receptive field misses the copy distance "
                         f"{N // 2} and one that covers it, at N={N} and {L} layers; use a longer --seq-len or "
                         "fewer --n-layers")
    s_long, s_short = max(full), min(none)
    arms = [(f"ecp S={N // s_short} ((L+1)S={(L + 1) * (N // s_short)}<copy {N // 2})", {"num_segments": s_short}),
            (f"ecp S={N // s_long} (LS={L * (N // s_long)}>=copy {N // 2})", {"num_segments": s_long})]
    if L >= 2 and N % 4 == 0 and s_long > 4:  # s = 4 is in reach whenever L >= 2
        arms.append((f"ecp S={N // 4} (LS={L * (N // 4)}>=copy {N // 2}, 2 hops)", {"num_segments": 4}))
    return arms


def study_arms(models, cfg: TrainConfig, options: CompareOptions) -> list[tuple[str, str, dict]]:
    """[(label, model name, TrainConfig overrides)] of a study, in run order."""
    arms = []
    for m in models:
        if m == "ecp" and cfg.dataset == "copy" and options.copy_reach:
            arms += [(label, "ecp", o) for label, o in copy_reach_arms(cfg)]
        else:
            arms.append((m, m, {}))
    return arms

def ecp_reach(segment_len: int, layers: int) -> tuple[int, int]:
    """(always, at most) tokens of left context an ECP position sees after ``layers`` layers.

    Position i sees back to the start of segment floor(i/S) - L: at least L*S tokens
    before it (when i starts a segment) and at most (L+1)*S - 1 (docs/architectures.md).
    """
    return layers * segment_len, (layers + 1) * segment_len - 1
