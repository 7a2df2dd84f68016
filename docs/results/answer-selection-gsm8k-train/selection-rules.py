"""Selection rules over the same 8 samples, offline (no model calls): self-consistency,
best-of-n with arith and best-of-n with logprob drew identical samples (same seeds), and
each record keeps every candidate's answer and score. GSM8K train, seed 0, 0.5B model.

    python3 docs/results/answer-selection-gsm8k-train/selection-rules.py \
        docs/results/parameter-choices-gsm8k-train/train32.jsonl
"""
import json
import sys
from collections import Counter, defaultdict

ARITH = "best-of-n:n=8,scorer=arith@timeout_s=3600"
LOGPROB = "best-of-n:n=8,scorer=logprob@timeout_s=3600"
SELF_EVAL = "best-of-n:n=8,scorer=self-eval@timeout_s=3600"


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


records = defaultdict(dict)
for line in open(sys.argv[1], encoding="utf-8"):
    record = json.loads(line)
    if record.get("error") is None:
        records[record["spec"]][record["problem_id"]] = record

right = Counter()
# Per scorer, (right sample's score, wrong sample's score) pairs of the same problem.
pairs = {spec: [] for spec in (ARITH, LOGPROB, SELF_EVAL)}
for problem, record in records[ARITH].items():
    gold = number(record["gold"])
    answers = [number(c["answer"]) for c in record["candidates"]]
    for spec in pairs:
        candidates = records[spec][problem]["candidates"]
        assert answers == [number(c["answer"]) for c in candidates], "not the same samples"
        sample_scores = [c["score"] or 0 for c in candidates]
        pairs[spec] += [(sample_scores[i], sample_scores[j]) for i in range(len(answers)) if answers[i] == gold
                        for j in range(len(answers)) if answers[j] != gold]
    arith = [c["score"] or 0 for c in record["candidates"]]
    logprob = [c["score"] or 0 for c in records[LOGPROB][problem]["candidates"]]
    self_eval = [c["score"] or 0 for c in records[SELF_EVAL][problem]["candidates"]]
    votes = Counter(a for a in answers if a is not None)
    weighted = defaultdict(float)
    for answer, score in zip(answers, arith):
        if answer is not None:
            weighted[answer] += score
    top = max(arith)
    tied = Counter(answers[i] for i in range(len(answers)) if arith[i] == top and answers[i] is not None)
    picks = {
        "any of the 8 (coverage)": gold if gold in answers else None,
        "majority vote (self-consistency)": votes.most_common(1)[0][0] if votes else None,
        "max arith (best-of-n default)": answers[max(range(len(answers)), key=lambda i: (arith[i], -i))],
        "arith-weighted vote": max(weighted, key=weighted.get) if weighted else None,
        "vote among the max-arith samples": tied.most_common(1)[0][0] if tied else None,
        "max arith, ties by logprob": answers[max(range(len(answers)), key=lambda i: (arith[i], logprob[i]))],
        "max logprob": answers[max(range(len(answers)), key=lambda i: (logprob[i], -i))],
        "max self-eval": answers[max(range(len(answers)), key=lambda i: (self_eval[i], -i))],
    }
    for rule, pick in picks.items():
        right[rule] += pick is not None and pick == gold

print(f"{len(records[ARITH])} problems; correct answers per selection rule over the same samples:")
for rule, count in right.items():
    print(f"  {count:2d}  {rule}")
print("How often each scorer ranks a right sample above a wrong one of the same problem (ties count half;"
      " 0.5 is chance):")
for spec, scored_pairs in pairs.items():
    wins = sum((right_score > wrong_score) + 0.5 * (right_score == wrong_score) for right_score, wrong_score in scored_pairs)
    print(f"  {wins / len(scored_pairs):.3f}  {spec.split('scorer=')[1].split('@')[0]} ({len(scored_pairs)} pairs)")
