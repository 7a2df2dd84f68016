#!/usr/bin/env bash
# The same 16 seeded GSM8K train problems, greedy and self-consistency k=4, one solve at a
# time and eight at once, against a daemon of this checkout's release build started with
# MODE's flags; run files MODEL-MODE-SPEC-cN.jsonl in this folder (a run file already
# there is resumed: the harness skips what it holds), N in CONCURRENCIES (default "1 8").
# Then compare.py for each spec run at both.
# Nothing else should run on the cores meanwhile: the wall clocks are part of the figure.
#
#   [CONCURRENCIES="1 8"] docs/results/reproducibility-under-load/run.sh MODEL default|deterministic [SPEC...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
model=$1 mode=$2
shift 2
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(greedy self-consistency:k=4)
flags=(--max-concurrent-solves 8)
[ "$mode" = deterministic ] && flags+=(--deterministic)

"$repo/scripts/setup" --models "$model" >/dev/null
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src"
socket=$(mktemp -d)/strategyd.sock
"$repo/.build/release/strategyd" --model "$model" --socket "$socket" --plugin-dir "$repo/.build/release" \
  "${flags[@]}" 2>"$(dirname "$socket")/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
"$repo/scripts/await-daemon" "$repo/.build/release" "$socket" $daemon "$(dirname "$socket")/daemon.log"

for spec in "${specs[@]}"; do
  name=${spec//[:=,]/-}
  for concurrency in ${CONCURRENCIES:-1 8}; do
    python3 -m strategyd_bench run --socket "$socket" --dataset gsm8k-train --sample 16 --seed 0 \
      --strategy "$spec" --concurrency "$concurrency" --out "$here/$model-$mode-$name-c$concurrency.jsonl"
  done
  echo "== $model, $mode, $spec"
  if [ -f "$here/$model-$mode-$name-c1.jsonl" ] && [ -f "$here/$model-$mode-$name-c8.jsonl" ]; then
    python3 "$here/compare.py" "$here/$model-$mode-$name-c1.jsonl" "$here/$model-$mode-$name-c8.jsonl"
  fi
done
