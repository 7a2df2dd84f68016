#!/usr/bin/env bash
# Which of greedy's own certainty signals tells a right answer from a wrong one, on GSM8K
# train, and what escalating below each threshold buys. Per model, on a seeded sample:
#   signals     escalate with threshold 0: greedy, never escalating; details carry every
#               signal (signals-MODEL.jsonl)
#   escalation  escalate with a threshold no solve reaches: every problem escalates, so
#               greedy's signals and the escalated vote of each problem are both known,
#               and analyze.py reads off accuracy and FLOPs at any threshold
#               (escalation-MODEL.jsonl)
# Resumes from the run files.
#
#   docs/results/certainty-signals-gsm8k-train/run.sh 0.5b|1.5b signals|escalation [--sample N] [--bin DIR]
#   PYTHONPATH=clients/bench/src python3 docs/results/certainty-signals-gsm8k-train/analyze.py \
#       > docs/results/certainty-signals-gsm8k-train/analysis.txt
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"

case "${1:-}" in
  0.5b) model=qwen2.5-coder-0.5b-instruct-q4_k_m ;;
  1.5b) model=qwen2.5-coder-1.5b-instruct-q4_k_m ;;
  *) echo "usage: $0 0.5b|1.5b signals|escalation [--sample N] [--bin DIR]" >&2; exit 2 ;;
esac
case "${2:-}" in
  signals) spec="escalate:threshold=0" ;;
  escalation) spec="escalate:threshold=1000,stop_threshold=0.9" ;;
  *) echo "usage: $0 0.5b|1.5b signals|escalation [--sample N] [--bin DIR]" >&2; exit 2 ;;
esac
kind=$2
shift 2
sample=64
bin=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sample) [ $# -ge 2 ] || { echo "--sample needs a value" >&2; exit 2; }; sample=$2; shift 2 ;;
    --bin) [ $# -ge 2 ] || { echo "--bin needs a value" >&2; exit 2; }; bin=(--bin "$2"); shift 2 ;;  # another release build of this checkout
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
exec "$repo/scripts/with-daemon" "${bin[@]}" "$model" -- \
  python3 -m strategyd_bench run --dataset gsm8k-train --sample "$sample" --seed 0 \
  --strategy "$spec" --out "$here/$kind-$model.jsonl"
