#!/usr/bin/env bash
# Session 8, part 4 (part 1 paused again meanwhile): the anchored quiet-rebase with
# anchor_weight=2 (the anchor's vote worth two paths: at width 4 the three sampled paths
# overrule it only when all three agree) on both train subsets, release build of 1344bec.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s8b
out=/tmp/eval
cd /tmp/eval/src
faithful=$(pgrep -f "strategyd --model .* --socket $out/q05.sock")
kill -STOP $faithful
echo "$(date +%T) paused the faithful daemon ($faithful) for part 4" >> $out/progress-s8
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05b.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > $out/daemon-s8-weight.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05b.sock >/dev/null 2>&1 && break; sleep 0.5; done
spec=quiet-rebase:width=4,scorer=arith,variant=anchored,weight=0.5,anchor_weight=2
for subset in "16 1 issue5-train16-s8" "32 0 issue5-train32-s8"; do
  set -- $subset
  t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/q05b.sock --budget timeout_s=3600 \
    --out $out/$3.jsonl --dataset gsm8k-train --sample $1 --seed $2 --strategy "$spec" >> $out/queue4-s8.log 2>&1
  echo "$(date +%T) train$1 $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s8
done
kill $daemon
kill -CONT $faithful
echo "$(date +%T) resumed the faithful daemon (after part 4)" >> $out/progress-s8
