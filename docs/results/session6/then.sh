#!/usr/bin/env bash
# Replaces queue.sh after the logprob scorer learned to read the log-probabilities a
# strategy keeps while sampling (c183577): rebase width 16 with logprob now costs about
# half as much, so it goes first, on a release build of c183577, and is the more likely
# of the two to finish in this sitting. Width 16 with self-eval (unchanged by c183577)
# resumes after it: its finished problems are kept, the one in flight is solved again.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s6
out=/tmp/eval
pkill -f "bash /tmp/eval/queue-s6.sh"
pkill -f "strategyd_client.bench run .*--socket /tmp/eval/q05.sock"
pkill -f "socket /tmp/eval/q05.sock"
sleep 3
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > "$out/daemon-s6b-q05.log" 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && break; sleep 0.5; done
T4="--dataset gsm8k-train --sample 32 --seed 0 --socket $out/q05.sock --budget timeout_s=3600"
run() {  # out-file spec
  t0=$(date +%s)
  python3 -m strategyd_client.bench run $T4 --out "$1" --strategy "$2" >> $out/queue-s6.log 2>&1
  echo "$(date +%T) $2 ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s6
}
run $out/issue4-train32.jsonl rebase:width=16,scorer=logprob
run $out/issue4-train32.jsonl rebase:width=16,scorer=self-eval
# The width-8 logprob condition again with the reading scorer, in a file of its own (the
# first file holds 05c62ea's run of the same spec): what the change saves at width 8.
run $out/issue4-train32-reuse.jsonl rebase:width=8,scorer=logprob
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s6
