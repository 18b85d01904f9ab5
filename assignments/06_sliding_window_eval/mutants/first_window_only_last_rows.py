"""The first window scores only its last `stride` rows, like the later ones: its early tokens are never scored (task: window plan)."""


def plan_windows(num_tokens, window, stride):
    if not isinstance(stride, int) or not 1 <= stride <= window:
        raise ValueError(f"stride must be an int in [1, window={window}], got {stride!r}")
    if num_tokens - 1 <= window:
        return [(0, num_tokens - 1, 0)]
    last_start = num_tokens - 1 - window
    starts = list(range(0, last_start + 1, stride))
    if starts[-1] != last_start:
        starts.append(last_start)
    plan, scored_until = [], starts[0] + window - stride
    for a in starts:
        plan.append((a, window, max(0, scored_until - a)))
        scored_until = a + window
    return plan
