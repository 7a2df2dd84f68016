"""Grading a daemon's answer against a data set's gold answer.

The daemon normalizes answers: numbers to plain numbers ("72", "-0.5", "1/3"), and answers
that are not one number to a LaTeX expression in canonical spelling ("\\sqrt{2}",
"(1,-2)"). Gold answers come as GSM8K's "#### 1,234", SVAMP's floats or MATH-500's LaTeX.
Where both sides read as numbers they are compared as exact fractions ("1450001" is not
"1450000", "0.5" is "1/2"); only a decimal against a value no decimal writes exactly (1/3)
may be its rounding, within a relative tolerance of RELATIVE_TOLERANCE ("0.3333333" matches
"1/3", "0.3333" does not). Anything else (MATH-500's "\\frac{\\sqrt{2}}{2}", intervals,
tuples, text) is graded by math-verify, which parses both sides and compares them
symbolically ("\\frac{1}{\\sqrt{2}}" is "\\frac{\\sqrt{2}}{2}").
"""
from __future__ import annotations

import re
import threading
from fractions import Fraction
from typing import Any, List, Optional, Pattern, Tuple

from .errors import UsageError

RELATIVE_TOLERANCE = Fraction(1, 10**6)  # a Fraction: numbers beyond a float's range stay exact
# Longer numbers are compared as text: Python refuses to parse integers of over 4300 digits.
MAX_DIGITS = 1000
# math-verify's limit on parsing and on comparing, per call. It is enforced with SIGALRM,
# which only the main thread receives: grade in the main thread (strategyd-bench run does).
MATH_VERIFY_TIMEOUT_S = 5
# An answer longer than this is not parsed as maths (the daemon's are at most 256 bytes).
MAX_EXPRESSION_CHARS = 1000
MATH_VERIFY = "math-verify==0.9.0"

# LaTeX and typography that do not change a value, rewritten before reading it.
_REWRITES: List[Tuple[Pattern[str], str]] = [
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}"), r"(\1)/(\2)"),
    (re.compile(r"\\frac(\d)(\d)"), r"\1/\2"),  # \frac12
    (re.compile(r"\{,\}"), ","),  # 10{,}000
    (re.compile(r"\\left|\\right|\\[!,;: ]|\$|\\\$|\\%|%|\^\{?\\circ\}?|\\circ"), ""),
    (re.compile("\u2212"), "-"),
    (re.compile(r"\s+"), ""),
]
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNSIGNED = r"(?:\d+(?:\.\d*)?|\.\d+)"
# A numerator or denominator: a signed decimal, possibly in the parentheses \frac leaves.
_PART = re.compile(rf"([+-]?)\(?([+-]?{_UNSIGNED})\)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _rewritten(text: str) -> str:
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def _as_number(text: str) -> Optional[Fraction]:
    text = _THOUSANDS.sub("", text).rstrip(".")
    if sum(char.isdigit() for char in text) > MAX_DIGITS:
        return None
    parts = text.split("/")
    if len(parts) > 2:
        return None
    values = []
    for part in parts:
        match = _PART.fullmatch(part)
        if match is None:
            return None
        value = Fraction(match.group(2))
        values.append(-value if match.group(1) == "-" else value)
    if len(values) == 1:
        return values[0]
    return None if values[1] == 0 else values[0] / values[1]


def parse_number(text: str) -> Optional[Fraction]:
    """The exact value of an answer that is one number ("1,234", "-.5", "3/4",
    "\\frac{3}{4}", "\\$18.90", "50\\%"), or None. As for the daemon, only what follows the
    last "=" counts ("x=5" is 5), and a unit in \\text{} is ignored ("10\\text{ cm}" is 10)."""
    text = text.rsplit("=", 1)[-1]
    with_text = _as_number(_rewritten(_TEXT.sub(r"\1", text)))
    return with_text if with_text is not None else _as_number(_rewritten(_TEXT.sub("", text)))


def _terminates(value: Fraction) -> bool:
    """Whether a decimal writes the value exactly: its denominator has no prime but 2 and 5."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


def numbers_match(first: Fraction, second: Fraction) -> bool:
    """Equal, or a decimal that rounds a value no decimal writes exactly ("0.3333333", 1/3)."""
    if first == second:
        return True
    if _terminates(first) == _terminates(second):
        return False  # both exact (integers, decimals, 3/4) or both not: nothing was rounded
    decimal = first if _terminates(first) else second
    if decimal.denominator == 1:
        return False  # an integer answer is not a rounded fraction
    return abs(first - second) <= RELATIVE_TOLERANCE * max(abs(first), abs(second))


def is_correct(answer: Optional[str], gold: str) -> bool:
    """Whether the daemon's answer is the gold one; a missing answer never is."""
    if answer is None:
        return False
    answer_value, gold_value = parse_number(answer), parse_number(gold)
    if answer_value is not None and gold_value is not None:
        return numbers_match(answer_value, gold_value)
    return maths_equal(answer, gold)


def require_math_verify() -> None:
    """Raises UsageError when math-verify is not installed."""
    _math_verify()


def _math_verify() -> Any:
    try:
        import math_verify  # sympy behind it takes a second to import: only when needed
    except ImportError:
        raise UsageError(f"grading answers that are not numbers needs math-verify: pip install '{MATH_VERIFY}'") from None
    return math_verify


def maths_equal(answer: str, gold: str) -> bool:
    """math-verify's verdict on two LaTeX answers (each read as if written between $...$)."""
    if len(answer) > MAX_EXPRESSION_CHARS:
        return False
    math_verify = _math_verify()
    # Off the main thread SIGALRM cannot limit math-verify: there it runs without a limit.
    timeout = MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    expected = math_verify.parse(f"${gold}$", parsing_timeout=timeout)
    given = math_verify.parse(f"${answer}$", parsing_timeout=timeout)
    return bool(expected) and bool(given) and bool(math_verify.verify(expected, given, timeout_seconds=timeout))


def gsm8k_gold(answer_field: str) -> str:
    """The final answer after GSM8K's last "####", thousands commas dropped ("1,000" -> "1000")."""
    return _THOUSANDS.sub("", answer_field.rsplit("####", 1)[-1].strip())


def number_text(value: float) -> str:
    """A float gold (SVAMP) as the daemon writes numbers: 145.0 -> "145", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
