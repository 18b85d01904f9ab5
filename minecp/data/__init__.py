"""Data for minecp: text corpora, sCIFAR-10, the copy task, and batching.

=================  =========================================  ==========================
name               what                                       function
=================  =========================================  ==========================
``wikitext-103``   Salesforce/wikitext, wikitext-103-raw-v1   :func:`load_corpus`
``wikitext-2``     Salesforce/wikitext, wikitext-2-raw-v1     :func:`load_corpus`
``pg19``           deepmind/pg19 (``max_books`` caps it)      :func:`load_corpus`
``text:<path>``    a local UTF-8 file                         :func:`load_corpus`
``scifar10``       uoft-cs/cifar10, 1,024 RGB pixels/image    :func:`load_scifar10`
``copy``           Perceiver AR copy task, generated          :func:`copy_task_batch`
=================  =========================================  ==========================

Quick start::

    from minecp.data import load_corpus, random_windows
    train = load_corpus("pg19", "train", tokenizer="bpe", max_books=10)   # trains + caches the BPE
    val = load_corpus("pg19", "validation", tokenizer=train.tokenizer)
    g = torch.Generator().manual_seed(0)
    x = random_windows(train.ids, batch_size=8, window_len=1025, generator=g)  # int64 [8, 1025]
    bpb = total_nats / math.log(2) / val.num_bytes                          # bits per byte

Online (no data root) every split is ``datasets.load_dataset(repo, config, split=...)`` on the
Hub; offline, set ``MINECP_DATA_DIR`` (or ``data_dir=``) to a hub-layout parquet mirror and the
same split is read from its files (see ``data/README.md`` and :mod:`minecp.data.sources`). Tokenizers live in :mod:`minecp.tokenizer` (re-exported here).
"""

from ..tokenizer import ByteTokenizer, Tokenizer, get_tokenizer, load_tokenizer, tokenizer_from_dict, train_bpe
from .batching import random_windows
from .corpus import Corpus, default_cache_dir, load_corpus, load_text, text_stats
from .images import LABEL_NAMES, SCIFAR_LEN, SCIFAR_VOCAB, image_tokens, load_scifar10
from .sources import ENV_DATA_DIR, SPLITS, TEXT_DATASETS, hub_dataset, locate_text, resolve_data_dir
from .synthetic import copy_task_batch

__all__ = [
    "ByteTokenizer", "Corpus", "ENV_DATA_DIR", "LABEL_NAMES", "SCIFAR_LEN", "SCIFAR_VOCAB", "SPLITS",
    "TEXT_DATASETS", "Tokenizer", "copy_task_batch", "default_cache_dir", "get_tokenizer", "hub_dataset",
    "image_tokens", "locate_text",
    "load_corpus", "load_scifar10", "load_text", "load_tokenizer", "random_windows", "resolve_data_dir",
    "text_stats", "tokenizer_from_dict", "train_bpe",
]
