#!/usr/bin/env bash
# Session 7 measurements on the release build of fb4deb4 (the build session 6's width-16
# runs used; later commits change only how fast a prompt is tokenized).
# 1. #4: rebase width 16 with self-eval resumes on the 32-problem train subset (seed 0).
# 2. #5: the whole 16-problem train subset (seed 1) again, on one build, into a new file:
#    session 2's file mixes 7594324 with rows left partial, and quiet-star's decoding has
#    changed since (shared decodes, a step's text). Searches at width 4, so that the
#    faithful quiet-rebase (a thought at every token of every path) fits in hours and
#    rebase, faithful and gated compare at one width.
set -u
export PYTHONPATH=/tmp/eval/src/clients/python/src
bin=/tmp/eval/bin-s6b
out=/tmp/eval
start() {  # log-name, extra daemon flags
  local log=$1; shift
  $bin/strategyd --model qwen2.5-coder-0.5b-instruct-q4_k_m --socket $out/q05.sock --plugin-dir $bin \
    --threads 2 --max-timeout 3600 --log-level warning "$@" > "$out/daemon-s7-$log.log" 2>&1 &
  daemon=$!
  for _ in $(seq 1 600); do $bin/strategyctl ping --socket $out/q05.sock >/dev/null 2>&1 && return; sleep 0.5; done
}
run() {  # out-file, then bench args
  local file=$1; shift
  local t0=$(date +%s)
  python3 -m strategyd_client.bench run --socket $out/q05.sock --budget timeout_s=3600 --out "$file" "$@" >> $out/queue-s7.log 2>&1
  echo "$(date +%T) $* ended after $(( $(date +%s) - t0 ))s" >> $out/progress-s7
}
T4="--dataset gsm8k-train --sample 32 --seed 0"
T5="--dataset gsm8k-train --sample 16 --seed 1"

start issue4
run $out/issue4-train32.jsonl $T4 --strategy rebase:width=16,scorer=self-eval
kill $daemon; wait $daemon

# The learned head reads hidden states; heads are read from --heads-dir only. The head is
# session 3's early-stopped one (12 train problems outside both subsets, seed 2).
start issue5 --hidden-states --heads-dir $out/heads
for spec in greedy rebase:width=4,scorer=arith quiet-star:when=entropy,mixing=entropy,weight=0.5 \
    quiet-star:mixing=learned,head=head-05-es.json quiet-star \
    quiet-rebase:width=4,scorer=arith,variant=gated quiet-rebase:width=4,scorer=arith,variant=faithful; do
  run $out/issue5-train16-s7.jsonl $T5 --strategy "$spec"
done
kill $daemon
echo "$(date +%T) queue done" >> $out/progress-s7
