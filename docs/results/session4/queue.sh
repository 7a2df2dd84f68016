#!/usr/bin/env bash
# Session 4 measurements: the rest of issue 4's 32-problem train subset (seed 0) on the
# 0.5B model, one condition after another (2 cores: one at a time). strategyd-bench
# fsyncs every finished problem and skips finished ones, so sessions 2-3's file resumes.
# The bench runs from a clean clone so every record names a clean commit.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin
out=/tmp/eval
sock=$out/q05.sock
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $sock --plugin-dir $bin --threads 2 \
  --max-timeout 3600 --log-level warning > $out/daemon-s4.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $sock >/dev/null 2>&1 && break; sleep 0.5; done
T4="--dataset gsm8k-train --sample 32 --seed 0 --out $out/issue4-train32.jsonl --socket $sock --budget timeout_s=3600"
for spec in best-of-n:n=8,scorer=logprob best-of-n:n=8,scorer=self-eval \
            rebase:width=8,scorer=logprob rebase:width=8,scorer=self-eval \
            rebase:width=16,scorer=arith rebase:width=16,scorer=logprob rebase:width=16,scorer=self-eval; do
  t0=$(date +%s)
  timeout -s TERM 7200 python3 -m strategyd_client.bench run $T4 --strategy $spec >> $out/queue-s4.log 2>&1
  echo "$(date +%T) $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s4
done
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s4
