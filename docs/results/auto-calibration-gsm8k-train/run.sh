#!/usr/bin/env bash
# auto's calibration: the candidate specs of each model on one seeded sample of GSM8K train
# (--sample 64 --seed 0), every spec on the same problems, so that `strategyd-bench
# calibrate` compares them fairly; then calibration.json, which the auto strategy of the
# paper-table runs reads. Each call appends to its model's run file in this folder and skips
# what that file already holds: stop it at any time and run it again. The specs run in the
# order given, the cheap ones first.
#
#   docs/results/auto-calibration-gsm8k-train/run.sh 0.5b|1.5b [--bin DIR] [SPEC...]
#   docs/results/auto-calibration-gsm8k-train/run.sh calibrate [0.5b|1.5b ...]
#       calibration.json from the run files of the models named (default: both)
#   docs/results/auto-calibration-gsm8k-train/run.sh report
#       report.md and the frontier plot, from both run files
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
usage() { echo "usage: $0 0.5b|1.5b [--bin DIR] [SPEC...] | calibrate [0.5b|1.5b ...] | report" >&2; exit 2; }
small=qwen2.5-coder-0.5b-instruct-q4_k_m
default=qwen2.5-coder-1.5b-instruct-q4_k_m

case "${1:-}" in
  0.5b) model=$small
        candidates=(greedy "quiet-star:when=entropy,mixing=entropy,weight=0.5"
                    "escalate:threshold=5.6,stop_threshold=0.9" "best-of-n:n=4,scorer=arith"
                    self-consistency:k=4 "best-of-n:n=8,scorer=arith" "self-consistency:k=8,adaptive=true"
                    deepconf:n=8) ;;
  1.5b) model=$default
        candidates=(greedy "quiet-star:when=entropy,mixing=entropy,weight=0.5"
                    "escalate:threshold=5.8,stop_threshold=0.9" self-consistency:k=4 deepconf:n=8) ;;
  calibrate)
    shift
    [ $# -gt 0 ] || set -- 0.5b 1.5b
    runs=()
    for which in "$@"; do
      case "$which" in 0.5b) runs+=("$here/$small.jsonl") ;; 1.5b) runs+=("$here/$default.jsonl") ;; *) usage ;; esac
    done
    exec python3 -m strategyd_bench calibrate --dataset gsm8k-train --out "$here/calibration.json" "${runs[@]}" ;;
  report)
    runs=()
    for model in $small $default; do [ -f "$here/$model.jsonl" ] && runs+=("$here/$model.jsonl"); done
    exec python3 -m strategyd_bench report "${runs[@]}" --out-dir "$here" ;;
  *) usage ;;
esac
shift
bin=()
if [ "${1:-}" = --bin ]; then [ $# -ge 2 ] || usage; bin=(--bin "$2"); shift 2; fi
[ $# -eq 0 ] || candidates=("$@")
strategies=()
for spec in "${candidates[@]}"; do strategies+=(--strategy "$spec"); done
exec "$repo/scripts/with-daemon" "${bin[@]}" "$model" -- \
  python3 -m strategyd_bench run --dataset gsm8k-train --sample 64 --seed 0 "${strategies[@]}" \
  --out "$here/$model.jsonl"
