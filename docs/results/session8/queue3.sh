#!/usr/bin/env bash
# Session 8, part 3 (after part 2; part 1 paused again meanwhile): the three cheaper
# conditions of part 2's comparison on a second, larger train subset, issue 4's 32
# problems (seed 0), so the quiet-star, rebase and anchored figures rest on 48 problems,
# not 16. Same build as part 2 (95853d5, /tmp/eval/bin-s8).
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s8
out=/tmp/eval
cd /tmp/eval/src
while ! grep -q "resumed the faithful daemon" $out/progress-s8 2>/dev/null; do sleep 10; done
faithful=$(pgrep -f "strategyd --model .* --socket $out/q05.sock")
kill -STOP $faithful
echo "$(date +%T) paused the faithful daemon ($faithful) again" >> $out/progress-s8
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05b.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > $out/daemon-s8-train32.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05b.sock >/dev/null 2>&1 && break; sleep 0.5; done
for spec in quiet-star:when=entropy,mixing=entropy,weight=0.5 rebase:width=4,scorer=arith \
    quiet-rebase:width=4,scorer=arith,variant=anchored,weight=0.5; do
  t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/q05b.sock --budget timeout_s=3600 \
    --out $out/issue5-train32-s8.jsonl --dataset gsm8k-train --sample 32 --seed 0 --strategy "$spec" >> $out/queue3-s8.log 2>&1
  echo "$(date +%T) train32 $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s8
done
kill $daemon
kill -CONT $faithful
echo "$(date +%T) resumed the faithful daemon (after part 3)" >> $out/progress-s8
