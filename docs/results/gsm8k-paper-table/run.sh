#!/usr/bin/env bash
# The paper's table (arXiv 2412.16260) on our models: GSM8K test, the seeded 128-problem
# subset, the `paper` preset of strategyd-bench. Each call appends to the run file of its
# model in this folder and skips what that file already holds (keyed by spec, problem and
# plugin version): stop it at any time and run it again. It sets up the model and a release
# build of this checkout (scripts/setup), starts its own daemon on a private socket and
# stops it at the end; the records carry the checkout's commit. Nothing else should run on
# the cores meanwhile: llama.cpp's threads spin, and a second busy process slows a solve
# many times over.
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
#   docs/results/gsm8k-paper-table/run.sh calibrate
#       calibration.json, which the auto strategy of these runs reads: both models' runs on
#       GSM8K train, from the train studies beside this one (never from these test runs)
#   docs/results/gsm8k-paper-table/run.sh report
#       report.md and the plots, from both run files
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$repo/scripts/env.sh"
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"

small=qwen2.5-coder-0.5b-instruct-q4_k_m
default=qwen2.5-coder-1.5b-instruct-q4_k_m
which=${1:-}
shift || true
limit=()
bin="$repo/.build/release"
built=no
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) [ $# -ge 3 ] || { echo "usage: $0 0.5b|1.5b --limit N SPEC..." >&2; exit 2; }
             limit=(--limit "$2"); shift 2 ;;
    --bin) bin=$2; built=yes; shift 2 ;;
    *) break ;;
  esac
done
[ ${#limit[@]} -eq 0 ] || [ $# -gt 0 ] || { echo "usage: $0 0.5b|1.5b --limit N SPEC..." >&2; exit 2; }
case "$which" in
  0.5b) model=$small ;;
  1.5b) model=$default ;;
  calibrate)
    exec python3 -m strategyd_bench calibrate --dataset gsm8k-train --out "$here/calibration.json" \
      "$here"/../parameter-choices-gsm8k-train/train32.jsonl "$here"/../adaptive-stop-gsm8k-train/*.jsonl \
      "$here"/../certainty-signals-gsm8k-train/signals-*.jsonl ;;
  report)
    runs=()
    for model in $small $default; do [ -f "$here/$model.jsonl" ] && runs+=("$here/$model.jsonl"); done
    exec python3 -m strategyd_bench report "${runs[@]}" --out-dir "$here" ;;
  *) echo "usage: $0 0.5b|1.5b [--limit N] [--bin DIR] [SPEC...] | calibrate | report" >&2; exit 2 ;;
esac

if [ $built = no ]; then "$repo/scripts/setup" --models "$model"; else "$repo/scripts/setup" --no-build --models "$model"; fi
socket=$(mktemp -u "${TMPDIR:-/tmp}/strategyd-paper.XXXXXX.sock")
"$bin/strategyd" --model "$model" --socket "$socket" --plugin-dir "$bin" --threads "$(nproc)" \
  --plugin-config auto.calibration="$here/calibration.json" --log-level warning > "$STRATEGYD_CACHE/paper-$which.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
"$repo/scripts/await-daemon" "$bin" "$socket" $daemon "$STRATEGYD_CACHE/paper-$which.log"

out="$here/$model.jsonl"
run() { python3 -m strategyd_bench run --socket "$socket" --out "$out" "$@"; }
if [ $# -gt 0 ]; then
  for spec in "$@"; do run --dataset gsm8k-test --sample 128 --seed 0 "${limit[@]}" --strategy "$spec"; done
elif [ "$which" = 0.5b ]; then
  run --preset paper
else
  # The cheap rows first, so that a short run still completes some.
  run --preset paper --only greedy --only self-consistency --only rebase
  run --preset paper --only quiet-star --only quiet-rebase --limit 32
fi
