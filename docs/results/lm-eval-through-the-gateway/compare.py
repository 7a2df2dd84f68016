"""lm-eval's grades beside strategyd-bench's, problem by problem: comparison.txt.

For each spec: problems solved as strategyd-bench grades them (its answer extractor and
numeric comparison) and as lm-eval's gsm8k filters do (strict-match: a "#### N" line;
flexible-extract: the last number in the text), whether the two tools got the same text,
and every problem where the graders disagree, with what each read.
"""
import json
from collections import defaultdict
from pathlib import Path

from strategyd_bench.stats import sign_test, wilson_interval

HERE = Path(__file__).resolve().parent


def main() -> None:
    bench = defaultdict(dict)
    for line in (HERE / "strategyd-bench.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        if "spec" in record:
            bench[record["spec"]][record["problem_id"]] = record
    print("lm-evaluation-harness 0.4.13 (local-chat-completions through strategyd-gateway) beside")
    print("strategyd-bench, same daemon (--deterministic), same 32 GSM8K test problems, seed 0.\n")
    header = f"{'spec':<24} {'strategyd-bench':>16} {'lm-eval flexible':>17} {'lm-eval strict':>15} {'same text':>10}"
    print(header)
    print("-" * len(header))
    notes = []
    for folder in sorted((HERE / "lm-eval").iterdir()):
        samples = {}
        for path in folder.rglob("samples_gsm8k-strategyd_*.jsonl"):
            for line in path.read_text("utf-8").splitlines():
                sample = json.loads(line)
                samples.setdefault(sample["doc"]["problem_id"], {})[sample["filter"]] = sample
        spec = json.loads(next(folder.rglob("results_*.json")).read_text("utf-8"))["config"]["model_args"]
        spec = dict(item.split("=", 1) for item in spec.split(","))["model"] if isinstance(spec, str) else spec["model"]
        records = bench[spec]
        ids = sorted(samples)
        assert set(ids) == set(records), f"{spec}: the tools solved different problems"
        bench_ok = [bool(records[i]["correct"]) for i in ids]
        flexible = [samples[i]["flexible-extract"]["exact_match"] == 1.0 for i in ids]
        strict = [samples[i]["strict-match"]["exact_match"] == 1.0 for i in ids]
        same = sum(samples[i]["flexible-extract"]["resps"][0][0] == records[i]["text"] for i in ids)

        def cell(values):
            low, high = wilson_interval(sum(values), len(values))
            return f"{sum(values)}/{len(values)} [{low:.2f},{high:.2f}]"

        print(f"{spec:<24} {cell(bench_ok):>16} {cell(flexible):>17} {cell(strict):>15} {same:>7}/{len(ids)}")
        better, worse = sum(f and not b for b, f in zip(bench_ok, flexible)), sum(b and not f for b, f in zip(bench_ok, flexible))
        notes.append(f"\n{spec}: flexible-extract right where strategyd-bench is wrong on {better}, wrong where it is right "
                     f"on {worse} (exact sign test p = {sign_test(better, worse):.3f})")
        for i, b, f in zip(ids, bench_ok, flexible):
            if b != f:
                text = records[i]["text"].strip().replace("\n", " ")
                notes.append(f"  problem {i}: gold {records[i]['gold']}; strategyd-bench read {records[i]['answer']!r} "
                             f"({'right' if b else 'wrong'}), flexible-extract read "
                             f"{samples[i]['flexible-extract']['filtered_resps'][0]!r} ({'right' if f else 'wrong'}); "
                             f"the text ends: ...{text[-120:]}")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
