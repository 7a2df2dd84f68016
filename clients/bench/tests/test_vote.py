"""The vote: the Python rule against the cases the daemon's vote is held to
(Tests/cases/vote.json), and the report reading the tallies candidates carry."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

from strategyd_bench.report import plain_vote, recorded_tallies, top_scored, weighted_vote
from strategyd_bench.vote import vote

CASES = json.loads((Path(__file__).resolve().parents[3] / "Tests" / "cases" / "vote.json").read_text("utf-8"))


def test_the_cases_cover_the_rule() -> None:
    assert len(CASES) >= 20 and len({case["name"] for case in CASES}) == len(CASES)
    assert {case["mode"] for case in CASES} == {"plain", "weighted"}
    assert any(case["chosen"] == -1 for case in CASES) and any(case["weights"] is None for case in CASES)
    assert any("" in case["answers"] for case in CASES) and any(None in case["answers"] for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["name"])
def test_vote_follows_the_shared_cases(case: Dict[str, Any]) -> None:
    chosen, tallies = vote(case["answers"], case["weights"], case["mode"])
    assert chosen == case["chosen"]
    assert [votes for votes, _ in tallies] == case["votes"]
    assert [weight for _, weight in tallies] == pytest.approx(case["weights_out"], abs=1e-9)


def test_vote_refuses_a_mode_or_weights_it_does_not_know() -> None:
    with pytest.raises(ValueError):
        vote(["1"], None, "approval")
    with pytest.raises(ValueError):
        vote(["1", "2"], [1.0])


def candidates(answers: Sequence[Optional[str]], scores: Optional[Sequence[Optional[float]]] = None,
               tallies: Optional[Sequence[Tuple[int, float]]] = None) -> List[Dict[str, Any]]:
    """Candidates as records hold them; with `tallies`, as the daemon's vote left them."""
    listed = []
    for index, answer in enumerate(answers):
        candidate: Dict[str, Any] = {"answer": answer, "score": None if scores is None else scores[index], "votes": None}
        if tallies is not None:
            candidate["votes"], candidate["vote_weight"] = tallies[index]
        listed.append(candidate)
    return listed


def test_recorded_tallies_only_where_every_candidate_carries_both() -> None:
    assert recorded_tallies(candidates(["1", "2"], tallies=[(1, 0.5), (1, 2)])) == [(1, 0.5), (1, 2.0)]
    older = candidates(["1", "1"])
    for candidate in older:  # records of solves before candidates carried vote_weight
        candidate["votes"] = 2
    assert recorded_tallies(older) is None
    mixed = candidates(["1", "2"], tallies=[(1, 1.0), (1, 1.0)])
    mixed[1]["vote_weight"] = None
    assert recorded_tallies(mixed) is None
    # best-of-n votes over its scored samples only: an answer with no votes was left out.
    partial = candidates(["1", "2"], tallies=[(1, 0.5), (0, 0.0)])
    assert recorded_tallies(partial) is None


def test_the_report_reads_the_recorded_tallies() -> None:
    # Recorded tallies other than a recount would give: the report goes by what the daemon
    # counted, with the rule's tie-breaks over the record's candidates.
    recorded = candidates(["1", "2", "2"], scores=[0.5, 0.25, 0.25], tallies=[(3, 0.5), (2, 0.75), (2, 0.75)])
    assert plain_vote(recorded) == "1" and plain_vote(candidates(["1", "2", "2"])) == "2"
    assert weighted_vote(recorded) == "2"
    assert weighted_vote(candidates(["1", "2", "2"], scores=[0.5, 0.25, 0.25])) == "1"
    # Tied tallies: the better best single score, then the answer seen first.
    tied = candidates(["3", "6", "6", "3"], scores=[0.25, 0.5, 0.25, 0.5], tallies=[(2, 0.75)] * 4)
    assert weighted_vote(tied) == "3" and plain_vote(tied) == "3"


def test_where_the_tallies_agree_with_a_recount_reading_them_changes_nothing() -> None:
    scored = [(["2", "1", "1"], [0.9, 0.6, 0.6]), (["1", "2", "2"], [0.9, 0.5, 0.5]),
              (["3", "6", "6", "3"], [0.25, 0.5, 0.25, 0.5]), ([None, "4", "", "4"], [1.0, 0.25, 0.75, 0.5]),
              ([None, None], [0.5, 0.25])]
    for answers, scores in scored:
        older = candidates(answers, scores)
        plain = candidates(answers, scores, vote(answers)[1])
        weighted = candidates(answers, scores, vote(answers, scores, "weighted")[1])
        assert plain_vote(plain) == plain_vote(older)
        assert weighted_vote(weighted) == weighted_vote(older)


def test_best_of_n_s_weighted_selection_votes_among_the_scored_candidates() -> None:
    # The unscored "7"s (a budget stopped the solve before scoring them) do not vote.
    listed = candidates(["7", "5", "7", "7"], scores=[None, 0.5, None, None])
    assert weighted_vote(listed) == "5" and plain_vote(listed) == "7"
    # Scored candidates without an answer: the best-scored one is chosen, and it has none.
    assert weighted_vote(candidates([None, "5", None], scores=[0.75, None, 0.5])) is None
    # Nothing scored: the plain vote over all, as the plugin falls back to; so for select=max.
    unscored = candidates(["4", "9", "9"])
    assert weighted_vote(unscored) == top_scored(unscored) == plain_vote(unscored) == "9"
    assert plain_vote([]) is None and plain_vote(candidates(["", None])) is None
