#!/usr/bin/env bash
# Sitting 19: self-consistency 1.1.0's adaptive stop (a unanimous round of 4 ends the draw)
# on the default model, GSM8K train, the seeded 32 (--sample 32 --seed 0). Resumes from
# its run file like any strategyd-bench run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$repo/scripts/env.sh"
export PYTHONPATH="$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
model=qwen2.5-coder-1.5b-instruct-q4_k_m
"$repo/scripts/setup" --models "$model"
bin="$repo/.build/release"
socket=$(mktemp -u "${TMPDIR:-/tmp}/strategyd-session19.XXXXXX.sock")
"$bin/strategyd" --model "$model" --socket "$socket" --plugin-dir "$bin" --threads "$(nproc)" \
  --log-level warning > "$STRATEGYD_CACHE/session19.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
for _ in $(seq 1 600); do "$bin/strategyctl" ping --socket "$socket" >/dev/null 2>&1 && break; sleep 0.5; done
python3 -m strategyd_client.bench run --socket "$socket" --out "$here/sc-adaptive-train32-1.5b.jsonl" \
  --dataset gsm8k-train --sample 32 --seed 0 --strategy "self-consistency:k=8,adaptive=true"
