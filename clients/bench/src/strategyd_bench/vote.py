"""The vote over a solve's candidates: the rule the daemon's plugins vote by (Sources/Answers,
offered to plugins by the host), stated again in Python for records whose candidates do
not carry their tallies. Both are held to the same cases, Tests/cases/vote.json.

- A candidate whose answer is None or "" does not vote. Weights default to 1.
- Each answer's tally is how many candidates give it (votes) and the sum of their weights.
- The winner has the largest tally: votes in "plain" mode, weight in "weighted" mode; ties
  go to the answer whose best single candidate weight is larger, then to the answer seen
  first.
- The chosen candidate is the winner's candidate with the largest weight, the first of
  equals. With no answer at all, the candidate with the largest weight (the first of
  equals); with no candidate, -1.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

MODES = ("plain", "weighted")

# (votes, weight) of one candidate's answer; (0, 0.0) for a candidate without one.
Tally = Tuple[int, float]


def _votes(answer: Optional[str]) -> bool:
    return answer is not None and answer != ""


def tallies_of(answers: Sequence[Optional[str]], weights: Sequence[float]) -> List[Tally]:
    """Each candidate's answer's tally."""
    totals: Dict[str, Tuple[int, float]] = {}
    for answer, weight in zip(answers, weights):
        if _votes(answer):
            votes, total = totals.get(answer, (0, 0.0))  # type: ignore[arg-type]
            totals[answer] = (votes + 1, total + weight)  # type: ignore[index]
    return [totals[answer] if _votes(answer) else (0, 0.0) for answer in answers]  # type: ignore[index]


def choose(answers: Sequence[Optional[str]], weights: Sequence[float], tallies: Sequence[Tally],
           mode: str) -> int:
    """The chosen candidate, given every candidate's tally: computed by tallies_of, or as
    the daemon reported them. The tie-breaks read only answers and weights."""
    if mode not in MODES:
        raise ValueError(f"vote mode {mode!r} is not one of {', '.join(MODES)}")
    if not answers:
        return -1
    first: Dict[str, int] = {}  # each answer's first candidate, which stands for its tally
    best: Dict[str, int] = {}   # each answer's heaviest candidate, the first of equals
    for index, answer in enumerate(answers):
        if not _votes(answer):
            continue
        first.setdefault(answer, index)  # type: ignore[arg-type]
        if answer not in best or weights[index] > weights[best[answer]]:  # type: ignore[index]
            best[answer] = index  # type: ignore[index]
    if not best:
        return max(range(len(answers)), key=lambda index: (weights[index], -index))
    measure = 0 if mode == "plain" else 1
    winner = max(first, key=lambda answer: (tallies[first[answer]][measure], weights[best[answer]], -first[answer]))
    return best[winner]


def vote(answers: Sequence[Optional[str]], weights: Optional[Sequence[float]] = None,
         mode: str = "plain") -> Tuple[int, List[Tally]]:
    """(chosen, tallies): the chosen candidate's index (-1 with no candidate) and each
    candidate's (votes, weight)."""
    if weights is None:
        weights = [1.0] * len(answers)
    elif len(weights) != len(answers):
        raise ValueError(f"{len(weights)} weights for {len(answers)} answers")
    weights = [float(weight) for weight in weights]
    tallies = tallies_of(answers, weights)
    return choose(answers, weights, tallies, mode), tallies
