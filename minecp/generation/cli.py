"""``python -m minecp generate --checkpoint ... --prompt "..."``."""

from __future__ import annotations

import sys

import torch

from ..device import resolve_device
from ..models.base import LanguageModel
from .api import generate_stream
from .sampling import check_sampling


# ------------------------------------------------------------------------------------------
# Command line: python -m minecp generate --checkpoint ... --prompt "..."
# ------------------------------------------------------------------------------------------
def register_cli(subparsers) -> None:
    """Add the ``generate`` sub-command to an ``argparse`` sub-parser collection.

    Usage: ``python -m minecp generate --checkpoint ckpt.pt --prompt "Once upon a time"
    [--max-new-tokens 200] [--temperature 1.0] [--top-k K] [--top-p P] [--seed S]
    [--no-cache] [--device cpu|cuda|auto]``. The text is printed while it is generated.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.
    """
    from ..cli import (
        int_at_least,  # lazy: minecp.cli builds its parser from this function
    )

    p = subparsers.add_parser("generate", help="continue a prompt with a trained checkpoint",
                              description="Sample a continuation of --prompt from a checkpoint, "
                                          "printing the text as it is generated.")
    p.add_argument("--checkpoint", required=True, help="path of a checkpoint written by training")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--max-new-tokens", type=int_at_least(0), default=200, help="tokens to generate (default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int_at_least(1), default=None, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1]")
    p.add_argument("--seed", type=int_at_least(0), default=None, help="seed for reproducible sampling")
    p.add_argument("--no-cache", action="store_true", help="re-run the model for every token")
    p.add_argument("--pad-id", type=int_at_least(0), default=0,
                   help="left padding for PerceiverAR-family prompts shorter than C + 1 tokens")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda if available)")
    p.set_defaults(func=_cli_generate)


def _encode(tokenizer, text: str) -> list[int]:
    """tokenizer.encode(text) as a list of ints (it may return a list, an array, a tensor)."""
    ids = tokenizer.encode(text)
    if hasattr(ids, "ids"):                    # a Hugging Face `tokenizers` Encoding
        ids = ids.ids
    if hasattr(ids, "tolist"):                 # numpy array or torch tensor
        ids = ids.reshape(-1).tolist()
    return [int(i) for i in ids]


def _cli_generate(args, out=None) -> int:
    """Handler of ``minecp generate``: load, generate, print text as tokens arrive."""
    from ..checkpoint import load_model  # lazy: only this command needs it

    out = out or sys.stdout
    check_sampling(args.temperature, args.top_k, args.top_p)  # before the (slow) checkpoint load
    model, tokenizer, _meta = load_model(args.checkpoint, map_location="cpu")
    if not isinstance(model, LanguageModel):
        raise ValueError(f"checkpoint {args.checkpoint!r} holds a {type(model).__name__}, "
                         "not a language model: it cannot generate text")
    if tokenizer is None:
        raise ValueError(f"checkpoint {args.checkpoint!r} has no tokenizer: cannot turn --prompt into ids")
    model = model.to(resolve_device(args.device))  # checked: a clear error for an unknown or absent device
    prompt = _encode(tokenizer, args.prompt)
    if not prompt:
        raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens; give some text to continue")
    stream = generate_stream(model, torch.tensor(prompt, dtype=torch.long), args.max_new_tokens,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             seed=args.seed, use_cache=not args.no_cache, pad_id=args.pad_id)
    # Tokens are not characters: a word piece ("##ing") joins the previous word, and a
    # byte-level token may be half of a UTF-8 character. So we decode prompt + new ids
    # each time and print only what was added since the last print (quadratic in the
    # length, fine for a CLI), holding back text that ends in an incomplete character
    # (decoded as U+FFFD) until the next token completes it.
    ids = list(prompt)
    printed = tokenizer.decode(ids)
    out.write(printed)
    out.flush()
    text = printed
    for token in stream:
        ids.append(token)
        text = tokenizer.decode(ids)
        if text.endswith("\ufffd"):
            continue                           # maybe the first bytes of a character
        # (if decoding changed earlier text we cannot take back what was printed; we
        # print what follows it)
        out.write(text[len(printed):])
        printed = text
        out.flush()
    out.write(text[len(printed):] + "\n")     # whatever was still held back
    out.flush()
    return 0
