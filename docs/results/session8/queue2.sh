#!/usr/bin/env bash
# Session 8, part 2 (while part 1, queue.sh, is paused): the anchored quiet-rebase on the same
# 16-problem train subset (seed 1), width 4, on a release build of 95853d5 (the variant's
# commit), and rebase at width 4 again on that build: the variant's commit reshaped the
# search loop REBASE shares, so rebase's answers on the new build show whether it still
# searches as before. The quiet-star condition the anchor copies is session 7's row.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s8
out=/tmp/eval
cd /tmp/eval/src
# Part 1's daemon is stopped (SIGSTOP) meanwhile, so this run has the two cores to itself;
# the faithful problem in flight takes the pause into its wall time (noted in the README).
faithful=$(pgrep -f "strategyd --model .* --socket $out/q05.sock")
kill -STOP $faithful
echo "$(date +%T) paused the faithful daemon ($faithful)" >> $out/progress-s8
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05b.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > $out/daemon-s8-anchored.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05b.sock >/dev/null 2>&1 && break; sleep 0.5; done
for spec in quiet-rebase:width=4,scorer=arith,variant=anchored,weight=0.5 rebase:width=4,scorer=arith; do
  t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/q05b.sock --budget timeout_s=3600 \
    --out $out/issue5-train16-s8.jsonl --dataset gsm8k-train --sample 16 --seed 1 --strategy "$spec" >> $out/queue2-s8.log 2>&1
  echo "$(date +%T) $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s8
done
kill $daemon
kill -CONT $faithful
echo "$(date +%T) resumed the faithful daemon" >> $out/progress-s8
