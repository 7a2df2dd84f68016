#!/usr/bin/env bash
# Session 10, part 2: the Natalia problem (GSM8K train 0, gold 72) on the default model,
# by the paper's combination as it is (quiet-rebase variant=faithful), at width 4 (width
# 16 was stopped after 6.5 minutes in session 5), and by rebase at the same width as its
# peer. Release build of this repository at 43cecbd (its scripts/setup). Alone on the cores.
set -u
bin=/tmp/eval/paper/.build/release
out=/work/main/docs/results/session10/natalia15
sock=/tmp/eval/q15.sock
mkdir -p $out
$bin/strategyd --model qwen2.5-coder-1.5b-instruct-q4_k_m --socket $sock --plugin-dir $bin \
  --threads 2 --max-timeout 3600 --log-level warning > /tmp/eval/daemon-s10-natalia.log 2>&1 &
daemon=$!
for _ in $(seq 1 600); do $bin/strategyctl ping --socket $sock >/dev/null 2>&1 && break; sleep 0.5; done
problem="Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?"
for params in "variant=faithful" ""; do
  name=quiet-rebase; [ -z "$params" ] && name=rebase
  args=(-p width=4 -p scorer=arith); [ -n "$params" ] && args+=(-p "$params")
  file=$out/$name-width-4-scorer-arith${params:+-${params//=/-}}.json
  $bin/strategyctl solve --socket $sock --json --timeout 3600 -s $name "${args[@]}" "$problem" > $file
  echo "$(date +%T) $name $params: exit $?" >> /tmp/eval/progress-s10
done
kill $daemon
