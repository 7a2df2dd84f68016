"""Seeded solves of the same problems at two concurrencies, problem by problem: how many
texts, answers and candidate lists (the samples a vote counted, with their scores) are
identical, and the wall clock of each run (first record's start to last record's end). No
model calls: it reads the run files.

    python3 docs/results/reproducibility-under-load/compare.py ALONE.jsonl LOADED.jsonl
"""
import json
import sys
from datetime import datetime


def load(path):
    with open(path, encoding="utf-8") as f:
        return {record["problem_id"]: record for record in map(json.loads, f) if record.get("error") is None}


def clock(records):
    """Seconds from the first solve's start to the last one's end (records carry end times)."""
    ends = [datetime.fromisoformat(r["time"]).timestamp() for r in records.values()]
    starts = [end - r["metrics"]["wall_s"] for end, r in zip(ends, records.values())]
    return max(ends) - min(starts)


def main():
    alone, loaded = load(sys.argv[1]), load(sys.argv[2])
    common = sorted(alone.keys() & loaded.keys())
    texts = sum(alone[k]["text"] == loaded[k]["text"] for k in common)
    answers = sum(alone[k]["answer"] == loaded[k]["answer"] for k in common)
    candidates = sum(alone[k]["candidates"] == loaded[k]["candidates"] for k in common)
    solved = [sum(bool(run[k]["correct"]) for k in common) for run in (alone, loaded)]
    modes = {str(r["backend"].get("deterministic", False)).lower() for run in (alone, loaded) for r in run.values()}
    print(f"{len(common)} problems (deterministic: {', '.join(sorted(modes))}): identical texts {texts}, "
          f"identical answers {answers}, identical candidate lists {candidates}; "
          f"solved {solved[0]} alone, {solved[1]} under load")
    print(f"wall clock: {clock(alone):.0f} s alone, {clock(loaded):.0f} s under load "
          f"({clock(alone) / clock(loaded):.2f}x problems per hour)")


if __name__ == "__main__":
    main()
