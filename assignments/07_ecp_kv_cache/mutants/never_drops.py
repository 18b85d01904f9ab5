"""Never drops anything: the cache grows past 2S and overflows (task: keep from, decode)."""


def keep_from(p, S):
    return 0
