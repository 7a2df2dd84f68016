#!/usr/bin/env bash
# Session 8, part 5 (after part 4; part 1 paused again meanwhile): is quiet-star's 7/16 on
# the 16-problem subset a property of the condition or of one draw of its thoughts
# (sampled at temperature 1)? The same condition with two other solve seeds.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s8b
out=/tmp/eval
cd /tmp/eval/src
while ! grep -q "resumed the faithful daemon (after part 4)" $out/progress-s8 2>/dev/null; do sleep 10; done
faithful=$(pgrep -f "strategyd --model .* --socket $out/q05.sock")
kill -STOP $faithful
echo "$(date +%T) paused the faithful daemon ($faithful) for part 5" >> $out/progress-s8
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05b.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > $out/daemon-s8-seeds.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05b.sock >/dev/null 2>&1 && break; sleep 0.5; done
for solve_seed in 2 3; do
  t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/q05b.sock --budget timeout_s=3600 \
    --out $out/issue5-train16-s8.jsonl --dataset gsm8k-train --sample 16 --seed 1 --solve-seed $solve_seed \
    --strategy quiet-star:when=entropy,mixing=entropy,weight=0.5 >> $out/queue5-s8.log 2>&1
  echo "$(date +%T) train16 quiet-star entropy solve seed $solve_seed ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s8
done
kill $daemon
kill -CONT $faithful
echo "$(date +%T) resumed the faithful daemon (after part 5)" >> $out/progress-s8
