"""Text generation with key/value caches for all six architectures.

Public entry points (re-exported as ``minecp.generate`` and ``minecp.generate_stream``):

* :func:`generate` — prompt ids in, prompt + new ids out;
* :func:`generate_stream` — the same, but yields each new token id as soon as it exists
  (the CLI uses it to print text while it is being produced);
* :func:`make_decoder` — the incremental decoders themselves (``prefill`` / ``step``),
  for tests, benchmarks and anyone who wants logits instead of samples;
* :func:`register_cli` — adds ``python -m minecp generate`` to the package's CLI.

Why a cache at all? A language model predicts token t+1 from tokens 0..t. Re-running the
whole window for every new token repeats almost all of the previous step's work: in
causal attention the keys and values of old positions do not change when a token is
appended, so they can be kept (the "KV cache") and each new token costs one query per
layer instead of a full forward pass.

Whether old keys/values stay valid depends on the architecture (arXiv 2412.06106;
docs/architectures.md):

=====================  =====================================================================
model                  what the cached path does (``use_cache=True``, the default)
=====================  =====================================================================
ECP                    per-layer cache of the previous + current segment only (<= 2S
                       entries); absolute positions forever; exact, unbounded length.
                       See :class:`ECPDecoder`.
dense                  KV cache inside a window of at most N tokens; when the window is
                       full it jumps forward by ``slide`` tokens and is re-encoded.
                       See :class:`WindowKVDecoder`.
PerceiverAR family     same window policy as dense. Inside one window (fixed start) the
(all four)             context never changes and latents are causal, so context and latent
                       keys/values can be cached; when the window moves, every position's
                       state changes, so the new window is re-encoded.
=====================  =====================================================================

``use_cache=False`` re-runs a forward pass for every token instead
(:class:`RecomputeDecoder`): dense and the PerceiverAR family on the last N tokens of the
text (the authors' generation loop; each prediction sees a full window), ECP on exactly
the tokens its prediction depends on (its receptive field) at absolute positions, which
gives the same function as the ECP cache.

Batch size is 1 throughout (one prompt). Everything runs under ``torch.no_grad()`` and
with the model in eval mode (dropout off).

Layout (read in this order): :mod:`.cache` (the per-layer cache; cached decoding as an
attention pattern) -> :mod:`.decoders` (one decoder per caching policy) ->
:mod:`.sampling` (next token from logits) -> :mod:`.api` (``generate``,
``generate_stream``) -> :mod:`.cli` (``minecp generate``).
"""

from .api import generate, generate_stream
from .cache import PERCEIVER_FAMILY, CachedAttend, KVCache
from .cli import register_cli
from .decoders import (
    Decoder,
    ECPDecoder,
    RecomputeDecoder,
    WindowKVDecoder,
    make_decoder,
)
from .sampling import sample_next_token

__all__ = [
    "generate",
    "generate_stream",
    "make_decoder",
    "sample_next_token",
    "Decoder",
    "ECPDecoder",
    "WindowKVDecoder",
    "RecomputeDecoder",
    "KVCache",
    "CachedAttend",
    "PERCEIVER_FAMILY",
    "register_cli",
]
