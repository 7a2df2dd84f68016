#!/usr/bin/env bash
# Replaces then.sh after fb4deb4 (a scorer's prompt keeps the path's own tokens): on
# GSM8K train #331, c183577 still spent 17,069 scorer tokens for 8,885 generated at width
# 16 with logprob, re-evaluating every path from its first unusually spelled token at
# every depth. Both width-16 conditions start again on a release build of fb4deb4; the
# three records made before it (two logprob on c183577, one self-eval on 05c62ea) move to
# superseded.jsonl, so that each condition is measured by one build.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s6b
out=/tmp/eval
pkill -f "bash /tmp/eval/then-s6.sh"
pkill -f "strategyd_client.bench run .*--socket /tmp/eval/q05.sock"
pkill -f "socket /tmp/eval/q05.sock"
sleep 3
python3 - <<'PY'
import json
path = "/tmp/eval/issue4-train32.jsonl"
lines = open(path).read().splitlines(keepends=True)
drop = ("rebase:width=16,scorer=logprob@", "rebase:width=16,scorer=self-eval@")
kept = [l for l in lines if not json.loads(l)["spec"].startswith(drop)]
with open("/tmp/eval/superseded-s6.jsonl", "a") as f:
    f.writelines(l for l in lines if json.loads(l)["spec"].startswith(drop))
with open(path + ".tmp", "w") as f:
    f.writelines(kept)
import os; os.replace(path + ".tmp", path)
PY
$bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > "$out/daemon-s6c-q05.log" 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && break; sleep 0.5; done
T4="--dataset gsm8k-train --sample 32 --seed 0 --socket $out/q05.sock --budget timeout_s=3600"
run() {  # out-file spec
  t0=$(date +%s)
  python3 -m strategyd_client.bench run $T4 --out "$1" --strategy "$2" >> $out/queue-s6.log 2>&1
  echo "$(date +%T) $2 ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s6
}
run $out/issue4-train32.jsonl rebase:width=16,scorer=logprob
run $out/issue4-train32.jsonl rebase:width=16,scorer=self-eval
# Width 8 with both scorers again on this build, in a file of their own (the first file
# holds 05c62ea's runs of the same specs): what the two changes save.
run $out/issue4-train32-reuse.jsonl rebase:width=8,scorer=logprob
run $out/issue4-train32-reuse.jsonl rebase:width=8,scorer=self-eval
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s6
