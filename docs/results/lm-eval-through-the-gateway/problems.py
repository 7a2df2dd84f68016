"""Writes the problems strategyd-bench solves with --dataset gsm8k-test --sample 128
--seed 0 --limit 32 (the paper preset's first 32) as a JSON-lines file, and an
lm-evaluation-harness task that reads them, into FOLDER: lm-eval fetches nothing.

    python3 problems.py FOLDER
"""
import json
import sys
from pathlib import Path

from strategyd_bench.data import default_data_dir, load_dataset, select_problems

HERE = Path(__file__).resolve().parent


def main() -> None:
    folder = Path(sys.argv[1])
    rows = [json.loads(line) for line in (default_data_dir() / "gsm8k-test.jsonl").read_text("utf-8").splitlines() if line.strip()]
    # The harness's own selection, so both tools solve the same problems in the same order.
    chosen = select_problems(load_dataset("gsm8k-test", default_data_dir()), 128, 0, 0, 32)
    with open(folder / "problems.jsonl", "w", encoding="utf-8") as out:
        for problem in chosen:
            out.write(json.dumps({"problem_id": problem.id, **rows[problem.id]}) + "\n")
    task = (HERE / "gsm8k-strategyd.yaml").read_text("utf-8").replace("PROBLEMS", str(folder / "problems.jsonl"))
    (folder / "gsm8k-strategyd.yaml").write_text(task, "utf-8")


if __name__ == "__main__":
    main()
