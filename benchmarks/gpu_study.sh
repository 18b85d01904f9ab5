#!/usr/bin/env bash
# The GPU part of the comparison study (minecp.compare), one numbered stage per device call.
#
# Each stage fits one device call (< 9 minutes): a wall-clock guard (--time-budget-s) starts
# no new training cell once the stage's budget would be exceeded, and every finished cell is
# appended to $OUT/gpu/records.jsonl at once. Stages are idempotent: cells already in
# results/gpu/records.jsonl (copied into $OUT first) are skipped, so rerunning a stage, in
# this session or a later one, only runs what is missing.
#
# Usage
#   bash benchmarks/gpu_study.sh prepare   # HERE, on the CPU host, once: data bundles (needs
#                                          # `datasets` + the mirror; the GPU image has no `datasets`)
#   bash benchmarks/gpu_study.sh 1         # ON THE GPU, one device call per stage (1..5)
#   bash benchmarks/gpu_study.sh dry-run   # HERE: every stage's command at a tiny size on the CPU
#   bash benchmarks/gpu_study.sh plots     # HERE, after copying records back: tables and plots
#
# Device calls (tool `run`; `carry` = the bundle a stage reads; timeout_s 560):
#   stage 1-3: carry ["data/bundles/pg19-bpe16384"]
#   stage 4:   carry ["data/bundles/wikitext103-bpe8192"]    (also runs the copy task: no data)
#   stage 5:   carry ["data/bundles/scifar10-30k"]
#   command:   bash benchmarks/gpu_study.sh <stage>
# After each call: cp <files_at>/gpu/records.jsonl results/gpu/records.jsonl, then
#   bash benchmarks/gpu_study.sh plots
#
# Stages (shape = preset gpu-small: d = 512, 8 layers, 8 heads, bf16 autocast, AdamW lr 1e-3):
#   1  PG-19, N = 2048, s = 8 (S = 256), M = 1024, vocab 16,384 BPE, 1,500 steps x 16 windows
#      = 49.2 M input tokens per model: dense, perceiver_ar, ecp (seed 0)
#   2  the same budget: enhanced_, compressed_, segmented_perceiver_ar (seed 0)
#   3  the same budget, seed 1: ecp, perceiver_ar; then tokens/s and memory against N for the
#      six models at N = 2048 .. 16384 (16,384 tokens per call)
#   4  WikiText-103 (the mirror's train split is a 0.5 % prefix: say so with any figure),
#      N = 1024, S = 256, 400 steps x 16: ecp, perceiver_ar, dense; then the copy task at
#      N = 1024, 4 layers, d = 256 with three ECP arms: receptive field (L+1)S - 1 shorter than
#      the copy distance N/2 - 1 (S = 64), L*S long enough with a 3-4-hop relay (S = 128) and
#      with a 1-2-hop relay (S = 256); plus dense and perceiver_ar
#   5  sCIFAR-10 (plain_text, lossy JPEG mirror; first 30,000 train images: 25,000 train +
#      5,000 validation; 10,000 test), gray 1,024-pixel sequences, d = 256, 4 layers,
#      S = 256 (4 segments: with L >= s - 1 ECP's last position, which the classifier reads,
#      sees every pixel), 1,500 steps x 64 images: ecp, perceiver_ar, dense
# Nothing here has been run on a GPU yet: the token budgets are sized from estimates, and the
# guard defers whatever does not fit to a rerun of the same stage.
#
# Environment: OUT (set by the device tool; default ./gpu-out), ECP_BACKEND (auto = the
# Triton kernel on CUDA; flex or torch if it fails), STAGE_BUDGET_S (default 420).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
PY=${PYTHON:-python3}
OUT=${OUT:-./gpu-out}
BUDGET=${STAGE_BUDGET_S:-420}
BUNDLES=data/bundles
EXTRA=()
DEVICE_ARGS=(--device cuda --ecp-backend "${ECP_BACKEND:-auto}" --no-plots)

# The study configurations. One definition per study: stages that share it share its config
# hash, so their cells are comparable and skipping works across stages and sessions.
PG19=(--dataset pg19 --preset gpu-small --tokenizer bpe --vocab-size 16384 --seq-len 2048 --num-segments 8
      --batch-size 16 --steps 1500 --warmup-steps 100 --eval-every 250 --val-tokens 65536 --test-tokens 262144)
WIKI=(--dataset wikitext-103 --preset gpu-small --tokenizer bpe --vocab-size 8192 --seq-len 1024 --num-segments 4
      --batch-size 16 --steps 400 --warmup-steps 40 --eval-every 100 --val-tokens 65536 --test-tokens 262144)
COPY=(--dataset copy --preset gpu-small --vocab-size 64 --seq-len 1024 --d-model 256 --n-heads 4 --n-layers 4
      --batch-size 32 --steps 1500 --warmup-steps 100 --eval-every 250 --copy-reach --copy-eval-batches 8)
SCIFAR=(--dataset scifar10 --preset gpu-small --max-images 30000 --d-model 256 --n-heads 4 --n-layers 4
        --num-segments 4 --batch-size 64 --steps 1500 --warmup-steps 100 --eval-every 250 --val-images 5000)

data() {  # data() <bundle dir>: read the bundle when it is there, else the hub-layout mirror
    if [ -d "$BUNDLES/$1" ]; then echo "--bundle $BUNDLES/$1"; fi
}

STATUS=0
compare() {  # compare <out dir> <args...>; a failure is remembered, the next command still runs
    local out=$1; shift
    "$PY" -m minecp.compare "$@" "${EXTRA[@]}" --out "$out" || STATUS=1
}

stage() {
    local s=$1 dir=$2
    case "$s" in
        1) compare "$dir" "${PG19[@]}" $(data pg19-bpe16384) --models dense perceiver_ar ecp --seeds 0 \
               --cost-lengths --time-budget-s "$BUDGET" "${DEVICE_ARGS[@]}" ;;
        2) compare "$dir" "${PG19[@]}" $(data pg19-bpe16384) --models enhanced_perceiver_ar \
               compressed_perceiver_ar segmented_perceiver_ar --seeds 0 --cost-lengths \
               --time-budget-s "$BUDGET" "${DEVICE_ARGS[@]}" ;;
        3) compare "$dir" "${PG19[@]}" $(data pg19-bpe16384) --models ecp perceiver_ar --seeds 1 \
               --cost-lengths --time-budget-s "$BUDGET" "${DEVICE_ARGS[@]}"
           compare "$dir" "${PG19[@]}" $(data pg19-bpe16384) --models dense perceiver_ar enhanced_perceiver_ar \
               compressed_perceiver_ar segmented_perceiver_ar ecp --seeds 0 --skip-training \
               --cost-lengths 2048 4096 8192 16384 --cost-tokens 16384 "${DEVICE_ARGS[@]}" ;;
        4) compare "$dir" "${WIKI[@]}" $(data wikitext103-bpe8192) --models ecp perceiver_ar dense --seeds 0 \
               --cost-lengths --time-budget-s $((BUDGET / 2)) "${DEVICE_ARGS[@]}"
           compare "$dir" "${COPY[@]}" --models ecp dense perceiver_ar --seeds 0 \
               --time-budget-s $((BUDGET / 2)) "${DEVICE_ARGS[@]}" ;;
        5) compare "$dir" "${SCIFAR[@]}" $(data scifar10-30k) --models ecp perceiver_ar dense --seeds 0 \
               --time-budget-s "$BUDGET" "${DEVICE_ARGS[@]}" ;;
        *) echo "unknown stage $s (allowed: 1 2 3 4 5 prepare dry-run plots)" >&2; return 2 ;;
    esac
    return $STATUS
}

case "${1:-}" in
    prepare)  # on the CPU host: tokenized bundles that the GPU image can read without `datasets`
        export MINECP_DATA_DIR=${MINECP_DATA_DIR:-../shared/data/hf}
        mkdir -p "$BUNDLES"
        "$PY" -m minecp.compare "${PG19[@]}" --export-bundle "$BUNDLES/pg19-bpe16384"
        "$PY" -m minecp.compare "${WIKI[@]}" --export-bundle "$BUNDLES/wikitext103-bpe8192"
        "$PY" -m minecp.compare "${SCIFAR[@]}" --export-bundle "$BUNDLES/scifar10-30k"
        du -sh "$BUNDLES"/* ;;
    dry-run)  # on the CPU: every stage's commands at a tiny size (bundles if present, else the mirror)
        export MINECP_DATA_DIR=${MINECP_DATA_DIR:-../shared/data/hf}
        DEVICE_ARGS=(--device cpu --threads 1 --ecp-backend auto --no-plots)
        EXTRA=(--dry-run --time-budget-s 600)
        tmp=$(mktemp -d)
        for s in 1 2 3 4 5; do
            echo "== stage $s (dry run)"
            if [ "$s" = 5 ] && [ ! -d "$BUNDLES/scifar10-30k" ]; then
                SCIFAR=(${SCIFAR[@]/30000/200})  # no bundle: decode 200 images, not 30,000
            fi
            stage "$s" "$tmp/gpu" || { echo "stage $s failed" >&2; exit 1; }
        done
        "$PY" -m minecp.compare --plot-only --out "$tmp/gpu"
        ls "$tmp/gpu"; rm -rf "$tmp" ;;
    plots)
        "$PY" -m minecp.compare --plot-only --out results/gpu ;;
    [1-5])
        mkdir -p "$OUT/gpu"
        if [ -f results/gpu/records.jsonl ]; then cp results/gpu/records.jsonl "$OUT/gpu/records.jsonl"; fi
        "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, \
torch.cuda.get_device_name(0))" 2>&1 | tee "$OUT/stage$1.log" || true
        stage "$1" "$OUT/gpu" 2>&1 | tee -a "$OUT/stage$1.log" ;;
    *)
        sed -n '2,20p' "$0"; exit 2 ;;
esac
