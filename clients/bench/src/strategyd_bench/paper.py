"""The paper's figures the report sets our rows beside: arXiv 2412.16260's table on a
128-problem GSM8K subset with Mistral-7B. Not measured here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PAPER_MODEL = "Mistral-7B (paper)"


@dataclass(frozen=True)
class PaperFigure:
    dataset: str
    family: str  # the plotted line of ours it compares with
    label: str   # the paper's name for the condition
    n: int
    correct: int
    mean_flops: Optional[float]
    mean_wall_s: float  # the paper's runtime


# Accuracies are 41, 14 and 12 of 128; the paper gives no FLOPs for the combination, nor
# token counts.
PAPER_FIGURES = (
    PaperFigure("gsm8k-test", "quiet-star", "Quiet-STaR", 128, 41, 12.73e12, 554.66),
    PaperFigure("gsm8k-test", "rebase", "REBASE-3", 128, 14, 2.35e12, 8.47),
    PaperFigure("gsm8k-test", "quiet-rebase", "Quiet-STaR + REBASE-3", 128, 12, None, 143.66),
)
