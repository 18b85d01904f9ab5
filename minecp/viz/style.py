"""The course's figure style, defined once: resolution and one colour per model.

Every notebook draws through :mod:`minecp.viz`, so a model keeps its colour from
notebook 01 to notebook 09 (ECP is always the same blue, dense attention always grey...),
and every figure is drawn at :data:`DPI`. Colours come from the colour-blind-safe
Okabe-Ito palette (Okabe & Ito, "Color Universal Design", 2008); the count baselines
are drawn in muted greys and browns so that the networks stand out.
"""

from __future__ import annotations

#: dpi of every figure the viz helpers create: sharp on ordinary screens (>= 110 dpi),
#: still small enough that the stored notebooks stay light.
DPI = 120

#: One colour per model name (``minecp.MODEL_NAMES``) and per count baseline.
MODEL_COLORS = {
    "dense": "#555555",                      # the baseline everything is compared with: neutral grey
    "perceiver_ar": "#E69F00",               # orange
    "enhanced_perceiver_ar": "#009E73",      # bluish green
    "compressed_perceiver_ar": "#CC79A7",    # reddish purple
    "segmented_perceiver_ar": "#56B4E9",     # sky blue
    "ecp": "#0072B2",                        # blue: the paper's model
    "unigram": "#B8A88A",
    "bigram": "#8C6D46",
}

#: Readable display names of the models, for legends and titles.
MODEL_LABELS = {
    "dense": "dense",
    "perceiver_ar": "PerceiverAR",
    "enhanced_perceiver_ar": "enhanced PerceiverAR",
    "compressed_perceiver_ar": "compressed-context PerceiverAR",
    "segmented_perceiver_ar": "segmented-context PerceiverAR",
    "ecp": "ECP",
    "unigram": "unigram",
    "bigram": "bigram",
}


def model_color(name: str) -> str | None:
    """The course colour of a model or baseline name, or None (matplotlib picks) for other names.

    Accepts the library name (``"enhanced_perceiver_ar"``), its display label
    (``"enhanced PerceiverAR"``) or a label that starts with either followed by a space or
    a comma (``"ECP, S = 16"``): arms of one model share its colour.
    """
    if not isinstance(name, str):
        return None
    key = name.strip()
    for lib, label in MODEL_LABELS.items():
        for candidate in (lib, label):
            if key == candidate or key.startswith(candidate + " ") or key.startswith(candidate + ","):
                return MODEL_COLORS[lib]
    return None
