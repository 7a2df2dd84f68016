#!/usr/bin/env bash
# The paper preset's greedy and self-consistency k=4 rows on the default model, on the
# first LIMIT (default 64) of its 128 GSM8K test problems (SPECS to run fewer), through a
# daemon of this checkout's release build with its default flags but a solve's time limit
# of an hour, the harness sending CONCURRENCY solves at once (default: as many as the
# daemon runs); run file MODEL-cN.jsonl here (resumed if there). Then, for a run at more
# than one, compare.py against the same problems one at a time (MODEL-c1.jsonl, from
# `run.sh 1`). Nothing else should run on the cores meanwhile.
#
#   [LIMIT=N] [SPECS="greedy ..."] docs/results/sweep-problems-per-hour/run.sh [CONCURRENCY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
model=qwen2.5-coder-1.5b-instruct-q4_k_m
"$repo/scripts/setup" --models "$model" >/dev/null
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src"
socket=$(mktemp -d)/strategyd.sock
"$repo/.build/release/strategyd" --model "$model" --socket "$socket" --plugin-dir "$repo/.build/release" --max-timeout 3600 \
  2>"$(dirname "$socket")/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null || true' EXIT
"$repo/scripts/await-daemon" "$repo/.build/release" "$socket" $daemon "$(dirname "$socket")/daemon.log"
concurrency=${1:-$("$repo/.build/release/strategyctl" status --socket "$socket" --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["limits"]["max_concurrent_solves"])')}
python3 -m strategyd_bench run --socket "$socket" --dataset gsm8k-test --sample 128 --seed 0 --limit "${LIMIT:-64}" \
  $(printf -- "--strategy %s " ${SPECS:-greedy self-consistency:k=4}) --concurrency "$concurrency" --out "$here/$model-c$concurrency.jsonl"
if [ "$concurrency" != 1 ] && [ -f "$here/$model-c1.jsonl" ]; then
  python3 "$here/compare.py" "$here/$model-c1.jsonl" "$here/$model-c$concurrency.jsonl"
fi
