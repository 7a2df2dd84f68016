#!/usr/bin/env bash
# The paper's conditions, our best variants and the adaptive strategies on MATH-500, the
# default model: 64 seeded problems (--sample 64 --seed 0), graded by math-verify. Answers
# are often expressions, and solutions long: each solution (sample, trace, path) may take
# 1,024 tokens, the strategy's `max_tokens` param, which this script adds to every spec that
# does not set it (at the default 512, 5 of 12 greedy solutions were cut before their
# answer). Other parameters are the ones chosen on GSM8K train. Appends to the run file in
# this folder and skips what it already holds: stop it at any time and run it again. The
# specs run in the order given, the cheap ones first.
#
#   docs/results/math500-paper-table/run.sh [--sample N] [--limit N] [--bin DIR] [SPEC...]
#   docs/results/math500-paper-table/run.sh report
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
usage() { echo "usage: $0 [--sample N] [--limit N] [--bin DIR] [SPEC...] | report" >&2; exit 2; }

model=qwen2.5-coder-1.5b-instruct-q4_k_m
if [ "${1:-}" = report ]; then exec python3 -m strategyd_bench report "$here"/*.jsonl --out-dir "$here"; fi
sample=64 limit=() bin=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sample) [ $# -ge 2 ] || usage; sample=$2; shift 2 ;;
    --limit) [ $# -ge 2 ] || usage; limit=(--limit "$2"); shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; bin=(--bin "$2"); shift 2 ;;
    *) break ;;
  esac
done
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  specs=(greedy
         "escalate:threshold=5.8,stop_threshold=0.9"
         "rebase:width=4,scorer=arith"
         deepconf:n=8
         "self-consistency:k=8,adaptive=true"
         "quiet-rebase:variant=anchored,width=8,scorer=arith,weight=0.5"
         quiet-star:when=always
         "quiet-rebase:variant=faithful,width=2,scorer=arith")
fi
strategies=()
for spec in "${specs[@]}"; do
  params=${spec%%@*} budget=${spec#"${spec%%@*}"}  # NAME[:PARAMS] and [@BUDGET]
  case "$params" in
    *max_tokens=*) ;;
    *:*) params="$params,max_tokens=1024" ;;
    *) params="$params:max_tokens=1024" ;;
  esac
  strategies+=(--strategy "$params$budget")
done
exec "$repo/scripts/with-daemon" "${bin[@]}" "$model" -- \
  python3 -m strategyd_bench run --dataset math500 --sample "$sample" --seed 0 "${limit[@]}" \
  "${strategies[@]}" --out "$here/$model.jsonl"
