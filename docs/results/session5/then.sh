#!/usr/bin/env bash
# After rebase width 16 with arith: REBASE's allocation temperature tuned on the train
# subset (T = 1 instead of 0.2: arith's coarse scores 0 / 0.5 / 1 make T = 0.2 put 12x the
# width on a path for half a point), then back to the queue's order.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
out=/tmp/eval
until grep -q "rebase:width=16,scorer=arith ended" $out/progress-s5; do sleep 10; done
pkill -f "bash /tmp/eval/queue-s5.sh"
sleep 1
pkill -f "strategy rebase:width=16,scorer=logprob"
T4="--dataset gsm8k-train --sample 32 --seed 0 --out $out/issue4-train32.jsonl --socket $out/q05.sock --budget timeout_s=3600"
for spec in rebase:width=8,scorer=arith,softmax_temperature=1 \
            rebase:width=16,scorer=logprob rebase:width=16,scorer=self-eval; do
  t0=$(date +%s)
  python3 -m strategyd_client.bench run $T4 --strategy $spec >> $out/queue-s5.log 2>&1
  echo "$(date +%T) $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s5
done
