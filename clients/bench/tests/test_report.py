"""strategyd-bench report: the table's numbers, statistics, the frontier, the comparison
problem by problem, the candidates section and the plot."""
from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from bench_helpers import FIXED_RECORDS, bench_env, record, write_jsonl

from strategyd_bench.cli import main
from strategyd_bench.errors import RunFileError, UnknownBaseline
from strategyd_bench.plot import plot_frontier
from strategyd_bench.report import CandidateCounts, deduplicated, markdown_report, summarize, write_report
from strategyd_bench.runfile import RunFile, record_key
from strategyd_bench.stats import sign_test, wilson_interval

Z = 1.959963984540054

# --- statistics ---------------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    # 0 and n successes have closed forms: [0, z²/(n+z²)] and [n/(n+z²), 1].
    assert wilson_interval(0, 10) == pytest.approx((0.0, Z * Z / (10 + Z * Z)), abs=1e-12)
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + Z * Z), 1.0), abs=1e-12)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.27753, abs=1e-5)
    # 41/128 (the paper's Quiet-STaR) by the counts form (k + z²/2 ± z√(k(n-k)/n + z²/4)) / (n + z²).
    k, n = 41, 128
    spread = Z * math.sqrt(k * (n - k) / n + Z * Z / 4)
    expected = ((k + Z * Z / 2 - spread) / (n + Z * Z), (k + Z * Z / 2 + spread) / (n + Z * Z))
    assert wilson_interval(k, n) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_wilson_interval_holds_the_proportion() -> None:
    # Unclamped, 0/7 would give a lower bound of 2.8e-17, and the plot's error bar a negative length.
    for trials in range(1, 130):
        for successes in range(trials + 1):
            low, high = wilson_interval(successes, trials)
            assert low <= successes / trials <= high, (successes, trials)


def test_sign_test_known_values() -> None:
    assert sign_test(0, 6) == sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert sign_test(3, 12) == pytest.approx(2 * sum(math.comb(15, i) for i in range(4)) / 2 ** 15)
    assert sign_test(5, 5) == sign_test(0, 0) == 1.0


# --- the table, the frontier and the comparison -------------------------------------------


def test_report_numbers(tmp_path: Path) -> None:
    rows = {row.label: row for row in summarize(FIXED_RECORDS)}
    greedy, k4, k8 = rows["greedy"], rows["self-consistency:k=4"], rows["self-consistency:k=8"]
    assert (greedy.n, greedy.correct, greedy.errors) == (4, 2, 0)
    assert (greedy.mean_flops, greedy.mean_wall_s, greedy.mean_evaluated_tokens) == (3e9, 3.0, 300)
    assert (k4.n, k4.correct, k4.errors, k4.mean_flops, k4.mean_wall_s) == (2, 2, 1, 10e9, 5.0)
    assert (k8.n, k8.correct, k8.mean_flops) == (2, 1, 32e9)

    report = markdown_report(FIXED_RECORDS)
    assert "| m | gsm8k-test | `greedy` | 4 | 50.0 % (15.0–85.0), 2/4 | 3 G | 3.00 | 300 | 0 | 0 |" in report
    low, high = wilson_interval(2, 2)
    assert (f"| m | gsm8k-test | `self-consistency:k=4` | 2 | 100.0 % ({100 * low:.1f}–{100 * high:.1f}), 2/2 "
            "| 10 G | 5.00 | 1000 | 0 | 1 |") in report
    assert "| 32 G | 10.00 | 3200 | 1 (max_flops), 1 (timeout_s) | 0 |" in report
    assert ("| Mistral-7B (paper) | gsm8k-test | Quiet-STaR | 128 | 32.0 % (24.6–40.5), 41/128 | 12.73 T | 554.66 "
            "| — | — | — |") in report
    assert ("| Mistral-7B (paper) | gsm8k-test | Quiet-STaR + REBASE-3 | 128 | 9.4 % (5.4–15.7), 12/128 | — "
            "| 143.66 |") in report
    # k=8 is dominated by k=4 (more accuracy for fewer FLOPs), greedy is the cheapest point.
    assert "  - from 3 G FLOPs to 10 G: `greedy`, 50.0 % (n = 4)" in report
    assert ("  - from 10 G FLOPs on: `self-consistency:k=4`, 100.0 % (n = 2; fewer problems than the fullest "
            "row's 4)") in report
    assert "self-consistency:k=8`, 50.0 %" not in report
    assert "- model: m (sha256 " + "ab" * 32 + ")" in report
    assert "- commit c0ffee: `greedy` 4, `self-consistency:k=4` 3, `self-consistency:k=8` 2" in report
    assert "- solve wall time: 0.01 h over 9 records" in report

    # The same numbers through a run file, a duplicate of one record in a second file ignored.
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(first, FIXED_RECORDS)
    write_jsonl(second, [record("greedy", 0, False, 9e9, 9.0, 900)])
    assert write_report([first, second], None) == report


def test_report_keeps_a_new_strategy_version_in_a_row_of_its_own() -> None:
    updated = [{**r, "strategy": {**r["strategy"], "version": "1.1.0"}} for r in FIXED_RECORDS if r["spec"] == "greedy"]
    assert {record_key(r) for r in updated}.isdisjoint(record_key(r) for r in FIXED_RECORDS)
    rows = {row.label: row for row in summarize(FIXED_RECORDS + updated[:2])}
    assert (rows["greedy (version 1.0.0)"].n, rows["greedy (version 1.1.0)"].n) == (4, 2)
    assert "self-consistency:k=4" in rows, "a spec run under one version keeps its plain label"


def test_report_keeps_a_new_version_of_a_named_scorer_in_a_row_of_its_own() -> None:
    before = [record("best-of-n:scorer=s", problem, problem % 2 == 0, 2e9) for problem in range(4)]
    after = [{**r, "strategy": {**r["strategy"], "uses": {"s": "1.1.0"}}, "metrics": {**r["metrics"], "flops": 1e9}}
             for r in before[:3]]
    assert {record_key(r) for r in after}.isdisjoint(record_key(r) for r in before)
    rows = {row.label: row for row in summarize(before + after)}
    assert (rows["best-of-n:scorer=s (version 1.0.0)"].n, rows["best-of-n:scorer=s (version 1.0.0 with s 1.1.0)"].n) == (4, 3)
    assert rows["best-of-n:scorer=s (version 1.0.0 with s 1.1.0)"].mean_flops == 1e9


def test_report_names_the_commits_each_row_was_solved_on() -> None:
    # A row resumed over several runs spans builds; a dirty checkout is its own entry.
    records = [record("greedy", problem, True) for problem in range(3)] + [record("rebase:width=4", 0, False)]
    records[1]["commit"] = "beef"
    records[2]["dirty"] = True
    report = markdown_report(records)
    assert "- commit beef: `greedy` 1\n" in report
    assert "- commit c0ffee: `greedy` 1, `rebase:width=4` 1\n" in report
    assert "- commit c0ffee (with uncommitted changes): `greedy` 1\n" in report


def test_report_lists_each_command_once_without_its_socket_and_run_file() -> None:
    # Each resumed run ran the same command on another temporary socket, into another checkout.
    commands = ["strategyd-bench run --socket /tmp/a.sock --out /x/run.jsonl --sample 8 --strategy greedy",
                "strategyd-bench run --socket=/tmp/b.sock --out=/y/run.jsonl --sample 8 --strategy greedy",
                "strategyd-bench run --socket /tmp/c.sock --out /x/run.jsonl --sample 8 --strategy 'rebase:width=4'"]
    records = [{**record("greedy", 0, True), "command": commands[0]}, {**record("greedy", 1, True), "command": commands[1]},
               {**record("rebase:width=4", 0, True), "command": commands[2]}]
    report = markdown_report(records)
    assert ("- commands (their socket and run file left out), with the records each wrote:\n"
            "  - `strategyd-bench run --sample 8 --strategy greedy`: 2\n"
            "  - `strategyd-bench run --sample 8 --strategy rebase:width=4`: 1\n") in report
    assert ".sock" not in report and "run.jsonl" not in report


def test_report_names_the_llama_cpp_build_each_row_was_solved_on() -> None:
    # Another machine's build can sample another token from the same seed: the runs say which
    # records share a build, and which were written before records named it.
    records = [record("greedy", problem, True) for problem in range(3)]
    backend = {"ggml_version": "0.25.3", "ggml_commit": "0c1e570", "threads": 2,
               "system_info": "CPU : SSE3 = 1 | AVX = 1 | AVX512 = 0 | OPENMP = 1 | "}
    records[0]["backend"] = records[1]["backend"] = backend
    report = markdown_report(records)
    assert "- llama.cpp ggml 0.25.3 (0c1e570), 2 threads, CPU SSE3 AVX OPENMP: `greedy` 2\n" in report
    assert "- llama.cpp build not recorded (strategyd-bench before 257aa1a): `greedy` 1\n" in report


def test_report_compares_every_condition_with_the_baseline_problem_by_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = {"greedy": [True, True, False, False, False, None],
                "quiet-star": [True, False, True, True, True, True],
                "rebase:width=4": [False, False, False, True, None, False]}
    records = [record(spec, problem, correct) for spec, row in outcomes.items() for problem, correct in enumerate(row)]
    report = markdown_report(records)
    # Problems a side failed to solve (None) are not shared; quiet-star: +3 (2, 3, 4) −1 (1) of 5.
    assert "- m on gsm8k-test, against `greedy` (2/5):" in report
    assert f"  - `quiet-star`: +3 −1 of 5 shared (p = {sign_test(3, 1):.2g})" in report
    assert f"  - `rebase:width=4`: +1 −2 of 4 shared (p = {sign_test(1, 2):.2g})" in report
    against_quiet_star = markdown_report(records, baseline="quiet-star")
    assert "- m on gsm8k-test, against `quiet-star` (5/6):" in against_quiet_star
    assert "  - `greedy`: +1 −3 of 5 shared" in against_quiet_star
    assert "  - `rebase:width=4`: +0 −3 of 5 shared" in against_quiet_star
    # No greedy row, no baseline asked for: no section; a baseline that is not there: an error.
    assert "Problem by problem" not in markdown_report([r for r in records if r["spec"] != "greedy"])
    with pytest.raises(UnknownBaseline, match="no condition `rebase` .* greedy, quiet-star, rebase:width=4"):
        markdown_report(records, baseline="rebase")
    write_jsonl(tmp_path / "run.jsonl", records)
    assert main(["report", str(tmp_path / "run.jsonl"), "--no-plot", "--baseline", "rebase"]) == 2
    assert "strategyd-bench: no condition `rebase`" in capsys.readouterr().err
    if importlib.util.find_spec("matplotlib"):  # refused before any plot is drawn
        assert main(["report", str(tmp_path / "run.jsonl"), "--out-dir", str(tmp_path / "out"),
                     "--baseline", "rebase"]) == 2
        assert not (tmp_path / "out").exists()
    assert main(["report", str(tmp_path / "run.jsonl"), "--no-plot", "--baseline", "quiet-star"]) == 0
    assert capsys.readouterr().out == against_quiet_star


def test_plot_lines_join_one_approach_across_compute_levels() -> None:
    # Widths are compute levels of one line; another scorer, variant or mixing head is another line.
    specs = ["rebase:width=4,scorer=arith", "rebase:width=8,scorer=arith", "rebase:width=8,scorer=logprob",
             "quiet-rebase:width=4,scorer=arith,variant=gated", "quiet-star:when=entropy,mixing=entropy", "greedy"]
    families = {row.label: row.family for row in summarize([record(spec, 0, True) for spec in specs])}
    assert families == {
        "rebase:width=4,scorer=arith": "rebase (arith)", "rebase:width=8,scorer=arith": "rebase (arith)",
        "rebase:width=8,scorer=logprob": "rebase (logprob)",
        "quiet-rebase:width=4,scorer=arith,variant=gated": "quiet-rebase (gated, arith)",
        "quiet-star:when=entropy,mixing=entropy": "quiet-star (entropy mixing)", "greedy": "greedy",
    }


def test_report_marks_wall_times_of_concurrent_solves() -> None:
    assert "at once" not in markdown_report(FIXED_RECORDS)
    records = [record("greedy", 0, True, 1e9, 4.0, 100, concurrency=4), record("greedy", 1, True, 1e9, 2.0, 100)]
    report = markdown_report(records)
    assert "| 1 G | 3.00 (×1–4 at once) | 100 |" in report, "records at different concurrencies show the range"
    assert "A wall time marked ×N" in report
    alike = [record("greedy", problem, True, 1e9, 4.0, 100, concurrency=4) for problem in range(2)]
    assert "| 1 G | 4.00 (×4 at once) | 100 |" in markdown_report(alike)


def test_report_counts_the_solves_a_budget_stopped() -> None:
    older = record("greedy", 2, False, 1e9, 1.0, 100)
    older["budget_exhausted"], older["stopped_by"] = True, None  # before records named the budget
    records = [record("greedy", 0, True, 1e9, 1.0, 100, stopped_by="max_tokens"),
               record("greedy", 1, True, 1e9, 1.0, 100, stopped_by="max_tokens"), older]
    assert "| 100 | 1 (a budget), 2 (max_tokens) | 0 |" in markdown_report(records)


def test_report_keeps_every_model(tmp_path: Path) -> None:
    small, large = record("greedy", 0, True, model="0.5b"), record("greedy", 0, False, model="1.5b")
    rehashed = {**large, "model": {"name": "1.5b", "sha256": "cd" * 32}}
    assert deduplicated([small, large, dict(large), rehashed]) == [small, large, rehashed]
    first, second = tmp_path / "a-0.5b.jsonl", tmp_path / "b-1.5b.jsonl"
    write_jsonl(first, [small])
    write_jsonl(second, [large])
    report = write_report([first, second], None)
    assert "| 0.5b | gsm8k-test | `greedy` | 1 | 100.0 %" in report
    assert "| 1.5b | gsm8k-test | `greedy` | 1 | 0.0 %" in report


def test_the_papers_figures_stand_beside_its_own_data_set_only(tmp_path: Path) -> None:
    on_svamp = [{**record("greedy", i, i == 0, 1e9), "dataset": "svamp"} for i in range(2)]
    report = markdown_report(on_svamp)
    assert "| m | svamp | `greedy` | 2 |" in report
    assert "Mistral-7B" not in report
    assert "Mistral-7B (paper) | gsm8k-test" in markdown_report(on_svamp + [record("greedy", 0, True)])
    on_train = [{**record("greedy", i, i == 0, 1e9), "dataset": "gsm8k-train"} for i in range(2)]
    assert "Mistral-7B" not in markdown_report(on_train)
    svg = plot_frontier(summarize(on_train), "gsm8k-train", tmp_path / "frontier-gsm8k-train")[1].read_text()
    assert "REBASE-3" not in svg and "Mistral" not in svg  # the paper measured test problems, not train


def test_report_of_a_missing_run_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.jsonl"
    with pytest.raises(RunFileError, match="typo.jsonl"):
        write_report([missing], None)
    assert main(["report", str(missing), "--no-plot"]) == 2
    assert str(missing) in capsys.readouterr().err
    created = RunFile(tmp_path / "new" / "run.jsonl")  # a run creates its file
    created.close()
    assert created.by_key == {}


# --- candidates ---------------------------------------------------------------------------


def test_report_counts_vote_and_coverage_over_the_candidates() -> None:
    # Gold is "1". Picked, what the strategy chose; vote, a majority (a tie to the first seen);
    # coverage, some candidate right, graded as answers are ("1.0" is 1).
    answers = [(True, ["2", "1", "2"]), (False, ["1", "2", None]), (False, ["3", "1.0"]), (False, ["3", "2"])]
    records = [record("best-of-n:n=3", problem, correct) for problem, (correct, _) in enumerate(answers)]
    for item, (_, candidates) in zip(records, answers):
        item["candidates"] = [{"answer": answer, "score": None, "votes": None} for answer in candidates]
    records.append(record("best-of-n:n=3", 4, None))  # a failed solve: no candidates, not graded
    records.append(record("greedy", 0, True))  # one candidate per solve: nothing to tell apart
    records[-1]["candidates"] = [{"answer": "1", "score": None, "votes": None}]
    counts = {row.label: row.candidates for row in summarize(records)}
    assert counts["greedy"] is None
    assert counts["best-of-n:n=3"] == CandidateCounts(voted=1, covered=3, mean_candidates=2.5)
    report = markdown_report(records)
    assert ("## Candidates\n" in report and "  - `best-of-n:n=3`: picked 1, vote 1, coverage 3 of 4 "
            "(2.5 candidates per problem)\n" in report)
    assert "`greedy`: picked" not in report
    assert "## Candidates" not in markdown_report(records[-1:])


def test_report_counts_what_best_of_n_s_two_selections_would_pick_over_scored_candidates() -> None:
    # Gold is "1". Each problem: the candidates' (answer, score); None scores were never scored.
    problems = [
        [("2", 0.9), ("1", 0.6), ("1", 0.6)],        # max picks 2; weighted 1 (1.2 against 0.9)
        [("1", 0.9), ("2", 0.5), ("2", 0.5)],        # max 1; weighted 2 (1.0 against 0.9)
        [("2", 0.5), ("1", 1.0), ("1", None)],       # weighted ties 1.0 to 1.0 on sums; the higher single score, 1, wins
        [("2", 0.5), ("1", 0.5), ("2", 0.5), ("1", 0.5)],  # all even: the first candidate, 2, for both
        [("1", None), ("1", None), ("2", None)],     # nothing scored: both fall back to the vote, 1 (alone, a row with no scores: None)
    ]
    records = [record("best-of-n:n=4", problem, False) for problem in range(len(problems))]
    for item, candidates in zip(records, problems):
        item["candidates"] = [{"answer": answer, "score": score, "votes": None} for answer, score in candidates]
    counts = summarize(records)[0].candidates
    assert counts is not None and (counts.top_scored, counts.weighted) == (3, 3)
    assert ("  - `best-of-n:n=4`: picked 0, vote 3, top-scored 3, score-weighted vote 3, coverage 5 of 5 "
            "(3.2 candidates per problem)\n" in markdown_report(records))
    per_problem = [summarize([records[problem]])[0].candidates for problem in range(len(problems))]
    assert [(c.top_scored, c.weighted) for c in per_problem] == [(0, 1), (1, 0), (1, 1), (0, 0), (None, None)]


# --- the plot -----------------------------------------------------------------------------


def test_plot_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = tmp_path / "run.jsonl"
    write_jsonl(runs, FIXED_RECORDS)
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "strategyd_bench", "report", str(runs),
                             "--out-dir", str(out)], env=bench_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("frontier-gsm8k-test.png", "frontier-gsm8k-test.svg", "report.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "frontier-gsm8k-test.png").read_bytes().startswith(b"\x89PNG")
    assert "<svg" in (out / "frontier-gsm8k-test.svg").read_text(encoding="utf-8")
    assert "![accuracy vs FLOPs](frontier-gsm8k-test.svg)" in (out / "report.md").read_text(encoding="utf-8")
    assert result.stdout == (out / "report.md").read_text(encoding="utf-8")


def svg_texts(path: Path) -> List[str]:
    """The texts of a matplotlib SVG: it draws each as paths after a comment that holds it."""
    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))


def test_plot_has_a_panel_per_model_and_marks_rows_on_fewer_problems(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    records = ([record("greedy", i, i < 2, 1e9, model="small") for i in range(4)]
               + [record("rebase:width=4", i, i < 1, 4e9, model="small") for i in range(3)]
               + [record("greedy", i, i < 3, 3e9, model="large") for i in range(4)])
    stem = tmp_path / "frontier"
    plot_frontier(summarize(records), "gsm8k-test", stem)
    texts = svg_texts(stem.with_suffix(".svg"))
    assert texts.count("small") == 1 and texts.count("large") == 1  # a panel title each
    assert texts.count("REBASE-3") == 2  # the paper's points in both panels
    # rebase ran on 3 of the small model's 4 problems: hollow, its n beside it, the key in the legend.
    assert texts.count("n = 3") == 1 and "n = 4" not in texts
    assert "fewer problems than the model's fullest row" in texts
    assert texts.count("greedy") == 1 and texts.count("rebase") == 1  # one legend entry a strategy

    plot_frontier(summarize(records[:4]), "gsm8k-test", stem)  # every row complete
    assert "fewer problems than the model's fullest row" not in svg_texts(stem.with_suffix(".svg"))
