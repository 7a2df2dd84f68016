"""Reporting strategyd-bench run files: the paper's table beside our own rows, the
compute-optimal frontier, every condition against a baseline problem by problem, and,
where solves return several candidates, what a vote over them would solve and how often
one of them is right. The plot is plot.py's.

Accuracy counts the graded records of a condition; records whose solve failed are counted
apart ("errors") and left out of n.
"""
from __future__ import annotations

import json
import math
import shlex
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .errors import UnknownBaseline
from .grading import is_correct
from .paper import PAPER_FIGURES, PAPER_MODEL
from .runfile import Record, condition_of, keep_first_success, read_run_file, record_key
from .stats import sign_test, wilson_interval
from .vote import Tally, choose, vote

# The table's order of strategies (the paper's conditions and their relatives); others follow by name.
STRATEGY_ORDER = ("greedy", "self-consistency", "best-of-n", "beam-search", "rebase", "quiet-star", "quiet-rebase")

TOKENS_NOTE = ("evaluated tokens: every token llama.cpp evaluated for the solve (prompt, generated, "
               "thought and scorer tokens), a prefix shared by forks counted once")


@dataclass(frozen=True)
class Row:
    """One condition of the table: ours from records, or one of the paper's."""
    model: str
    dataset: str
    family: str  # one plotted line: the strategy, with its variant when the spec names one
    label: str   # the spec as run
    n: int
    correct: int
    errors: int
    mean_flops: Optional[float]
    mean_wall_s: Optional[float]
    mean_evaluated_tokens: Optional[float]
    from_paper: bool = False
    # The most solves run at once for this row: above 1 its wall times overlap.
    concurrency: int = 1
    # The fewest, where its records ran at different concurrencies.
    least_concurrency: int = 1
    # Graded problems a budget stopped before the strategy finished, by what ran out.
    stopped: Tuple[Tuple[str, int], ...] = ()
    # (problem id, correct) of every graded problem, for the comparison problem by problem.
    outcomes: Tuple[Tuple[Any, bool], ...] = ()
    # Where the solves returned several candidates: what they held (see CandidateCounts).
    candidates: Optional["CandidateCounts"] = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n


PAPER_ROWS = tuple(Row(PAPER_MODEL, figure.dataset, figure.family, figure.label, figure.n, figure.correct, 0,
                       figure.mean_flops, figure.mean_wall_s, None, True) for figure in PAPER_FIGURES)


def paper_rows(datasets: Iterable[str]) -> List[Row]:
    """The paper's figures beside measurements on its own data set only (GSM8K test): on
    another data set they would compare unlike problems."""
    wanted = set(datasets)
    return [row for row in PAPER_ROWS if row.dataset in wanted]


@dataclass(frozen=True)
class CandidateCounts:
    """A row's graded problems counted over the candidates its solves returned, so the
    choice among them can be told apart from the sampling that made them."""
    voted: int    # problems a plain majority over the candidates' answers solves
    covered: int  # problems where some candidate's answer is right: no choice does better
    mean_candidates: float
    # Problems best-of-n's two selections would solve over these candidates (select=max, the
    # best-scored one; select=weighted); None where no candidate carries a score (self-consistency).
    top_scored: Optional[int] = None
    weighted: Optional[int] = None

def recorded_tallies(candidates: Sequence[Record]) -> Optional[List[Tally]]:
    """The tallies the daemon's vote gave the candidates (votes, vote_weight), when every
    one of them carries both and every candidate with an answer voted; None otherwise: for
    records written before candidates carried tallies, and for votes over a part of the
    candidates (best-of-n leaves out samples it could not score), which are voted on again
    by the same rule."""
    tallies: List[Tally] = []
    for candidate in candidates:
        votes, weight = candidate.get("votes"), candidate.get("vote_weight")
        if (isinstance(votes, bool) or not isinstance(votes, int)
                or isinstance(weight, bool) or not isinstance(weight, (int, float))):
            return None
        if votes == 0 and candidate.get("answer") not in (None, ""):
            return None
        tallies.append((votes, float(weight)))
    return tallies


def _voted(candidates: Sequence[Record], weights: Sequence[float], mode: str) -> Optional[str]:
    """The answer of the vote's chosen candidate, from the recorded tallies where the
    candidates carry them; None when no candidate has an answer."""
    answers = [candidate.get("answer") for candidate in candidates]
    tallies = recorded_tallies(candidates)
    chosen = vote(answers, weights, mode)[0] if tallies is None else choose(answers, weights, tallies, mode)
    return (answers[chosen] or None) if chosen >= 0 else None


def plain_vote(candidates: Sequence[Record]) -> Optional[str]:
    """The vote over the candidates' answers (vote.py): self-consistency's pick, and
    best-of-n's with no candidate scored."""
    return _voted(candidates, [1.0] * len(candidates), "plain")


def top_scored(candidates: Sequence[Record]) -> Optional[str]:
    """The best-scored candidate's answer, the first of equals: best-of-n's select=max. With
    no scored candidate, a plain vote, as the plugin falls back to."""
    scored = [candidate for candidate in candidates if candidate.get("score") is not None]
    if not scored:
        return plain_vote(candidates)
    return max(scored, key=lambda candidate: candidate["score"]).get("answer")


def weighted_vote(candidates: Sequence[Record]) -> Optional[str]:
    """Best-of-n's select=weighted: the weighted vote (vote.py) over the scored candidates,
    each weighing its score; the recorded vote_weight is that vote's tally wherever the
    strategy weighs candidates by their scores. With no scored candidate, a plain vote over
    all, as the plugin falls back to."""
    scored = [candidate for candidate in candidates if candidate.get("score") is not None]
    if not scored:
        return plain_vote(candidates)
    return _voted(scored, [candidate["score"] for candidate in scored], "weighted")


def candidate_counts(graded: Sequence[Record]) -> Optional[CandidateCounts]:
    """None where no solve returned more than one candidate: then picked, vote and coverage agree."""
    lists = [record.get("candidates") or [] for record in graded]
    if not any(len(candidates) > 1 for candidates in lists):
        return None

    def solved_by(select: Callable[[Sequence[Record]], Optional[str]]) -> int:
        return sum(1 for record, candidates in zip(graded, lists) if is_correct(select(candidates), record["gold"]))

    scored = any(candidate.get("score") is not None for candidates in lists for candidate in candidates)
    return CandidateCounts(
        voted=solved_by(plain_vote),
        covered=sum(1 for record, candidates in zip(graded, lists)
                    if any(is_correct(candidate.get("answer"), record["gold"]) for candidate in candidates)),
        mean_candidates=sum(map(len, lists)) / len(lists),
        top_scored=solved_by(top_scored) if scored else None,
        weighted=solved_by(weighted_vote) if scored else None)


def family_of(record: Record) -> str:
    """The line a condition belongs to in the plot: one approach (strategy, variant, mixing
    head, scorer) whose other params (k, width, thresholds) set how much compute it spends."""
    params = record["params"]
    name: str = record["strategy"]["name"]
    qualifiers = [str(params[key]) + suffix for key, suffix in (("variant", ""), ("mixing", " mixing"), ("scorer", ""))
                  if key in params]
    return f"{name} ({', '.join(qualifiers)})" if qualifiers else name


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def deduplicated(records: Iterable[Record]) -> List[Record]:
    """One record of each model and key, a success rather than a failure (several run files
    may hold the same problem; files of different models hold the same keys)."""
    chosen: Dict[str, Record] = {}
    for record in records:
        model = [record["model"]["name"], record["model"].get("sha256")]
        keep_first_success(chosen, json.dumps([model, record_key(record)]), record)
    return list(chosen.values())


def version_label(record: Record) -> str:
    """The strategy's version, and those of the plugins its params name: "1.5.0 with self-certainty 1.1.0"."""
    uses = record["strategy"].get("uses") or {}
    return " with ".join([str(record["strategy"].get("version"))] + [f"{name} {version}" for name, version in sorted(uses.items())])


def summarize(records: Sequence[Record]) -> List[Row]:
    """One row per (model, data set, condition), in the paper's strategy order, cheapest first."""
    groups: Dict[Tuple[Any, ...], List[Record]] = defaultdict(list)
    for record in records:
        groups[(record["model"]["name"], record["dataset"], *condition_of(record))].append(record)
    # The seed and the strategy's version go into the label only where one spec was run
    # with several of them.
    seeds_per_spec: Dict[Tuple[str, str, str], Set[Any]] = defaultdict(set)
    versions_per_spec: Dict[Tuple[str, str, str], Set[Any]] = defaultdict(set)
    for group in groups.values():
        spec = (group[0]["model"]["name"], group[0]["dataset"], group[0]["spec"])
        seeds_per_spec[spec].add(group[0]["seed"])
        versions_per_spec[spec].add(version_label(group[0]))
    rows = []
    for group in groups.values():
        first = group[0]
        graded = [record for record in group if record.get("error") is None]
        label = first["spec"]
        spec = (first["model"]["name"], first["dataset"], label)
        if len(versions_per_spec[spec]) > 1:
            label += f" (version {version_label(first)})"
        if len(seeds_per_spec[spec]) > 1:
            label += f" (seed {first['seed']})"
        rows.append(Row(
            model=first["model"]["name"], dataset=first["dataset"], family=family_of(first), label=label,
            n=len(graded), correct=sum(1 for record in graded if record["correct"]), errors=len(group) - len(graded),
            mean_flops=_mean([record["metrics"]["flops"] for record in graded]),
            mean_wall_s=_mean([record["metrics"]["wall_s"] for record in graded]),
            mean_evaluated_tokens=_mean([record["metrics"]["evaluated_tokens"] for record in graded]),
            concurrency=max(record.get("concurrency") or 1 for record in group),
            least_concurrency=min(record.get("concurrency") or 1 for record in group),
            stopped=_stopped(graded),
            outcomes=tuple((record["problem_id"], bool(record["correct"])) for record in graded),
            candidates=candidate_counts(graded)))
    return sorted(rows, key=_row_order)


def _stopped(records: Sequence[Record]) -> Tuple[Tuple[str, int], ...]:
    """How many of the records a budget stopped, per budget (older records name none)."""
    counts: Dict[str, int] = defaultdict(int)
    for record in records:
        if record.get("budget_exhausted"):
            counts[record.get("stopped_by") or "a budget"] += 1
    return tuple(sorted(counts.items()))


def format_stopped(row: Row) -> str:
    if row.from_paper:
        return "—"
    if not row.stopped:
        return "0"
    return ", ".join(f"{count} ({budget})" for budget, count in row.stopped)


def _row_order(row: Row) -> Tuple[Any, ...]:
    name = row.family.split(" ")[0]
    rank = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER)
    return (row.from_paper, row.model, row.dataset, rank, row.family,
            row.mean_flops if row.mean_flops is not None else math.inf, row.label)


Point = Tuple[float, Row]  # a row's mean FLOPs, and the row


def measured(rows: Iterable[Row]) -> List[Point]:
    """The rows that have a point on the plot: a graded problem, and FLOPs."""
    return [(row.mean_flops, row) for row in rows if row.n > 0 and row.mean_flops is not None]


def pareto_frontier(points: Iterable[Point]) -> List[Point]:
    """The points no other point beats: none has at least their accuracy at no more FLOPs.
    Cheapest first."""
    frontier: List[Point] = []
    for flops, row in sorted(points, key=lambda point: (point[0], -point[1].accuracy)):
        if not frontier or row.accuracy > frontier[-1][1].accuracy:
            frontier.append((flops, row))
    return frontier


def format_flops(flops: Optional[float]) -> str:
    if flops is None:
        return "—"
    for scale, unit in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if flops >= scale:
            return f"{flops / scale:.4g} {unit}"
    return f"{flops:.4g}"


def format_accuracy(row: Row) -> str:
    if row.n == 0:
        return "—"
    low, high = wilson_interval(row.correct, row.n)
    return f"{100 * row.accuracy:.1f} % ({100 * low:.1f}–{100 * high:.1f}), {row.correct}/{row.n}"


def _number(value: Optional[float], digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _at_once(row: Row) -> str:
    if row.concurrency <= 1:
        return ""
    if row.least_concurrency != row.concurrency:
        return f" (×{row.least_concurrency}–{row.concurrency} at once)"
    return f" (×{row.concurrency} at once)"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| model | data | strategy (spec) | n | accuracy (95 % Wilson interval) | mean FLOPs | "
             "mean wall s | mean evaluated tokens | stopped | errors |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [row.model, row.dataset, f"`{row.label}`" if not row.from_paper else row.label, str(row.n),
                 format_accuracy(row), format_flops(row.mean_flops),
                 _number(row.mean_wall_s, 2) + _at_once(row),
                 _number(row.mean_evaluated_tokens, 0), format_stopped(row),
                 "—" if row.from_paper else str(row.errors)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def frontier_lines(rows: Sequence[Row]) -> List[str]:
    """Per model and data set: which condition is optimal from which FLOPs per problem on."""
    lines = []
    for (model, dataset), group in by_model_and_dataset(rows).items():
        frontier = pareto_frontier(measured(group))
        if not frontier:
            continue
        fullest = max(row.n for row in group)
        lines.append(f"- {model} on {dataset}:")
        for index, (flops, row) in enumerate(frontier):
            until = f" to {format_flops(frontier[index + 1][0])}" if index + 1 < len(frontier) else " on"
            # A row still being run is graded on fewer problems than the others: say so.
            partial = f"; fewer problems than the fullest row's {fullest}" if row.n < fullest else ""
            lines.append(f"  - from {format_flops(flops)} FLOPs{until}: `{row.label}`, "
                         f"{100 * row.accuracy:.1f} % (n = {row.n}{partial})")
    return lines


@dataclass(frozen=True)
class Paired:
    """A condition against the baseline on the problems both graded."""
    shared: int  # problems both graded
    wins: int    # of them, solved by the row and not by the baseline
    losses: int  # solved by the baseline and not by the row

    @property
    def p_value(self) -> float:
        return sign_test(self.wins, self.losses)


def paired(row: Row, baseline: Row) -> Paired:
    theirs = dict(baseline.outcomes)
    shared = [(correct, theirs[problem]) for problem, correct in row.outcomes if problem in theirs]
    return Paired(len(shared), sum(1 for ours, base in shared if ours and not base),
                  sum(1 for ours, base in shared if base and not ours))


def paired_lines(rows: Sequence[Row], baseline_label: Optional[str]) -> List[str]:
    """Per model and data set, every condition against the baseline (the named condition, or
    else greedy), problem by problem."""
    lines = []
    for (model, dataset), group in by_model_and_dataset(rows).items():
        if baseline_label is None:
            baseline = next((row for row in group if row.family == "greedy"), None)
        else:
            baseline = next((row for row in group if row.label == baseline_label), None)
        if baseline is None:
            continue
        lines.append(f"- {model} on {dataset}, against `{baseline.label}` ({baseline.correct}/{baseline.n}):")
        for row in group:
            if row is not baseline:
                pair = paired(row, baseline)
                lines.append(f"  - `{row.label}`: +{pair.wins} −{pair.losses} of {pair.shared} shared "
                             f"(p = {pair.p_value:.2g})")
    if baseline_label is not None and not lines:
        labels = ", ".join(sorted({row.label for row in rows if not row.from_paper}))
        raise UnknownBaseline(f"no condition `{baseline_label}` to compare with; the run files hold: {labels}")
    return lines


def candidate_lines(rows: Sequence[Row]) -> List[str]:
    """Per model and data set, the rows whose solves returned several candidates: what the
    strategy picked beside a vote over, and the coverage of, the same candidates."""
    lines = []
    for (model, dataset), group in by_model_and_dataset(rows).items():
        counted = [(row, row.candidates) for row in group if row.candidates is not None]
        if counted:
            lines.append(f"- {model} on {dataset}:")
        for row, counts in counted:
            scored = ("" if counts.weighted is None
                      else f", top-scored {counts.top_scored}, score-weighted vote {counts.weighted}")
            lines.append(f"  - `{row.label}`: picked {row.correct}, vote {counts.voted}{scored}, "
                         f"coverage {counts.covered} of {row.n} ({counts.mean_candidates:.1f} candidates per problem)")
    return lines


def by_model_and_dataset(rows: Iterable[Row]) -> Dict[Tuple[str, str], List[Row]]:
    groups: Dict[Tuple[str, str], List[Row]] = defaultdict(list)
    for row in rows:
        if not row.from_paper:
            groups[(row.model, row.dataset)].append(row)
    return groups


def provenance_lines(records: Sequence[Record]) -> List[str]:
    """Models, commits and llama.cpp builds (each with its records per spec), the commands
    (with their records) and the time the solves took."""
    models = sorted({(r["model"]["name"], r["model"].get("sha256") or "unknown") for r in records})
    # Which build made which rows: a row resumed over several runs can span several commits, and
    # several machines, whose llama.cpp builds (CPU kernels) now and then sample another token.
    specs_per_commit: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    specs_per_backend: Dict[str, Dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        commit = (r.get("commit") or "unknown") + (" (with uncommitted changes)" if r.get("dirty") else "")
        specs_per_commit[commit][r["spec"]] += 1
        specs_per_backend[_backend_label(r.get("backend"))][r["spec"]] += 1
    commands: Dict[str, int] = Counter(_command_as_run(r["command"]) for r in records if r.get("command"))
    builds = sorted({f"{r['strategy']['name']} {version_label(r)}" for r in records
                     if r["strategy"].get("version")})
    solve_seconds = sum(r["metrics"]["wall_s"] for r in records if r.get("error") is None)
    times = sorted(datetime.fromisoformat(r["time"]) for r in records if r.get("time"))
    lines = [f"- model: {name} (sha256 {sha})" for name, sha in models]
    for prefix, specs_per_build in (("commit ", specs_per_commit), ("", specs_per_backend)):
        lines += [f"- {prefix}{build}: " + ", ".join(f"`{spec}` {count}" for spec, count in sorted(specs.items()))
                  for build, specs in sorted(specs_per_build.items())]
    lines += [f"- strategies: {', '.join(builds)}"] if builds else []
    if commands:
        lines.append("- commands (their socket and run file left out), with the records each wrote:")
        lines += [f"  - `{command}`: {count}" for command, count in sorted(commands.items())]
    lines.append(f"- solve wall time: {solve_seconds / 3600:.2f} h over {len(records)} records"
                 + (f", written from {times[0].isoformat()} to {times[-1].isoformat()}" if times else ""))
    return lines


def _command_as_run(command: str) -> str:
    """The command without its --socket and --out values, which name one run's temporary
    socket and checkout: what is left is what to type to solve the same problems again."""
    try:
        words = shlex.split(command)
    except ValueError:  # not a command line this bench wrote: shown as it is
        return command
    kept: List[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--socket", "--out"):
            skip = True
        elif not word.startswith(("--socket=", "--out=")):
            kept.append(word)
    return shlex.join(kept)


def _backend_label(backend: Optional[Record]) -> str:
    if not backend:
        return "llama.cpp build not recorded (strategyd-bench before 257aa1a)"
    # llama_print_system_info(): "CPU : SSE3 = 1 | AVX = 1 | ...": the kernels compiled in.
    features = " ".join(part.split(" = ")[0].split(":")[-1].strip()
                        for part in backend.get("system_info", "").split("|") if part.strip().endswith("= 1"))
    return (f"llama.cpp ggml {backend.get('ggml_version')} ({backend.get('ggml_commit')}), "
            f"{backend.get('threads')} threads, CPU {features or 'unknown'}")


def markdown_report(records: Sequence[Record], plots: Sequence[Path] = (), baseline: Optional[str] = None) -> str:
    """The report; `baseline` names (by its label in the table) the condition every other is
    compared with problem by problem, greedy when None."""
    rows = summarize(records)
    paper = paper_rows(row.dataset for row in rows)
    paired_section = paired_lines(rows, baseline)
    parts = [
        "# strategyd-bench report", "",
        markdown_table(rows + paper), "",
        "n: problems graded; stopped: graded problems whose solve a budget ended before the strategy "
        "finished (by what ran out; the best answer so far was graded); errors: problems whose solve "
        f"failed, left out of n. FLOPs and {TOKENS_NOTE}; "
        "both are means per problem."
        + (f" Rows of {PAPER_MODEL} are the figures of arXiv 2412.16260 (Mistral-7B on a 128-problem GSM8K "
           "subset), not measured here, with the paper's runtime as mean wall s; the paper gives no FLOPs for "
           "Quiet-STaR + REBASE-3 and no token counts." if paper else "")
        + (" A wall time marked ×N: up to N solves ran at once, sharing the model's decodes, so each "
           "includes the others' steps (×M–N: the row's records ran at M to N at once); the FLOPs are each "
           "solve's own." if any(r.concurrency > 1 for r in rows)
           else ""),
        "", "## Compute-optimal frontier", "",
        "The conditions measured here that no other beats (none has at least their accuracy for no more "
        "FLOPs per problem), cheapest first; each is the best choice from its FLOPs to the next one's. "
        "The paper's rows are left out (another model).", "",
        *(frontier_lines(rows) or ["- (no graded problem yet)"]),
    ]
    for plot in plots:
        parts += ["", f"![accuracy vs FLOPs]({plot.name})"]
    if paired_section:
        parts += [
            "", "## Problem by problem", "",
            "Each condition against the baseline on the problems both graded: + the problems only it "
            "solved, − those only the baseline solved, and p, the exact two-sided sign test (McNemar's) of "
            "that split: the chance of a split at least this uneven were the two equally accurate. Two "
            "conditions run on the same problems can differ clearly here while their accuracy intervals "
            "overlap.", "", *paired_section]
    candidate_section = candidate_lines(rows)
    if candidate_section:
        parts += [
            "", "## Candidates", "",
            "For the conditions whose solves return several candidates (one per finished solution): "
            "picked, the problems the strategy's chosen answer solved; vote, those a plain majority over "
            "the candidates' answers would solve (a tie to the answer seen first); where the candidates "
            "carry scores, top-scored and score-weighted vote, those best-of-n's select=max and "
            "select=weighted would solve (the best-scored candidate; the answer whose candidates' scores "
            "sum highest); coverage, those where "
            "some candidate's answer is right, which no scorer or vote over the same candidates can "
            "beat. Picked well below coverage means the choice, not the sampling, loses the answers.",
            "", *candidate_section]
    parts += ["", "## Runs", "", *provenance_lines(records), ""]
    return "\n".join(parts)


def write_report(run_files: Sequence[Path], out_dir: Optional[Path], plot: bool = True,
                 baseline: Optional[str] = None) -> str:
    """The Markdown report of the run files (`baseline` as in markdown_report); with `out_dir`,
    also report.md and, with `plot`, frontier-DATASET.png and .svg there."""
    records = deduplicated(record for path in run_files for record in read_run_file(path))
    rows = summarize(records)
    datasets = sorted({row.dataset for row in rows}) if out_dir is not None and plot else []
    # The report first: what it refuses (an unknown baseline) leaves no file behind.
    report = markdown_report(records, [Path(f"frontier-{dataset}.svg") for dataset in datasets], baseline)
    if out_dir is not None:
        from .plot import plot_frontier  # here, not at the top: plot.py imports this module
        out_dir.mkdir(parents=True, exist_ok=True)
        for dataset in datasets:
            plot_frontier(rows, dataset, out_dir / f"frontier-{dataset}")
        (out_dir / "report.md").write_text(report, encoding="utf-8")
    return report
