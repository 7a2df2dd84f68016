#!/usr/bin/env python3
"""Run a strategy over a JSONL file of problems and write one result line per problem.

Input lines: {"question" or "problem": ..., "answer"?: ...} (GSM8K's "... #### 18" answers
are reduced to "18", numbers written as the daemon writes them). Output lines, in input
order: the problem, the expected and given answer, whether they match (graded as
strategyd-bench grades), the solution text, metrics; or the error of that problem.
Several solves run at once on one connection (--concurrency). For a benchmark, with
resume, seeded samples and a report, use strategyd-bench run.

    python3 solve_jsonl.py gsm8k-test.jsonl results.jsonl --limit 20 --params '{"max_tokens": 256}'
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import Any, Dict, List, Optional

from strategyd_bench.grading import gsm8k_gold, is_correct, number_text
from strategyd_client import AsyncClient, Budget, RPCError


def expected_answer(row: Dict[str, Any]) -> Optional[str]:
    """The gold answer by the harness's rule: after GSM8K's "####", thousands commas dropped;
    a number (SVAMP's 3.0) as the daemon writes it."""
    answer = row.get("answer")
    if answer is None:
        return None
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return number_text(answer)
    return gsm8k_gold(str(answer))


async def solve_row(client: AsyncClient, index: int, row: Dict[str, Any], args: argparse.Namespace,
                    slots: asyncio.Semaphore) -> Dict[str, Any]:
    problem = row.get("question") or row.get("problem")
    out: Dict[str, Any] = {"index": index, "problem": problem, "expected": expected_answer(row)}
    if not isinstance(problem, str):
        out["error"] = {"message": "the line has no question or problem"}
        return out
    async with slots:
        try:
            result = await client.solve(problem, args.strategy, args.params, Budget(max_tokens=args.max_tokens),
                                        args.seed, timeout=args.timeout)
        except RPCError as error:  # this problem failed; the others go on
            out["error"] = {"code": error.code, "message": error.message, "data": error.data}
            return out
    out.update(answer=result.answer, correct=is_correct(result.answer, out["expected"]) if out["expected"] else None,
               text=result.text, budget_exhausted=result.budget_exhausted,
               strategy=dataclasses.asdict(result.strategy), metrics=dataclasses.asdict(result.metrics))
    return out


async def run(args: argparse.Namespace) -> int:
    with open(args.input, encoding="utf-8") as lines:
        rows: List[Dict[str, Any]] = [json.loads(line) for line in lines if line.strip()][: args.limit]
    slots = asyncio.Semaphore(args.concurrency)
    async with AsyncClient(args.socket) as client:
        tasks = [asyncio.ensure_future(solve_row(client, i, row, args, slots)) for i, row in enumerate(rows)]
        with open(args.output, "w", encoding="utf-8") as sink:
            for task in tasks:  # written in input order as each is done
                out = await task
                sink.write(json.dumps(out, ensure_ascii=False) + "\n")
                sink.flush()
                mark = "error" if "error" in out else {True: "right", False: "wrong", None: "-"}[out["correct"]]
                print(f"[{out['index'] + 1}/{len(rows)}] {mark}: {out.get('answer')!r} "
                      f"(expected {out['expected']!r})", file=sys.stderr)
    graded = [task.result() for task in tasks if task.result().get("correct") is not None]
    right = sum(1 for out in graded if out["correct"])
    tokens = sum(task.result().get("metrics", {}).get("evaluated_tokens", 0) for task in tasks)
    print(f"{right}/{len(graded)} right; {tokens} tokens evaluated", file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--strategy", default="greedy")
    parser.add_argument("--params", type=json.loads, default=None, help="the strategy's params, a JSON object")
    parser.add_argument("--max-tokens", type=int, help="budget per problem: evaluated tokens")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--concurrency", type=int, default=2, help="solves in flight at once")
    parser.add_argument("--timeout", type=float, help="seconds to wait for each problem")
    parser.add_argument("--socket", help="default: STRATEGYD_SOCKET, then the standard path")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
