#!/usr/bin/env bash
# Session 9: issue 7's paper preset on the 0.5B model, GSM8K test, the seeded 128 (seed 0).
# The paper's three conditions' counterparts first (greedy as the floor, quiet-star, rebase,
# the anchored combination), then the rest of the preset in its order. Stopped during the
# anchored row; its run file is docs/results/paper/qwen2.5-coder-0.5b-instruct-q4_k_m.jsonl,
# which docs/results/paper/run.sh resumes.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s9
out=/tmp/eval
cd /tmp/eval/src
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/paper05.sock --plugin-dir $bin \
  --threads 2 --log-level warning > $out/daemon-s9-paper05.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/paper05.sock >/dev/null 2>&1 && break; sleep 0.5; done
run() {
  t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/paper05.sock --out $out/paper-05.jsonl "$@" >> $out/queue-s9.log 2>&1
  echo "$(date +%T) $* ended ($?) after $(( $(date +%s) - t0 ))s" >> $out/progress-s9
}
for spec in greedy quiet-star:when=entropy,mixing=entropy,weight=0.5 rebase:width=4,scorer=arith \
    quiet-rebase:variant=anchored,width=4,scorer=arith,weight=0.5; do
  run --dataset gsm8k-test --sample 128 --seed 0 --strategy "$spec"
done
run --preset paper
kill $daemon
