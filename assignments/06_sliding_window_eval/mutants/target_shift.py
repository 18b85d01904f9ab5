"""Off-by-one target: row r is scored against token start + r instead of start + r + 1 (task: token nll)."""


def score_tokens(model, ids, window, stride):
    positions, nlls = [], []
    with torch.no_grad():
        for start, length, first in plan_windows(len(ids), window, stride):
            logits = model(ids[None, start:start + length])[0, first:].double()
            targets = ids[start + first:start + length]
            nlls.append(F.cross_entropy(logits, targets, reduction="none"))
            positions.append(torch.arange(start + first + 1, start + length + 1))
    return torch.cat(positions), torch.cat(nlls)
