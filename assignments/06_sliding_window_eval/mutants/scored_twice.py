"""Every window scores all its rows: with overlapping windows tokens are counted twice (task: window plan, token nll)."""


def plan_windows(num_tokens, window, stride):
    if not isinstance(stride, int) or not 1 <= stride <= window:
        raise ValueError(f"stride must be an int in [1, window={window}], got {stride!r}")
    if num_tokens - 1 <= window:
        return [(0, num_tokens - 1, 0)]
    last_start = num_tokens - 1 - window
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    return [(a, window, 0) for a in starts]
