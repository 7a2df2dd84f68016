"""CoT-decoding's aggregate over its first k branches, for every k up to the run's, counted
offline: the branches are recorded likeliest first token first, so the first k of a k = 10
solve are the branches a k-branch solve draws (up to the rounding of other batches, which
changes greedy continuations from run to run). Cost at k is estimated, not measured
(records keep the branches' answers, not their lengths): the prompt's share of the
solve's FLOPs plus k/width of the branches'. Prints solved and the estimate per k, and
the exact sign test of each k against the run's full k.

    python3 docs/results/cot-decoding-branches-gsm8k-train/branches.py RUN.jsonl [SPEC]
"""
import sys
from pathlib import Path

repo = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(repo / "clients/bench/src"), str(repo / "clients/python/src")]
from strategyd_bench.grading import is_correct  # noqa: E402 (the path is set above)
from strategyd_bench.report import read_run_file, sign_test, weighted_vote  # noqa: E402

spec = sys.argv[2] if len(sys.argv) > 2 else "cot-decoding"
records = [r for r in read_run_file(Path(sys.argv[1])) if r["spec"] == spec and r.get("error") is None]
width = min(len(r["candidates"]) for r in records)


def estimated_flops(record, k):
    metrics = record["metrics"]
    tokens = metrics["prompt_tokens"] + metrics["generated_tokens"] * k / len(record["candidates"])
    return metrics["flops"] * tokens / metrics["evaluated_tokens"]


solved = {k: {r["problem_id"] for r in records if is_correct(weighted_vote(r["candidates"][:k]), r["gold"])}
          for k in range(1, width + 1)}
print(f"{spec}: {len(records)} problems, {width} branches each")
print("k  solved  est. T FLOPs/problem  against k=%d" % width)
for k, ids in solved.items():
    gained, lost = ids - solved[width], solved[width] - ids
    flops = sum(estimated_flops(r, k) for r in records) / len(records)
    print(f"{k:<2} {len(ids):>6}  {flops / 1e12:>20.2f}  +{len(gained)} -{len(lost)} (p = {sign_test(len(gained), len(lost)):.2g})")
