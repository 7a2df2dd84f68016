#!/usr/bin/env bash
# Session 2 measurements, in time boxes (2 cores: one config at a time). strategyd-bench
# fsyncs every finished problem, so a box that ends mid-run keeps what it finished.
set -u
cd /work/main
export PYTHONPATH=clients/python/src
bin=/tmp/eval/bin
out=/tmp/eval
natalia="Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
start() {  # model socket
  $bin/strategyd --model "$1" --socket "$2" --plugin-dir $bin --threads 2 --hidden-states --max-timeout 3600 \
    --log-level warning > "$out/daemon-$(basename $2).log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 600); do $bin/strategyctl ping --socket "$2" >/dev/null 2>&1 && return; sleep 0.5; done
}
box() {  # seconds, then strategyd-bench run args
  local secs=$1; shift
  local t0=$(date +%s)
  timeout -s TERM "$secs" python3 -m strategyd_client.bench run "$@" >> $out/queue.log 2>&1
  echo "$(date +%T) box ${secs}s ended after $(( $(date +%s) - t0 ))s: $*" >> $out/progress
}

# Issue 5: the Natalia problem on the default model.
start qwen2.5-coder-1.5b-instruct-q4_k_m $out/q15.sock
for spec in "quiet-star" "quiet-rebase -p width=4 -p scorer=arith -p variant=gated"; do
  name=${spec%% *}
  timeout 900 $bin/strategyctl solve --socket $out/q15.sock --json --timeout 840 -s $spec "$natalia" > "$out/natalia15-$name.json" 2> "$out/natalia15-$name.err"
  echo "$(date +%T) natalia15 $name done" >> $out/progress
done
kill $daemon; wait $daemon

start qwen2.5-coder-0.5b-instruct-q4_k_m $out/q05.sock
S="--socket $out/q05.sock --budget timeout_s=3600"
# Issue 4: the 32-problem train subset (seed 0), as many problems as each box allows.
T4="--dataset gsm8k-train --sample 32 --seed 0 --out $out/issue4-train32.jsonl $S"
box 600 $T4 --strategy self-consistency:k=8
box 600 $T4 --strategy best-of-n:n=8,scorer=arith
box 600 $T4 --strategy rebase:width=8,scorer=arith
# Issue 5: the 16-problem train subset (seed 1).
T5="--dataset gsm8k-train --sample 16 --seed 1 --out $out/issue5-train16.jsonl $S"
box 300 $T5 --strategy greedy
box 480 $T5 --strategy rebase:width=8,scorer=arith
box 480 $T5 --strategy quiet-star:when=entropy,mixing=entropy,weight=0.5
box 480 $T5 --strategy quiet-rebase:width=8,scorer=arith,variant=gated
box 480 $T5 --strategy quiet-star
if [ ! -s $out/head-05.json ]; then
  # The head's data: 12 train problems outside the evaluation subset (seed 2).
  timeout 600 python3 -m strategyd_client.train_head --socket $out/q05.sock --problems 12 --positions 32 --seed 2 \
    --features $out/features-05.json --out $out/head-05.json > $out/train-head.log 2>&1
  echo "$(date +%T) head trained" >> $out/progress
fi
box 480 $T5 --strategy "quiet-star:mixing=learned,head=$out/head-05.json"
box 480 $T5 --strategy quiet-rebase:width=4,scorer=arith,variant=faithful
kill $daemon
echo "$(date +%T) queue done" >> $out/progress
