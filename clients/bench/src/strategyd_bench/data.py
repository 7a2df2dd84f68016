"""The data sets a run solves: GSM8K, SVAMP and MATH-500 as fetched into the cache, a
problem's gold answer normalized for grading, and the seeded selection of problems."""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from . import cache
from .errors import UsageError
from .grading import gsm8k_gold, number_text

DATASETS = ("gsm8k-test", "gsm8k-train", "svamp", "math500")
DATA_PACKAGE = cache.DATA_PACKAGE
# After each MATH-500 problem: the strategies' shared prompt asks for "The answer is N."
# with N a number, and MATH's answers are often not numbers (`\sqrt{2}`, intervals). The
# daemon reads such an answer, in a \boxed{} or after "The answer is", as an expression.
# No example: a small model answers with the example.
MATH_INSTRUCTION = "\n\nIf the answer is not a number, give it exactly, in LaTeX between dollar signs."


@dataclass(frozen=True)
class Problem:
    id: int  # the line's index in the data set file
    text: str
    gold: str
    source_id: Optional[str]  # the data set's own id (SVAMP's ID, MATH-500's unique_id)

    @property
    def text_sha256(self) -> str:
        """The text the daemon is sent, fingerprinted: records keep it, so that a resumed run
        does not take a record of another text (a data set or instruction that changed)."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def default_data_dir() -> Path:
    return cache.data_dir(DATA_PACKAGE)


def _problem(dataset: str, index: int, row: Dict[str, Any]) -> Problem:
    if dataset.startswith("gsm8k"):
        return Problem(index, row["question"], gsm8k_gold(row["answer"]), None)
    if dataset == "svamp":
        body = row["Body"].strip()
        if body and not body.endswith((".", "?", "!")):
            body += "."  # some bodies lack their full stop before the question
        return Problem(index, f"{body} {row['Question'].strip()}", number_text(row["Answer"]), str(row["ID"]))
    return Problem(index, row["problem"] + MATH_INSTRUCTION, str(row["answer"]), row.get("unique_id"))


def load_dataset(dataset: str, data_dir: Path) -> List[Problem]:
    path = data_dir / f"{dataset}.jsonl"
    if not path.is_file():
        raise UsageError(f"{path} not found: fetch the data with scripts/setup, or pass --data-dir")
    problems: List[Problem] = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                problems.append(_problem(dataset, len(problems), json.loads(line)))
    return problems


def select_problems(problems: Sequence[Problem], sample: Optional[int], seed: int, offset: int,
                    limit: Optional[int]) -> List[Problem]:
    """A seeded sample (sorted indices), then --offset and --limit within it."""
    indices = list(range(len(problems)))
    if sample is not None:
        if not 0 < sample <= len(problems):
            raise UsageError(f"--sample {sample}: the data set has {len(problems)} problems")
        indices = sorted(random.Random(seed).sample(indices, sample))
    indices = indices[offset:]
    if limit is not None:
        indices = indices[:limit]
    return [problems[index] for index in indices]
