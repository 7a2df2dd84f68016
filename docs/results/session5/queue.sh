#!/usr/bin/env bash
# Session 5 measurements, one at a time (2 cores). First the Natalia problem (GSM8K train
# #0, gold 72) per strategy on the default 1.5B model with this commit's scorers, then the
# rest of issue 4's 32-problem train subset (seed 0) on the 0.5B model. strategyd-bench
# fsyncs every finished problem and skips finished ones, so sessions 2-4's file resumes.
# The bench runs from a clean clone so every record names a clean commit.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s5
out=/tmp/eval
natalia="Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
start() {  # model socket
  $bin/strategyd --model "$1" --socket "$2" --plugin-dir $bin --threads 2 --max-timeout 3600 \
    --log-level warning > "$out/daemon-s5-$(basename "$2").log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 600); do $bin/strategyctl ping --socket "$2" >/dev/null 2>&1 && return; sleep 0.5; done
}

start qwen2.5-coder-1.5b-instruct-q4_k_m $out/q15.sock
mkdir -p $out/natalia-s5
for spec in "greedy" "self-consistency -p k=8" "best-of-n -p n=8 -p scorer=arith" \
            "best-of-n -p n=8 -p scorer=logprob" "best-of-n -p n=8 -p scorer=self-eval" \
            "beam-search -p scorer=arith" "rebase -p scorer=arith" "rebase -p scorer=self-eval" \
            "quiet-star" "quiet-rebase -p scorer=arith -p variant=faithful" \
            "quiet-rebase -p scorer=arith -p variant=gated"; do
  name=$(echo "$spec" | sed -e 's/ -p /-/g' -e 's/[=,]/-/g')
  timeout 1800 $bin/strategyctl solve --socket $out/q15.sock --json --timeout 1700 -s $spec "$natalia" \
    > "$out/natalia-s5/$name.json" 2> "$out/natalia-s5/$name.err"
  echo "$(date +%T) natalia $name done" >> $out/progress-s5
done
kill $daemon; wait $daemon

start qwen2.5-coder-0.5b-instruct-q4_k_m $out/q05.sock
T4="--dataset gsm8k-train --sample 32 --seed 0 --out $out/issue4-train32.jsonl --socket $out/q05.sock --budget timeout_s=3600"
for spec in rebase:width=8,scorer=self-eval \
            rebase:width=16,scorer=arith rebase:width=16,scorer=logprob rebase:width=16,scorer=self-eval; do
  t0=$(date +%s)
  timeout -s TERM 7200 python3 -m strategyd_client.bench run $T4 --strategy $spec >> $out/queue-s5.log 2>&1
  echo "$(date +%T) $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s5
done
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s5
