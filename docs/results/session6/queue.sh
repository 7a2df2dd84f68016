#!/usr/bin/env bash
# Session 6 measurements: the last two of issue 4's conditions on the 0.5B model, on the
# 32-problem GSM8K train subset (seed 0). self-eval first: it is the cheaper of the two
# (width 8: 2.0 T FLOPs per problem against logprob's 2.9 T), so it is likelier to finish
# in this sitting. strategyd-bench fsyncs every finished problem and skips finished ones,
# so the run file of sessions 2-5 resumes. Binaries are sessions 5's release build of
# 05c62ea, the commit every other record of this file names.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s5
out=/tmp/eval
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > "$out/daemon-s6-q05.log" 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && break; sleep 0.5; done
T4="--dataset gsm8k-train --sample 32 --seed 0 --out $out/issue4-train32.jsonl --socket $out/q05.sock --budget timeout_s=3600"
for spec in rebase:width=16,scorer=self-eval rebase:width=16,scorer=logprob; do
  t0=$(date +%s)
  python3 -m strategyd_client.bench run $T4 --strategy $spec >> $out/queue-s6.log 2>&1
  echo "$(date +%T) $spec ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s6
done
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s6
