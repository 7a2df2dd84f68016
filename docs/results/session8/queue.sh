#!/usr/bin/env bash
# Session 8, part 1: the faithful quiet-rebase finishes issue 5's 16-problem train table
# (seed 1) on the same release build of fb4deb4 as session 7's other six rows; the run file
# resumes, so the 5 problems session 7 finished are not redone.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s6b
out=/tmp/eval
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning --hidden-states --heads-dir $out/heads \
  > $out/daemon-s8-faithful.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && break; sleep 0.5; done
t0=$(date +%s)
python3 -m strategyd_client.bench run --socket $out/q05.sock --budget timeout_s=3600 \
  --out $out/issue5-train16-s7.jsonl --dataset gsm8k-train --sample 16 --seed 1 \
  --strategy quiet-rebase:width=4,scorer=arith,variant=faithful >> $out/queue-s8.log 2>&1
echo "$(date +%T) faithful ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s8
kill $daemon
