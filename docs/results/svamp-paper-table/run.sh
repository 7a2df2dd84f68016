#!/usr/bin/env bash
# The paper's conditions, our best variants and the adaptive strategies on SVAMP: 128
# seeded problems (--sample 128 --seed 0), the two Qwen models, and Gemma 3 and SmolLM2 as
# other architectures. Parameters are the ones chosen on GSM8K train for the Qwen models
# (SVAMP has no train split); Gemma 3 and SmolLM2, never tuned, take the default model's. Each call appends to its model's run file in this folder and skips what that file
# already holds: stop it at any time and run it again. The specs run in the order given,
# the cheap ones first.
#
#   docs/results/svamp-paper-table/run.sh 0.5b|1.5b|gemma3|smollm2 [--limit N] [--bin DIR] [SPEC...]
#   docs/results/svamp-paper-table/run.sh report
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
usage() { echo "usage: $0 0.5b|1.5b|gemma3|smollm2 [--limit N] [--bin DIR] [SPEC...] | report" >&2; exit 2; }

daemon_args=()
case "${1:-}" in
  0.5b) model=qwen2.5-coder-0.5b-instruct-q4_k_m; threshold=5.6 ;;
  1.5b) model=qwen2.5-coder-1.5b-instruct-q4_k_m; threshold=5.8 ;;
  # A base model with no chat template in its GGUF: llama.cpp's built-in Gemma template.
  gemma3) model=gemma3-270m-q4_k_m; threshold=5.8; daemon_args=(--chat-template gemma) ;;
  smollm2) model=smollm2-135m-instruct-q4_1; threshold=5.8 ;;
  report) exec python3 -m strategyd_bench report "$here"/*.jsonl --out-dir "$here" ;;
  *) usage ;;
esac
shift
limit=() bin=()
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) [ $# -ge 2 ] || usage; limit=(--limit "$2"); shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; bin=(--bin "$2"); shift 2 ;;
    *) break ;;
  esac
done
specs=("$@")
if [ ${#specs[@]} -eq 0 ]; then
  specs=(greedy
         "escalate:threshold=$threshold,stop_threshold=0.9"
         "rebase:width=4,scorer=arith"
         deepconf:n=8
         "self-consistency:k=8,adaptive=true"
         "quiet-rebase:variant=anchored,width=8,scorer=arith,weight=0.5"
         quiet-star:when=always
         "quiet-rebase:variant=faithful,width=2,scorer=arith")
fi
strategies=()
for spec in "${specs[@]}"; do strategies+=(--strategy "$spec"); done
exec "$repo/scripts/with-daemon" "${bin[@]}" "$model" "${daemon_args[@]}" -- \
  python3 -m strategyd_bench run --dataset svamp --sample 128 --seed 0 "${limit[@]}" \
  "${strategies[@]}" --out "$here/$model.jsonl"
