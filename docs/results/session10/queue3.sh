#!/usr/bin/env bash
# Session 10, part 4: best-of-n n = 8 without the adaptive stop, on the same 32 train
# problems and the same build as queue2.sh: the samples had changed since session 7's
# n = 8 row (build 7594324), so adaptive and full are compared on one build. Release
# build of 9073e21 (a clone's scripts/setup). Alone on the cores. Then the paper preset
# resumes (run.sh).
set -u
src=/tmp/eval/paper                # git clone of this repository at 9073e21
bin=$src/.build/release
export PYTHONPATH=$src/clients/python/src
sock=/tmp/eval/q05c.sock
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > /tmp/eval/daemon-s10-n8.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $sock >/dev/null 2>&1 && break; sleep 0.5; done
t0=$(date +%s)
cd $src && python3 -m strategyd_client.bench run --socket $sock --budget timeout_s=3600 \
  --out /tmp/eval/issue4-train32-n8.jsonl --dataset gsm8k-train --sample 32 --seed 0 \
  --strategy best-of-n:n=8,scorer=arith >> /tmp/eval/queue3-s10.log 2>&1
echo "$(date +%T) best-of-n n=8 ended after $(( $(date +%s) - t0 ))s" >> /tmp/eval/progress-s10
kill $daemon; wait $daemon
cd $src && docs/results/paper/run.sh 0.5b >> /tmp/eval/runsh-s10.log 2>&1
