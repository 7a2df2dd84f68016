#!/usr/bin/env bash
# Which mechanism makes the paper's Quiet-STaR + REBASE combination worse than either part?
# Conditions that change one thing each against the paper's combined condition
# (quiet-rebase:variant=faithful,width=2,scorer=arith: a thought before every token of
# every step, constant w = 0.3, two paths), beside the combination itself and its two
# parts (plain REBASE width 2, greedy Quiet-STaR), all solved here by the same plugin
# versions on the same seeded problems. Appends to its model's run file in this folder and
# skips what it already holds: stop it at any time and run it again.
#
#   docs/results/combination-ablation-gsm8k-test/run.sh 0.5b|1.5b [--limit N] [--bin DIR] [SPEC...]
#       0.5b: the 128 problems; 1.5b: the first 64 by default
#   docs/results/combination-ablation-gsm8k-test/run.sh report
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
usage() { echo "usage: $0 0.5b|1.5b [--limit N] [--bin DIR] [SPEC...] | report" >&2; exit 2; }

case "${1:-}" in
  0.5b) model=qwen2.5-coder-0.5b-instruct-q4_k_m; limit=() ;;
  1.5b) model=qwen2.5-coder-1.5b-instruct-q4_k_m; limit=(--limit 64) ;;
  report)
    # Against the combination once it is solved; until then against REBASE width 2.
    baseline="quiet-rebase:variant=faithful,width=2,scorer=arith"
    grep -qF "\"spec\": \"$baseline\"" "$here"/*.jsonl || baseline="rebase:width=2,scorer=arith"
    exec python3 -m strategyd_bench report "$here"/*.jsonl --baseline "$baseline" --out-dir "$here" ;;
  *) usage ;;
esac
shift
bin=()
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) [ $# -ge 2 ] || usage; limit=(--limit "$2"); shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; bin=(--bin "$2"); shift 2 ;;
    *) break ;;
  esac
done
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  # Cheapest first. Mixing only at a step's first token: the branching points keep their
  # thoughts, the tokens the model copies along do not.
  specs=("rebase:width=2,scorer=arith"
         "quiet-rebase:variant=faithful,width=2,scorer=arith,when=interval,interval=4096"
         # Mixing on two sampled paths with no pruning: the combination's decoding without REBASE's search.
         "quiet-star:when=always,votes=2,temperature=1,max_tokens=1024"
         # Thoughts generated and discarded (w = 0): the combination's cost, REBASE's tokens.
         "quiet-rebase:variant=faithful,width=2,scorer=arith,weight=0"
         quiet-star:when=always
         "quiet-rebase:variant=faithful,width=2,scorer=arith")
fi
strategies=()
for spec in "${specs[@]}"; do strategies+=(--strategy "$spec"); done
exec "$repo/scripts/with-daemon" "${bin[@]}" "$model" -- \
  python3 -m strategyd_bench run --dataset gsm8k-test --sample 128 --seed 0 "${limit[@]}" \
  "${strategies[@]}" --out "$here/$model.jsonl"
