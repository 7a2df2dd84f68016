"""What greedy's certainty signals say on GSM8K train, per model.

Every run file (escalate's details carry greedy's four signals; greedy's candidate is the
one with a score): how well each signal separates greedy's right answers from its wrong
ones, as the area under the ROC curve (the
chance that a right answer is surer than a wrong one, ties half), and, escalating the
least sure quarter, half and three quarters, the threshold and greedy's accuracy on the
problems escalated and on those kept.

escalation-MODEL.jsonl (escalate with a threshold no solve reaches: every problem
escalates): a problem's outcome at threshold t is greedy's (answer and FLOPs) when its
signal is at least t, else the escalated vote's; the escalated vote does not depend on t,
so one run gives accuracy and mean FLOPs at every threshold.

    PYTHONPATH=clients/bench/src python3 docs/results/certainty-signals-gsm8k-train/analyze.py \
        > docs/results/certainty-signals-gsm8k-train/analysis.txt
"""
from pathlib import Path

from strategyd_bench.grading import is_correct
from strategyd_bench.report import deduplicated
from strategyd_bench.runfile import read_run_file

HERE = Path(__file__).resolve().parent
SIGNALS = ("lowest_group", "tail", "answer_margin", "certainty")
SHARES = (0, 0.25, 0.5, 0.6, 0.75, 0.9, 1)
DEFAULT_THRESHOLD = 5.8


def read(path):
    records = [r for r in deduplicated(read_run_file(path)) if r.get("error") is None]
    # One plugin version per file: a run resumed under another version solves its problems again.
    newest = max((r["strategy"]["version"] for r in records), key=lambda v: tuple(map(int, v.split("."))), default=None)
    records = [r for r in records if r["strategy"]["version"] == newest]
    for r in records:
        # Records written before the harness kept details hold only the signal escalate was
        # set to (lowest_group, its default), as greedy's candidate score.
        if "signals" not in (r.get("details") or {}):
            r["details"] = {"signals": {r["params"].get("signal", "lowest_group"): r["candidates"][0]["score"]}}
    return records


def auc(right, wrong):
    if not right or not wrong:
        return float("nan")
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def greedy_right(record) -> bool:
    greedy = next(c for c in record["candidates"] if c["score"] is not None)
    return is_correct(greedy["answer"], record["gold"])


def signals_table(path) -> None:
    records = read(path)
    right = sum(map(greedy_right, records))
    print(f"{path.name}: {len(records)} problems, greedy right on {right}")
    print(f"  {'signal':<14} {'AUC':>5}   escalate 25% / 50% / 75%: threshold (greedy right: escalated | kept)")
    for signal in SIGNALS:
        if any(signal not in r["details"]["signals"] for r in records):
            print(f"  {signal:<14} {'—':>5}   not recorded")
            continue
        values = [(r["details"]["signals"][signal], greedy_right(r)) for r in records]
        score = auc([v for v, ok in values if ok], [v for v, ok in values if not ok])
        cells = []
        ordered = sorted(values, key=lambda value: value[0])  # ties in the order of the file, not by outcome
        for share in (0.25, 0.5, 0.75):
            cut = int(round(share * len(ordered)))
            threshold = ordered[cut][0] if cut < len(ordered) else float("inf")
            low, high = ordered[:cut], ordered[cut:]
            rate = lambda part: f"{sum(ok for _, ok in part)}/{len(part)}"
            cells.append(f"{threshold:.3g} ({rate(low)} | {rate(high)})")
        print(f"  {signal:<14} {score:>5.2f}   " + " / ".join(cells))
    print()


def escalation_table(path) -> None:
    problems = []
    for r in read(path):
        problems.append({"signals": r["details"]["signals"], "greedy_right": greedy_right(r),
                         "greedy_flops": r["details"]["greedy_flops"], "right": bool(r["correct"]),
                         "flops": r["metrics"]["flops"], "samples": r["details"]["samples"]})
    n = len(problems)
    print(f"{path.name}: {n} problems, every one escalated; greedy right on "
          f"{sum(p['greedy_right'] for p in problems)}, the escalated vote on {sum(p['right'] for p in problems)}, "
          f"{sum(p['samples'] for p in problems) / n:.2f} samples per escalation")
    print(f"  {'signal':<14} {'escalated':>9} {'threshold':>9} {'solved':>7} {'mean FLOPs':>11}")
    for signal in ("lowest_group", "certainty"):
        ordered = sorted(problems, key=lambda p: p["signals"][signal])
        for share in SHARES:
            cut = int(round(share * n))
            threshold = ordered[cut]["signals"][signal] if cut < n else float("inf")
            solved = sum(p["right"] for p in ordered[:cut]) + sum(p["greedy_right"] for p in ordered[cut:])
            flops = (sum(p["flops"] for p in ordered[:cut]) + sum(p["greedy_flops"] for p in ordered[cut:])) / n
            print(f"  {signal:<14} {cut:>5}/{n:<3} {threshold:>9.3g} {solved:>4}/{n:<2} {flops / 1e12:>9.2f} T")
    # escalate's default (1.1.0), chosen from the signals run and the cost of an escalation.
    escalated = [p for p in problems if p["signals"]["lowest_group"] < DEFAULT_THRESHOLD]
    kept = [p for p in problems if p["signals"]["lowest_group"] >= DEFAULT_THRESHOLD]
    solved = sum(p["right"] for p in escalated) + sum(p["greedy_right"] for p in kept)
    flops = (sum(p["flops"] for p in escalated) + sum(p["greedy_flops"] for p in kept)) / n
    print(f"  {'lowest_group':<14} {len(escalated):>5}/{n:<3} {DEFAULT_THRESHOLD:>9.3g} {solved:>4}/{n:<2} "
          f"{flops / 1e12:>9.2f} T   (escalate's default threshold)")
    print()


def main() -> None:
    for path in sorted(HERE.glob("*.jsonl")):
        signals_table(path)
    for path in sorted(HERE.glob("escalation-*.jsonl")):
        escalation_table(path)


if __name__ == "__main__":
    main()
