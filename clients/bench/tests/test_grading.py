"""Grading: the Python grader's own cases, and the answer cases it shares with the daemon's
extractor (Tests/cases/answers.json)."""
from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from strategyd_bench.grading import gsm8k_gold, is_correct, number_text, parse_number


@pytest.mark.parametrize("answer, gold, correct", [
    ("72", "72", True),
    ("72", "72.0", True),
    ("1000", "1,000", True),
    ("1234567", "1,234,567", True),
    ("10000", "10{,}000", True),
    ("10000", "10\\,000", True),
    ("-5", "-5", True),
    ("-0.5", "-.5", True),
    ("0.25", "1/4", True),
    ("1/3", "\\frac{1}{3}", True),
    ("-1/2", "-\\dfrac{1}{2}", True),
    ("0.3333333", "1/3", True),     # a rounding of 1/3 within the relative tolerance of 1e-6
    ("0.3333", "1/3", False),
    ("0.1428571", "\\frac{1}{7}", True),
    ("333333", "\\frac{1000000}{3}", False),  # an integer rounds nothing
    ("1450001", "1450000", False),  # integers, and decimals that end, compare exactly
    ("72.0000001", "72", False),
    ("0.5", "\\frac{1}{2}", True),
    pytest.param("1" * 5000, "72", False, id="5000 digits"),  # not read as a number (Python's 4300-digit limit)
    ("18.9", "\\$18.90", True),
    ("50", "50\\%", True),
    ("10", "10\\text{ cm}", True),
    ("90", "90^\\circ", True),
    ("5", "x=5", True),
    ("145", number_text(145.0), True),
    ("73", "72", False),
    ("-72", "72", False),
    ("7.2", "72", False),
    (None, "72", False),
    ("3", "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    ("\\sqrt{2}", "\\sqrt{2}", True),  # not numbers: graded by math-verify
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
    ("\\sqrt{3}", "\\sqrt{2}", False),
    ("x" * 2000, "x" * 2000, False),  # too long to be an answer
])
def test_grading(answer: Optional[str], gold: str, correct: bool) -> None:
    assert is_correct(answer, gold) is correct


def test_gold_extraction() -> None:
    assert gsm8k_gold("She has 3 + 4 = 7.\n#### 1,250") == "1250"
    assert gsm8k_gold("#### -3") == "-3"
    assert number_text(145.0) == "145" and number_text(0.5) == "0.5" and number_text(2.25) == "2.25"
    assert parse_number("3/0") is None and parse_number("1, 2") is None and parse_number("x") is None
    assert parse_number("1" * 1000) == int("1" * 1000)
    assert parse_number("1" * 1001) is None and parse_number("0." + "3" * 5000) is None


# --- the answer cases shared with the daemon's extractor ----------------------------------
# Python grades; it does not extract a final answer from a solution (the daemon does). So
# it is held to the cases where it does the same work: reading one answer as a number,
# reading GSM8K's gold, and reading back the canonical answer text the daemon sends.

CASES = json.loads((Path(__file__).resolve().parents[3] / "Tests" / "cases" / "answers.json").read_text("utf-8"))

# Cases the daemon reads and the grader, on purpose, does not: the grader reads gold
# answers, which are one number, not a mixed number among words.
PARSED_ONLY_BY_THE_DAEMON = {"1 1/2 cups"}


def canonical(value: Fraction) -> str:
    """A number as the daemon writes answers (Answers.NumericAnswer.description): an
    integer, else a decimal where one ends, else numerator/denominator."""
    if value.denominator == 1:
        return str(value.numerator)
    rest, places = value.denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest //= prime
            count += 1
        places = max(places, count)
    if rest != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = str(abs(value.numerator) * 10 ** places // value.denominator).rjust(places + 1, "0")
    return ("-" if value < 0 else "") + digits[:-places] + "." + digits[-places:]


def test_canonical_form() -> None:
    assert [canonical(Fraction(n, d)) for n, d in ((72, 1), (-1, 8), (1, 3), (-2, 6), (0, 7), (1, 100))] == [
        "72", "-0.125", "1/3", "-1/3", "0", "0.01"]


@pytest.mark.parametrize("case", CASES["extract"] + CASES["parse"], ids=lambda case: case["text"])
def test_the_daemon_s_answers_read_back_as_the_same_answer(case: Dict[str, Any]) -> None:
    # What the daemon sends ("0.5", "1/3") the grader reads as that very number; an
    # expression ("\\sqrt{2}") is no number, and math-verify grades it equal to itself.
    if case["answer"] is not None:
        value = parse_number(case["answer"])
        if case.get("expression"):
            assert value is None
        else:
            assert value is not None and canonical(value) == case["answer"]
        assert is_correct(case["answer"], case["answer"])


MATH500 = json.loads((Path(__file__).resolve().parents[3] / "Tests" / "cases" / "math500.json").read_text("utf-8"))


@pytest.mark.parametrize("case", MATH500["graded"], ids=lambda case: f'{case["answer"]} vs {case["gold"]}')
def test_math500_answers_are_graded_right(case: Dict[str, Any]) -> None:
    # The answers the daemon reads from these solutions (its tests hold it to them),
    # against MATH-500's gold spellings.
    assert is_correct(case["answer"], case["gold"]) is case["correct"]


def test_math500_table_holds_right_and_wrong_answers() -> None:
    verdicts = [case["correct"] for case in MATH500["graded"]]
    assert len(verdicts) >= 30 and True in verdicts and False in verdicts


def test_grading_off_the_main_thread_still_grades() -> None:
    # Without SIGALRM there math-verify runs without its time limit, but it runs.
    results: List[bool] = []
    worker = threading.Thread(target=lambda: results.append(is_correct("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}")))
    worker.start()
    worker.join()
    assert results == [True]


@pytest.mark.parametrize("case", [case for case in CASES["parse"] if case["text"] not in PARSED_ONLY_BY_THE_DAEMON],
                         ids=lambda case: case["text"])
def test_parse_number_reads_answers_as_the_daemon_does(case: Dict[str, Any]) -> None:
    value = parse_number(case["text"])
    if case["answer"] is None:
        assert value is None
    else:
        assert value is not None and canonical(value) == case["answer"]


@pytest.mark.parametrize("case", CASES["gsm8k_gold"], ids=lambda case: case["gold_field"])
def test_gsm8k_gold_as_the_daemon_reads_it(case: Dict[str, Any]) -> None:
    # The grader keeps the gold's text, commas dropped; what counts is the number it reads.
    value = parse_number(gsm8k_gold(case["gold_field"]))
    if case["gold"] is None:
        assert value is None
    else:
        assert value is not None and canonical(value) == case["gold"]
        assert is_correct(case["gold"], gsm8k_gold(case["gold_field"]))
