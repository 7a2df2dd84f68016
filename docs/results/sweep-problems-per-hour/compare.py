"""Problems per hour of a sweep run one solve at a time against the same problems run
many at once, spec by spec. One at a time, the run's wall clock is the sum of its solves'
wall times; at once, from the first solve's start to the last one's end. Accuracy and mean
FLOPs per problem beside them (the FLOPs are each solve's own, so they match). No model
calls: it reads the run files, taking from the first only the problems the second holds.

    python3 docs/results/sweep-problems-per-hour/compare.py ALONE.jsonl AT-ONCE.jsonl
"""
import json
import sys
from datetime import datetime

SPECS = ("greedy", "self-consistency:k=4")


def load(path, concurrency=None):
    runs = {}
    with open(path, encoding="utf-8") as f:
        for record in map(json.loads, f):
            if record.get("error") is None and record["spec"] in SPECS and \
                    (concurrency is None or record["concurrency"] == concurrency):
                runs.setdefault(record["spec"], {})[record["problem_id"]] = record
    return runs


def clock(records, alone):
    if alone:
        return sum(r["metrics"]["wall_s"] for r in records)
    ends = [datetime.fromisoformat(r["time"]).timestamp() for r in records]
    starts = [end - r["metrics"]["wall_s"] for end, r in zip(ends, records)]
    return max(ends) - min(starts)


at_once = load(sys.argv[2])
alone = load(sys.argv[1], concurrency=1)
print("| spec | problems | concurrency | solved alone / at once | mean FLOPs alone / at once "
      "| wall clock alone | at once | problems per hour alone | at once | ratio |")
print("|---|---:|---:|---|---|---:|---:|---:|---:|---:|")
for spec in SPECS:
    together = at_once.get(spec, {})
    ids = sorted(together.keys() & alone.get(spec, {}).keys())
    if not ids:
        continue
    one = [alone[spec][i] for i in ids]
    many = [together[i] for i in ids]
    seconds = clock(one, True), clock(many, False)
    rates = [3600 * len(ids) / s for s in seconds]
    solved = [sum(bool(r["correct"]) for r in run) for run in (one, many)]
    flops = [sum(r["metrics"]["flops"] for r in run) / len(ids) for run in (one, many)]
    print(f"| {spec} | {len(ids)} | {many[0]['concurrency']} | {solved[0]} / {solved[1]} "
          f"| {flops[0] / 1e12:.2f} T / {flops[1] / 1e12:.2f} T | {seconds[0]:.0f} s | {seconds[1]:.0f} s "
          f"| {rates[0]:.0f} | {rates[1]:.0f} | {rates[1] / rates[0]:.2f}x |")
