"""best-of-n's two selections over the same scored samples, problem by problem: select=max
(the best-scored sample) against select=weighted (the answer whose samples' scores sum
highest), with the exact sign test on the problems only one of them solves. No model
calls: each record keeps every sample's answer and score.

    python3 docs/results/answer-selection-gsm8k-train/max-vs-weighted.py RUN.jsonl [SPEC]
"""
import sys
from pathlib import Path

repo = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(repo / "clients/bench/src"), str(repo / "clients/python/src")]
from strategyd_bench.grading import is_correct  # noqa: E402 (the path is set above)
from strategyd_bench.report import plain_vote, read_run_file, sign_test, top_scored, weighted_vote  # noqa: E402

spec = sys.argv[2] if len(sys.argv) > 2 else "best-of-n:n=8,scorer=arith"
records = [r for r in read_run_file(Path(sys.argv[1])) if r["spec"] == spec and r.get("error") is None]
solved = {name: {r["problem_id"] for r in records if is_correct(select(r["candidates"]), r["gold"])}
          for name, select in [("max", top_scored), ("weighted", weighted_vote), ("vote", plain_vote)]}
covered = sum(1 for r in records if any(is_correct(c.get("answer"), r["gold"]) for c in r["candidates"]))
print(f"{spec}: {len(records)} problems, coverage {covered}; solved by " +
      ", ".join(f"{name} {len(ids)}" for name, ids in solved.items()))
only_weighted, only_max = solved["weighted"] - solved["max"], solved["max"] - solved["weighted"]
print(f"weighted against max: +{len(only_weighted)} -{len(only_max)} "
      f"(exact sign test p = {sign_test(len(only_weighted), len(only_max)):.2g})")
