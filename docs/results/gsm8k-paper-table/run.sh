#!/usr/bin/env bash
# The paper's table (arXiv 2412.16260) on our models: GSM8K test, the seeded 128-problem
# subset, the `paper` preset of strategyd-bench. Each call appends to the run file of its
# model in this folder and skips what that file already holds (keyed by spec, problem and
# plugin version): stop it at any time and run it again. It runs against a daemon of its
# own (scripts/with-daemon: the model and a release build of this checkout), whose auto
# strategy reads the calibration of ../auto-calibration-gsm8k-train; the records carry the
# checkout's commit. Nothing else should run on the cores meanwhile: llama.cpp's threads
# spin, and a second busy process slows a solve many times over.
#
#   docs/results/gsm8k-paper-table/run.sh 0.5b [SPEC...]
#       the paper preset on its 128 problems, or only the SPECs given
#   docs/results/gsm8k-paper-table/run.sh 1.5b [SPEC...]
#       the default model: greedy, self-consistency and rebase on the 128, quiet-star and
#       quiet-rebase on the first 32; or only the SPECs given, on the 128
#   docs/results/gsm8k-paper-table/run.sh 0.5b|1.5b --limit N SPEC...
#       those SPECs on the first N of the 128
#   docs/results/gsm8k-paper-table/run.sh 0.5b|1.5b --bin DIR ...
#       with the daemon and plugins of another release build of this checkout (the records
#       name the checkout's commit: build DIR from it)
#   docs/results/gsm8k-paper-table/run.sh 0.5b|1.5b --concurrency N ...
#       N solves at once instead of the daemon's 16
#   docs/results/gsm8k-paper-table/run.sh report
#       report.md and the plots, from both run files
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"

small=qwen2.5-coder-0.5b-instruct-q4_k_m
default=qwen2.5-coder-1.5b-instruct-q4_k_m
which=${1:-}
shift || true
limit=() bin=() concurrency=()
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) [ $# -ge 3 ] || { echo "usage: $0 0.5b|1.5b --limit N SPEC..." >&2; exit 2; }
             limit=(--limit "$2"); shift 2 ;;
    --bin) bin=(--bin "$2"); shift 2 ;;
    --concurrency) concurrency=(--concurrency "$2"); shift 2 ;;
    *) break ;;
  esac
done
[ ${#limit[@]} -eq 0 ] || [ $# -gt 0 ] || { echo "usage: $0 0.5b|1.5b --limit N SPEC..." >&2; exit 2; }
case "$which" in
  0.5b) model=$small ;;
  1.5b) model=$default ;;
  report)
    runs=()
    for model in $small $default; do [ -f "$here/$model.jsonl" ] && runs+=("$here/$model.jsonl"); done
    exec python3 -m strategyd_bench report "${runs[@]}" --out-dir "$here" ;;
  *) echo "usage: $0 0.5b|1.5b [--limit N] [--bin DIR] [--concurrency N] [SPEC...] | report" >&2; exit 2 ;;
esac

out="$here/$model.jsonl"
calibration="$here/../auto-calibration-gsm8k-train/calibration.json"
run() {
  "$repo/scripts/with-daemon" "${bin[@]}" "$model" --plugin-config auto.calibration="$calibration" -- \
    python3 -m strategyd_bench run --out "$out" "${concurrency[@]}" "$@"
}
if [ $# -gt 0 ]; then
  strategies=()
  for spec in "$@"; do strategies+=(--strategy "$spec"); done
  run --dataset gsm8k-test --sample 128 --seed 0 "${limit[@]}" "${strategies[@]}"
elif [ "$which" = 0.5b ]; then
  run --preset paper
else
  # The cheap rows first, so that a short run still completes some.
  run --preset paper --only greedy --only self-consistency --only rebase
  run --preset paper --only quiet-star --only quiet-rebase --limit 32
fi
