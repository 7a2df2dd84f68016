"""Grading: answers against gold answers, and gold answers read from the data sets."""
from __future__ import annotations

from typing import Optional

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
    ("\\sqrt{2}", "\\sqrt{2}", True),  # not numbers: compared as normalized text
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
