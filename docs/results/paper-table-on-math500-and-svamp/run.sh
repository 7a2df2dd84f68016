#!/usr/bin/env bash
# The paper table's conditions, our best variants and the adaptive strategies beyond GSM8K:
#   math500  64 seeded problems of MATH-500 (--sample 64 --seed 0), graded by math-verify.
#            Answers are often expressions and solutions long: each solution (sample,
#            trace, path) may take 1,024 tokens, the strategy's `max_tokens` param, which
#            the harness adds to every spec that does not set it (--params; at the default
#            512, 5 of 12 greedy solutions were cut before their answer).
#   svamp    128 seeded problems of SVAMP (--sample 128 --seed 0).
# Models: the two Qwen models, and Gemma 3 and SmolLM2 as other architectures. Parameters
# are the ones chosen on GSM8K train for the Qwen models (neither data set has a train
# split); Gemma 3 and SmolLM2, never tuned, take the default model's. Each call appends to
# the run file of its data set and model in this folder and skips what that file already
# holds: stop it at any time and run it again. The specs run in the order given, the cheap
# ones first.
#
#   docs/results/paper-table-on-math500-and-svamp/run.sh math500|svamp 0.5b|1.5b|gemma3|smollm2 \
#       [--sample N] [--limit N] [--bin DIR] [SPEC...]
#   docs/results/paper-table-on-math500-and-svamp/run.sh report
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
usage() {
  echo "usage: $0 math500|svamp 0.5b|1.5b|gemma3|smollm2 [--sample N] [--limit N] [--bin DIR] [SPEC...] | report" >&2
  exit 2
}

case "${1:-}" in
  math500) dataset=math500 sample=64 params=(--params max_tokens=1024) ;;
  svamp) dataset=svamp sample=128 params=() ;;
  report) exec python3 -m strategyd_bench report "$here"/*.jsonl --out-dir "$here" ;;
  *) usage ;;
esac
daemon_args=()
case "${2:-}" in
  0.5b) model=qwen2.5-coder-0.5b-instruct-q4_k_m threshold=5.6 ;;
  1.5b) model=qwen2.5-coder-1.5b-instruct-q4_k_m threshold=5.8 ;;
  # A base model with no chat template in its GGUF: llama.cpp's built-in Gemma template.
  gemma3) model=gemma3-270m-q4_k_m threshold=5.8 daemon_args=(--chat-template gemma) ;;
  smollm2) model=smollm2-135m-instruct-q4_1 threshold=5.8 ;;
  *) usage ;;
esac
shift 2
limit=() bin=()
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
  python3 -m strategyd_bench run --dataset "$dataset" --sample "$sample" --seed 0 "${limit[@]}" \
  "${params[@]}" "${strategies[@]}" --out "$here/$dataset-$model.jsonl"
