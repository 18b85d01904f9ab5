"""The comparison study: the six architectures trained and scored under one budget.

``python -m minecp compare --dataset pg19 --preset cpu-small --models ecp dense --seeds 0 1 --out results/x``
(or ``python -m minecp.compare ...``) trains every (model, seed) *cell* with

* the same data, tokenizer, width, depth, window N, optimizer, schedule and seed (the
  seed fixes the data order: every model of seed s sees exactly the same batches);
* the same **input** token budget: steps x batch x grad_accum x N tokens are read by
  every model. The PerceiverAR family turns only its M latents into training targets,
  so it trains on M / N of the target positions dense and ECP train on; each record
  says how many (``targets_per_window``, ``target_tokens``);

and evaluates every cell the same way:

* text: sliding windows over the same validation tokens (curves) and test tokens (final
  figure), stride min(N/2, M), and only positions >= N - M + 1 of each span, so every
  model scores exactly the same tokens with exactly the same windows; bits per byte
  (tokenizer independent), beside unigram / bigram baselines on the same tokens;
* sCIFAR-10: accuracy (chance = 10 %); copy task: accuracy on the copied half.

Cost is measured two ways: training tokens/s of each cell, and forward+backward
tokens/s and memory of each model at a few window lengths N (:func:`measure_cost`).
Memory: on CUDA ``torch.cuda.max_memory_allocated``; everywhere (the only figure on a
CPU) the bytes of the activations autograd saves for the backward pass
(:func:`activation_bytes`) — exact and deterministic, the part that grows with N; it
leaves out parameters, gradients, optimizer state and transient workspace.

Results **accumulate**: every cell appends one JSON line to ``<out>/records.jsonl``
keyed by (dataset, model, seed, config hash); a later invocation skips cells whose key
is already there (:class:`ResultStore`). Plots go next to it (:func:`plot_study`).

Offline machines without the ``datasets`` library (the GPU image) read a *bundle*:
tokenized splits + tokenizer exported here with ``--export-bundle DIR`` and loaded there
with ``--bundle DIR`` (numpy only).

Source of the architectures and the claim tested: Mahmood & Huang, arXiv 2412.06106.

Layout (read in this order): :mod:`.store` (options, config hash, record store) ->
:mod:`.data` (the study's data and bundles) -> :mod:`.scoring` (one evaluation for every
model) -> :mod:`.cost` (tokens/s and memory against N) -> :mod:`.arms` (what a study
trains; ECP's reach on the copy task) -> :mod:`.run` (one cell, a whole study) ->
:mod:`.report` (tables, plots) -> :mod:`.cli` (``minecp compare``).
"""

from .arms import copy_reach_arms, copy_reachable_fraction, ecp_reach, study_arms
from .cli import TINY, TINY_WINDOW, add_arguments, cmd_compare, main, register_cli
from .cost import activation_bytes, cost_model_config, measure_cost, synchronize
from .data import StudyData, downsample_gray, export_bundle, load_data
from .report import (
                    COLORS,
                    arm_labels,
                    cost_table,
                    markdown_table,
                    plot_cost,
                    plot_study,
                    plot_validation,
                    summary,
)
from .run import run_cell, run_study
from .scoring import evaluate_cell, headline, loss_by_position, score_text, scored_from
from .store import (
                    COMPARE_VERSION,
                    RECORDS_NAME,
                    SCIFAR_MODELS,
                    CompareOptions,
                    ResultStore,
                    cell_key,
                    config_hash,
)

__all__ = [
    "COLORS", "COMPARE_VERSION", "RECORDS_NAME", "SCIFAR_MODELS", "TINY", "TINY_WINDOW",
    "CompareOptions", "ResultStore", "StudyData",
    "activation_bytes", "add_arguments", "arm_labels", "cell_key", "cmd_compare", "config_hash", "copy_reach_arms",
    "copy_reachable_fraction", "cost_model_config", "cost_table", "downsample_gray", "ecp_reach",
    "evaluate_cell", "export_bundle", "headline", "load_data", "loss_by_position", "main", "markdown_table",
    "measure_cost", "plot_cost", "plot_study", "plot_validation", "register_cli", "run_cell", "run_study",
    "score_text", "scored_from", "study_arms", "summary", "synchronize",
]
