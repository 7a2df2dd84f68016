#!/usr/bin/env python3
"""Solve one problem with a strategy and print the answer and what it cost.

    python3 solve_one.py "What is 17 * 23?" --strategy self-consistency --params '{"k": 4}' --stream
"""
from __future__ import annotations

import argparse
import json
import sys

from strategyd_client import Budget, Client, Progress, SolveResult, StrategydError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem")
    parser.add_argument("--strategy", default="greedy")
    parser.add_argument("--params", type=json.loads, default=None, help="the strategy's params, a JSON object")
    parser.add_argument("--max-tokens", type=int, help="budget: evaluated tokens")
    parser.add_argument("--max-flops", type=float, help="budget: FLOPs")
    parser.add_argument("--timeout-s", type=float, help="budget: seconds on the daemon")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--socket", help="default: STRATEGYD_SOCKET, then the standard path")
    parser.add_argument("--stream", action="store_true", help="print progress events to stderr")
    args = parser.parse_args()

    budget = Budget(max_tokens=args.max_tokens, max_flops=args.max_flops, timeout_s=args.timeout_s)
    try:
        with Client(args.socket) as client:
            if args.stream:
                result = None
                for event in client.solve_stream(args.problem, args.strategy, args.params, budget, args.seed):
                    if isinstance(event, Progress):
                        print(f"progress: {event.event} {json.dumps(event.extra)}", file=sys.stderr)
                    result = event
                assert isinstance(result, SolveResult)
            else:
                result = client.solve(args.problem, args.strategy, args.params, budget, args.seed)
    except StrategydError as error:
        print(f"solve_one: {error}", file=sys.stderr)
        return 1

    print(result.text)
    print()
    print(f"answer: {result.answer}")
    print(f"strategy: {result.strategy.name} {result.strategy.version} (generation {result.strategy.generation})")
    metrics = result.metrics
    print(f"tokens: {metrics.evaluated_tokens} evaluated ({metrics.prompt_tokens} prompt, "
          f"{metrics.generated_tokens} generated); {metrics.flops:.3g} FLOPs; {metrics.wall_s:.2f} s"
          + ("; budget exhausted" if result.budget_exhausted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
