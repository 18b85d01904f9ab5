"""The marker task (minecp.data.synthetic.marker_task_batch, minecp.tasks.MarkerTask)."""

import pytest
import torch

from minecp.data.synthetic import MARKER, marker_task_batch
from minecp.tasks import MarkerTask


def marker_position(row: torch.Tensor, context_len: int) -> int:
    (p,) = (row[:context_len] == MARKER).nonzero()[:, 0].tolist()   # exactly one marker in the context
    return p


def test_batch_layout_answer_and_borders():
    C, S, M, V = 24, 6, 3, 8
    window, scored, crossing = marker_task_batch(10, C, S, M, num_symbols=V, generator=0)
    assert window.shape == scored.shape == crossing.shape == (10, C + M + 1)
    assert window.dtype == torch.int64 and scored.dtype == crossing.dtype == torch.bool
    for r, row in enumerate(window):
        p = marker_position(row, C)
        assert row[-2] == MARKER and row[-1] == row[p + 1] != MARKER        # the question and its answer
        assert ((row[C:-2] >= 1) & (row[C:-2] <= V)).all()                  # no other marker anywhere
        crosses = p // S != (p + 1) // S
        assert crosses == (r % 2 == 0)                                      # even rows cross a border
        assert scored[r].nonzero()[:, 0].tolist() == [C + M]                # one scored target: the last id
        assert crossing[r].any() == crosses and not (crossing[r] & ~scored[r]).any()


def test_batch_is_seeded():
    a = marker_task_batch(4, 16, 4, 2, generator=5)
    b = marker_task_batch(4, 16, 4, 2, generator=torch.Generator().manual_seed(5))
    c = marker_task_batch(4, 16, 4, 2, generator=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b)) and not torch.equal(a[0], c[0])


@pytest.mark.parametrize("kwargs, name", [
    (dict(context_len=18, segment_len=4), "context_len"),     # not a multiple of S
    (dict(context_len=4, segment_len=4), "context_len"),      # no border
    (dict(segment_len=1), "segment_len"),
    (dict(latent_len=0), "latent_len"),
    (dict(num_symbols=1), "num_symbols"),
    (dict(batch_size=0), "batch_size"),
])
def test_batch_rejects_bad_sizes(kwargs, name):
    args = dict(batch_size=2, context_len=16, segment_len=4, latent_len=2) | kwargs
    with pytest.raises(ValueError, match=name):
        marker_task_batch(**args)


class Oracle(torch.nn.Module):
    """Reads the answer off the window: logits [B, T, V] that put the mass on the id ``offset``
    positions after the context's marker at the last position, and on symbol 1 elsewhere."""

    def __init__(self, context_len, num_predicted, vocab, offset=1):
        super().__init__()
        self.C, self.T, self.V, self.offset = context_len, num_predicted, vocab, offset

    def forward(self, idx):
        logits = torch.zeros(idx.shape[0], self.T, self.V)
        logits[:, :, 1] = 1.0
        for r, row in enumerate(idx):
            logits[r, -1] = 0.0
            logits[r, -1, row[marker_position(row, self.C) + self.offset]] = 10.0
        return logits


def test_task_scores_the_answer_only():
    task = MarkerTask(context_len=16, segment_len=4, latent_len=4, num_symbols=8)
    assert task.seq_len == 20 and task.vocab_size == 9
    batch = task.batch("val", torch.Generator().manual_seed(0), 8)
    stats = task.val_stats(Oracle(16, 4, 9), *batch)
    assert stats["val_acc"] == stats["val_acc_crossing"] == stats["val_acc_within"] == 1.0
    assert stats["val_loss"] < 1e-3
    wrong = task.val_stats(Oracle(16, 4, 9, offset=0), *batch)   # reads the marker itself: never right
    assert wrong["val_acc"] == 0.0 and wrong["val_loss"] > 5
    with pytest.raises(ValueError, match="context_len"):
        MarkerTask(context_len=15, segment_len=4, latent_len=2)
