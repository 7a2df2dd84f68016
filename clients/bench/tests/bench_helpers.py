"""Records and run files as the harness writes them, for the harness's tests."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

CLIENTS = Path(__file__).resolve().parents[2]


def bench_env() -> Dict[str, str]:
    """The environment to run `python3 -m strategyd_bench` in, from both source trees."""
    env = dict(os.environ)
    sources = [str(CLIENTS / "bench" / "src"), str(CLIENTS / "python" / "src")]
    env["PYTHONPATH"] = os.pathsep.join([*sources, *filter(None, [env.get("PYTHONPATH")])])
    return env


def write_jsonl(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def read_lines(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def record(spec: str, problem_id: int, correct: Optional[bool], flops: float = 0.0, wall_s: float = 0.0,
           tokens: int = 0, model: str = "m", concurrency: int = 1, stopped_by: Optional[str] = None) -> Dict[str, Any]:
    name, _, params = spec.partition(":")
    failed = correct is None
    return {
        "dataset": "gsm8k-test", "problem_id": problem_id, "source_id": None, "spec": spec,
        "params": dict(item.split("=") for item in params.split(",")) if params else {},
        "budget": {}, "seed": 0, "gold": "1", "strategy": {"name": name, "version": "1.0.0", "generation": 1},
        "answer": None if failed else ("1" if correct else "2"), "correct": correct,
        "budget_exhausted": None if failed else stopped_by is not None, "stopped_by": stopped_by,
        "metrics": None if failed else {"flops": flops, "wall_s": wall_s, "evaluated_tokens": tokens},
        "error": {"type": "PluginFailed", "code": -32001, "message": "x"} if failed else None,
        "model": {"name": model, "sha256": "ab" * 32}, "commit": "c0ffee", "dirty": False,
        "command": "strategyd-bench run --strategy greedy", "concurrency": concurrency,
        "time": "2026-01-01T00:00:00+00:00",
    }


FIXED_RECORDS = [
    record("greedy", 0, True, 1e9, 1.0, 100),
    record("greedy", 1, True, 2e9, 2.0, 200),
    record("greedy", 2, False, 3e9, 3.0, 300),
    record("greedy", 3, False, 6e9, 6.0, 600),
    record("self-consistency:k=4", 0, True, 8e9, 4.0, 800),
    record("self-consistency:k=4", 1, True, 12e9, 6.0, 1200),
    record("self-consistency:k=4", 2, None),
    record("self-consistency:k=8", 0, True, 30e9, 9.0, 3000, stopped_by="max_flops"),
    record("self-consistency:k=8", 1, False, 34e9, 11.0, 3400, stopped_by="timeout_s"),
]
