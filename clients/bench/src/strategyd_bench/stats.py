"""The report's statistics: an interval for an accuracy, and a test for two conditions
compared problem by problem."""
from __future__ import annotations

import math
from typing import Tuple

Z_95 = 1.959963984540054  # the standard normal quantile of 0.975


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default)."""
    if trials <= 0:
        raise ValueError("the Wilson interval needs at least one trial")
    p = successes / trials
    shrink = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / shrink
    half_width = z / shrink * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    # The interval always holds p; at 0 or n successes rounding can put a bound a hair past it.
    return max(0.0, min(p, center - half_width)), min(1.0, max(p, center + half_width))


def sign_test(wins: int, losses: int) -> float:
    """The exact two-sided sign test of a paired comparison (McNemar's exact test): were the
    two conditions equally accurate, the chance that the problems only one of them solved
    split at least this unevenly."""
    disagreements = wins + losses
    tail = sum(math.comb(disagreements, i) for i in range(min(wins, losses) + 1))
    return min(1.0, 2 * tail / 2 ** disagreements)
