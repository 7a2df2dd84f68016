"""The accuracy-vs-FLOPs plot of a report. matplotlib is imported only here, and only to
draw: the report itself needs nothing beyond the standard library."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

from .errors import MissingMatplotlib
from .paper import PAPER_MODEL
from .report import Row, by_model_and_dataset, measured, paper_rows, pareto_frontier
from .stats import wilson_interval


def plot_frontier(rows: Sequence[Row], dataset: str, stem: Path) -> List[Path]:
    """The accuracy-vs-FLOPs plot of one data set as STEM.png and STEM.svg: a panel per model
    on shared axes, one line per strategy across its specs, the model's Pareto frontier
    dashed, the paper's points as stars in every panel (GSM8K only). A row graded on fewer
    problems than its model's fullest row is drawn hollow, its n beside it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
    except ImportError as error:
        raise MissingMatplotlib("the plot needs matplotlib: `python3 -m pip install matplotlib` "
                                "(or pass --no-plot)") from error
    matplotlib.rcParams["svg.hashsalt"] = "strategyd-bench"  # the same SVG for the same data
    # A panel per model: the grouping the report's sections use, kept to the measured points.
    panel_points = {model: measured(group) for (model, of_dataset), group in by_model_and_dataset(rows).items()
                    if of_dataset == dataset}
    panel_points = {model: points for model, points in sorted(panel_points.items()) if points}
    ours = [point for points in panel_points.values() for point in points]
    paper = measured(paper_rows([dataset]))
    models = list(panel_points)
    fullest = {model: max(row.n for _, row in points) for model, points in panel_points.items()}
    figure, panels = plt.subplots(1, max(len(models), 1), figsize=(5.5 * max(len(models), 1) + 1, 5.5),
                                  sharex=True, sharey=True, squeeze=False)
    # A strategy keeps its colour in every panel: the legend is shared.
    families = sorted({row.family for _, row in ours})
    palette = plt.get_cmap("tab10" if len(families) <= 10 else "tab20").colors
    colours = {family: palette[index % len(palette)] for index, family in enumerate(families)}
    for axes, (model, points) in zip(panels[0], panel_points.items()):
        for family in families:
            line = sorted((point for point in points if point[1].family == family), key=lambda point: point[0])
            if not line:
                continue
            accuracies = [100 * row.accuracy for _, row in line]
            intervals = [wilson_interval(row.correct, row.n) for _, row in line]
            axes.errorbar([flops for flops, _ in line], accuracies, color=colours[family], capsize=3, marker="none",
                          yerr=[[a - 100 * low for a, (low, _) in zip(accuracies, intervals)],
                                [100 * high - a for a, (_, high) in zip(accuracies, intervals)]])
            for (x, row), y in zip(line, accuracies):
                partial = row.n < fullest[model]
                axes.plot([x], [y], marker="o", markersize=6, color=colours[family],
                          markerfacecolor="white" if partial else colours[family], zorder=4)
                if partial:
                    axes.annotate(f"n = {row.n}", (x, y), textcoords="offset points", xytext=(5, -10),
                                  fontsize=7, color=colours[family])
        frontier = pareto_frontier(points)
        axes.step([flops for flops, _ in frontier], [100 * row.accuracy for _, row in frontier],
                  where="post", linestyle="--", color="0.55", linewidth=1, zorder=1)
        for flops, row in paper:
            axes.scatter([flops], [100 * row.accuracy], marker="*", s=160, color="black", zorder=5)
            # Left of the star: the paper's Quiet-STaR is the costliest point, at the right edge.
            axes.annotate(row.label, (flops, 100 * row.accuracy), textcoords="offset points", xytext=(-7, 5),
                          ha="right", fontsize=8)
        axes.set_title(model, fontsize=10)
        axes.set_xscale("log")
        axes.set_xlabel("mean FLOPs per problem (log scale)")
        axes.grid(True, which="both", alpha=0.3)
    panels[0][0].set_ylabel("accuracy (%), 95 % Wilson interval")
    panels[0][0].set_ylim(bottom=0)
    figure.suptitle(f"Accuracy vs compute on {dataset}")
    handles = [Line2D([], [], color=colours[family], marker="o", label=family) for family in families]
    handles.append(Line2D([], [], color="0.55", linestyle="--", label="the model's frontier"))
    if any(row.n < fullest[row.model] for _, row in ours):
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle="none",
                              label="fewer problems than the model's fullest row"))
    if paper:
        handles.append(Line2D([], [], color="black", marker="*", markersize=10, linestyle="none",
                              label=f"{PAPER_MODEL}, 128 problems"))
    # Beside the panels, not on them: no corner of a panel is free.
    figure.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.92), borderaxespad=0)
    figure.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=150, bbox_inches="tight")
    figure.savefig(paths[1], metadata={"Date": None}, bbox_inches="tight")
    plt.close(figure)
    return paths
