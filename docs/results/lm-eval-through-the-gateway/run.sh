#!/usr/bin/env bash
# lm-evaluation-harness through strategyd-gateway beside strategyd-bench on the same 32
# GSM8K test problems (the paper preset's seeded 128, the first 32), with greedy and with
# self-consistency:k=4, both against one daemon on the default model run --deterministic
# (so that the two tools' solves give the same tokens and only their grading can differ).
# Sets up the model, a release build and lm-eval (pinned, in a venv in the cache), starts
# its own daemon and gateway, and resumes: strategyd-bench skips what its run file holds,
# lm-eval runs only for specs without output. Nothing else should run on the cores.
#
#   docs/results/lm-eval-through-the-gateway/run.sh      then comparison.txt is written
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$repo/scripts/env.sh"
export PYTHONPATH="$repo/clients/bench/src:$repo/clients/python/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1

model=qwen2.5-coder-1.5b-instruct-q4_k_m
specs=(greedy self-consistency:k=4)
"$repo/scripts/setup" --models "$model"
venv="$STRATEGYD_CACHE/venv/lm-eval-0.4.13"
if [ ! -x "$venv/bin/lm_eval" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "lm_eval[api]==0.4.13"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lm-eval-gateway.XXXXXX")
python3 "$here/problems.py" "$work"
bin="$repo/.build/release"
socket="$work/strategyd.sock"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/strategyd" --model "$model" --socket "$socket" --plugin-dir "$bin" --deterministic --log-level warning \
  > "$work/strategyd.log" 2>&1 &
daemon=$!
"$bin/strategyd-gateway" --socket "$socket" --listen "127.0.0.1:$port" --request-timeout 3600 \
  > "$work/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway $daemon 2>/dev/null; wait' EXIT
"$repo/scripts/await-daemon" "$bin" "$socket" $daemon "$work/strategyd.log"

for spec in "${specs[@]}"; do
  python3 -m strategyd_bench run --socket "$socket" --dataset gsm8k-test --sample 128 --seed 0 --limit 32 \
    --strategy "$spec" --out "$here/strategyd-bench.jsonl"
  out="$here/lm-eval/${spec//[:=,]/-}"
  if [ ! -d "$out" ]; then
    # Sixteen requests at once, as strategyd-bench sends; seed 0, as its solves have; the
    # daemon's default token budget; a timeout as long as the gateway's.
    "$venv/bin/lm_eval" --model local-chat-completions \
      --model_args "model=$spec,base_url=http://127.0.0.1:$port/v1/chat/completions,num_concurrent=16,tokenized_requests=False,seed=0,max_gen_toks=65536,timeout=3600,max_retries=1" \
      --tasks gsm8k-strategyd --include_path "$work" --apply_chat_template --log_samples --output_path "$out.partial" \
      > "$work/lm-eval.log" 2>&1 || { tail -40 "$work/lm-eval.log" >&2; exit 1; }
    mv "$out.partial" "$out"
  fi
done
python3 "$here/compare.py" > "$here/comparison.txt"
cat "$here/comparison.txt"
