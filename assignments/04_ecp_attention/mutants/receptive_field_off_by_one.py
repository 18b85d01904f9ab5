"""The prediction counts one layer too few: the first layer is taken to see only its own
segment (task: receptive field)."""


def receptive_field_start(i, segment_len, layers):
    if layers == 0:
        return i
    return max(i // segment_len - (layers - 1), 0) * segment_len
