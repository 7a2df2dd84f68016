"""Why REBASE trails best-of-n here: how many problems each condition's final candidates
could have answered (coverage: the gold answer among them), how many distinct answers
they hold, and what each selection rule picks from them. Offline, from the run file's
candidates (answer, score; `votes` is the number of candidates with that answer).

    python3 docs/results/answer-selection-gsm8k-train/coverage.py \
        docs/results/parameter-choices-gsm8k-train/train32.jsonl
"""
import json
import sys
from collections import defaultdict


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


conditions = defaultdict(list)
for line in open(sys.argv[1], encoding="utf-8"):
    record = json.loads(line)
    if record.get("error") is None and record.get("candidates"):
        conditions[record["spec"]].append(record)

print(f"{'condition':58} {'n':>3} {'coverage':>8} {'distinct':>8} {'max score':>9} {'weighted':>8} {'majority':>8}")
for spec, records in sorted(conditions.items()):
    coverage = distinct = by_max = by_weight = by_majority = 0
    for record in records:
        gold = number(record["gold"])
        candidates = [(number(c["answer"]), c.get("score") or 0) for c in record["candidates"]]
        answers = [answer for answer, _ in candidates if answer is not None]
        weight, count = defaultdict(float), defaultdict(int)
        for answer, score in candidates:
            if answer is not None:
                weight[answer] += score
                count[answer] += 1
        coverage += gold in answers
        distinct += len(set(answers))
        by_max += max(candidates, key=lambda c: c[1])[0] == gold
        by_weight += bool(weight) and max(weight, key=weight.get) == gold
        by_majority += bool(count) and max(count, key=count.get) == gold
    print(f"{spec:58} {len(records):>3} {coverage:>8} {distinct / len(records):>8.1f} {by_max:>9} {by_weight:>8} {by_majority:>8}")
