#!/usr/bin/env bash
# Session 10, part 1: the faithful quiet-rebase finishes issue 5's 16-problem train table
# (seed 1) on session 7's build (fb4deb4), as session 8's queue.sh began it; the run file
# resumes, so the 7 problems sessions 7 and 8 finished are not redone. Alone on the cores.
set -u
src=/tmp/eval/src-fb4deb4          # git clone of this repository, checked out at fb4deb4
out=/tmp/eval
export PYTHONPATH=$src/clients/python/src
bin=$src/.build/release            # its scripts/setup --models qwen2.5-coder-0.5b-instruct-q4_k_m
cp -n /work/main/docs/results/session8/issue5-train16-fb4deb4.jsonl $out/issue5-train16-fb4deb4.jsonl
mkdir -p $out/heads
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning --hidden-states --heads-dir $out/heads \
  > $out/daemon-s10-faithful.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && break; sleep 0.5; done
t0=$(date +%s)
cd $src && python3 -m strategyd_client.bench run --socket $out/q05.sock --budget timeout_s=3600 \
  --out $out/issue5-train16-fb4deb4.jsonl --dataset gsm8k-train --sample 16 --seed 1 \
  --strategy quiet-rebase:width=4,scorer=arith,variant=faithful >> $out/queue-s10.log 2>&1
echo "$(date +%T) faithful ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s10
kill $daemon
