"""Each visibility rule reproduces the N = 8 pictures of docs/architectures.md."""

import pytest
import torch

from minecp.masks import (causal_rule, ecp_rule, enhanced_rule, mask_matrix, render,
                          segmented_context_rule)

# The pictures from docs/architectures.md ("Masks at a glance"), x = query row sees key column.
PICTURES = {
    "dense": """
x.......
xx......
xxx.....
xxxx....
xxxxx...
xxxxxx..
xxxxxxx.
xxxxxxxx""",
    "ecp_S2": """
x.......
xx......
xxx.....
xxxx....
..xxx...
..xxxx..
....xxx.
....xxxx""",
    "enhanced_C4": """
xxxx....
xxxx....
xxxx....
xxxx....
xxxxx...
xxxxxx..
xxxxxxx.
xxxxxxxx""",
    "segmented_C4": """
xx......
xx......
..xx....
..xx....
xxxxx...
xxxxxx..
xxxxxxx.
xxxxxxxx""",
}

RULES = {
    "dense": causal_rule(),
    "ecp_S2": ecp_rule(2),
    "enhanced_C4": enhanced_rule(4),
    "segmented_C4": segmented_context_rule(4, 2),
}


@pytest.mark.parametrize("name", list(PICTURES))
def test_rule_reproduces_picture(name):
    assert render(mask_matrix(RULES[name], 8)) == PICTURES[name].strip()


def test_perceiver_ar_cross_attention_is_bottom_rows_of_enhanced():
    cross = mask_matrix(enhanced_rule(4), torch.arange(4, 8), torch.arange(8))
    assert render(cross) == "\n".join(PICTURES["enhanced_C4"].strip().splitlines()[4:])


def test_ecp_rule_matches_definition_on_larger_grid():
    S, N = 5, 23
    i, j = torch.meshgrid(torch.arange(N), torch.arange(N), indexing="ij")
    expected = torch.tensor([[jj <= ii and ii // S - jj // S <= 1 for jj in range(N)] for ii in range(N)])
    assert torch.equal(mask_matrix(ecp_rule(S), N), expected)
    # every query sees at most 2S keys, and always itself
    assert mask_matrix(ecp_rule(S), N).sum(1).max() <= 2 * S
    assert mask_matrix(ecp_rule(S), N).diagonal().all()


def test_shifted_segments_cross_borders():
    plain = mask_matrix(segmented_context_rule(8, 4), 12)
    shifted = mask_matrix(segmented_context_rule(8, 4, shift=2), 12)
    assert not plain[3, 4] and shifted[3, 4]          # position 3 and 4 share a shifted group
    assert torch.equal(plain[8:], shifted[8:])         # latent rows are unaffected


@pytest.mark.parametrize("bad", [0, -3, 2.5, None])
def test_rules_reject_bad_lengths(bad):
    with pytest.raises(ValueError, match="segment_len"):
        ecp_rule(bad)
    with pytest.raises(ValueError, match="context_len"):
        enhanced_rule(bad)
