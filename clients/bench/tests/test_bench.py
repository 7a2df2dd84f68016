"""strategyd-bench: grading, spec parsing, the report's numbers and plot, and runs against
the real daemon (the test model cannot do maths: these test mechanics, resume above all)."""
from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pytest
from conftest import Daemon

from strategyd_client import Client, ConnectionLost, SolveResult, bench
from strategyd_client.bench import (PRESETS, Problem, RunContext, RunFile, UsageError, build_parser,
                                    check_strategies, load_dataset, main, parse_spec, resolve_specs, run_spec,
                                    select_problems, solve_problem)
from strategyd_client.grading import gsm8k_gold, is_correct, number_text, parse_number
from strategyd_client.report import (PAPER_ROWS, CandidateCounts, RunFileError, UnknownBaseline, deduplicated,
                                     markdown_report, plot_frontier, read_run_file, record_key, sign_test,
                                     summarize, wilson_interval, write_report)

SOURCE = Path(__file__).resolve().parents[1] / "src"
Z = 1.959963984540054

# --- grading ------------------------------------------------------------------------------


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
    # Unclamped, 0/7 gave a lower bound of 2.8e-17, and the plot's error bar a negative length.
    for trials in range(1, 130):
        for successes in range(trials + 1):
            low, high = wilson_interval(successes, trials)
            assert low <= successes / trials <= high, (successes, trials)


# --- specs, presets and data sets ---------------------------------------------------------


def test_spec_parsing() -> None:
    spec = parse_spec("rebase:width=16,temperature=0.2,adaptive=true,scorer=arith,"
                      'scorer_params={"neutral":0.4,"scope":"last-step"},stop="\\n\\n"@max_tokens=4000,max_flops=1e13')
    assert spec.strategy == "rebase"
    assert spec.params == {"width": 16, "temperature": 0.2, "adaptive": True, "scorer": "arith",
                           "scorer_params": '{"neutral":0.4,"scope":"last-step"}', "stop": "\n\n"}
    assert spec.budget == {"max_tokens": 4000, "max_flops": 1e13}
    plain = parse_spec("greedy", default_budget="timeout_s=30")
    assert (plain.strategy, plain.params, plain.budget, plain.label) == ("greedy", {}, {"timeout_s": 30},
                                                                         "greedy@timeout_s=30")
    assert parse_spec("greedy@max_tokens=9", default_budget="timeout_s=30").budget == {"max_tokens": 9}
    for bad in ("Greedy", "greedy:k", "greedy:k=1,k=2", "greedy@tokens=3", "greedy@max_tokens=1.5",
                "rebase:scorer_params={bad"):
        with pytest.raises(UsageError):
            parse_spec(bad)


def test_paper_preset() -> None:
    args = build_parser().parse_args(["run", "--preset", "paper", "--out", "x.jsonl"])
    specs = resolve_specs(args)
    names = [spec.strategy for spec in specs]
    assert set(names) == {"greedy", "self-consistency", "best-of-n", "rebase", "quiet-star", "quiet-rebase"}
    variants = {spec.params.get("variant") for spec in specs if spec.strategy == "quiet-rebase"}
    assert variants == {"faithful", "anchored"}
    for name in ("self-consistency", "rebase", "quiet-star"):
        assert names.count(name) >= 3, f"{name} needs several points on the frontier"
    assert PRESETS["paper"].dataset == "gsm8k-test" and PRESETS["paper"].sample == 128
    only = build_parser().parse_args(["run", "--preset", "paper", "--only", "rebase", "--out", "x.jsonl"])
    assert {spec.strategy for spec in resolve_specs(only)} == {"rebase"}


def test_paper_preset_params_are_in_the_schemas(client: Client) -> None:
    loaded = {plugin.name for plugin in client.plugins()}
    specs = [spec for spec in resolve_specs(build_parser().parse_args(["run", "--preset", "paper", "--out", "x"]))
             if spec.strategy in loaded]  # the test daemon may lack plugins still being built
    assert any(spec.strategy == "rebase" for spec in specs)
    check_strategies(client, specs)


def write_jsonl(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def test_datasets_and_seeded_selection(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "gsm8k-test.jsonl",
                [{"question": f"What is {i} + 1?", "answer": f"{i} + 1 = {i + 1}\n#### {i + 1:,}"}
                 for i in range(999, 1019)])
    write_jsonl(tmp_path / "svamp.jsonl", [{"Body": "Tom has 3 apples", "Question": "How many?", "Answer": 3.0,
                                            "ID": "chal-1"}])
    write_jsonl(tmp_path / "math500.jsonl", [{"problem": "Half of 1?", "answer": "\\frac{1}{2}",
                                              "unique_id": "test/x/1.json"}])
    gsm8k = load_dataset("gsm8k-test", tmp_path)
    assert [(p.id, p.gold) for p in gsm8k[:2]] == [(0, "1000"), (1, "1001")]
    svamp = load_dataset("svamp", tmp_path)[0]
    assert (svamp.text, svamp.gold, svamp.source_id) == ("Tom has 3 apples. How many?", "3", "chal-1")
    math500 = load_dataset("math500", tmp_path)[0]
    assert (math500.gold, math500.source_id) == ("\\frac{1}{2}", "test/x/1.json")
    chosen = select_problems(gsm8k, sample=8, seed=3, offset=2, limit=4)
    assert [p.id for p in chosen] == sorted(random.Random(3).sample(range(20), 8))[2:6]
    assert [p.id for p in select_problems(gsm8k, None, 0, 5, 2)] == [5, 6]
    with pytest.raises(UsageError):
        load_dataset("svamp", tmp_path / "missing")


# --- run files and the report -------------------------------------------------------------


def record(spec: str, problem_id: int, correct: Optional[bool], flops: float = 0.0, wall_s: float = 0.0,
           tokens: int = 0, model: str = "m", concurrency: int = 1, stopped_by: Optional[str] = None) -> Dict[str, Any]:
    name, _, params = spec.partition(":")
    failed = correct is None
    return {
        "dataset": "gsm8k-test", "problem_id": problem_id, "source_id": None, "spec": spec,
        "params": dict(item.split("=") for item in params.split(",")) if params else {},
        "budget": {}, "seed": 0, "gold": "1", "strategy": {"name": name, "version": "1.0.0", "generation": 1},
        "answer": None if failed else ("1" if correct else "2"), "correct": correct,
        "budget_exhausted": None if failed else stopped_by is not None, "stopped_by": stopped_by,
        "metrics": None if failed else {"flops": flops, "wall_s": wall_s, "evaluated_tokens": tokens},
        "error": {"type": "PluginFailed", "code": -32001, "message": "x"} if failed else None,
        "model": {"name": model, "sha256": "ab" * 32}, "commit": "c0ffee", "dirty": False,
        "command": "strategyd-bench run --strategy greedy", "concurrency": concurrency,
        "time": "2026-01-01T00:00:00+00:00",
    }


FIXED_RECORDS = [
    record("greedy", 0, True, 1e9, 1.0, 100),
    record("greedy", 1, True, 2e9, 2.0, 200),
    record("greedy", 2, False, 3e9, 3.0, 300),
    record("greedy", 3, False, 6e9, 6.0, 600),
    record("self-consistency:k=4", 0, True, 8e9, 4.0, 800),
    record("self-consistency:k=4", 1, True, 12e9, 6.0, 1200),
    record("self-consistency:k=4", 2, None),
    record("self-consistency:k=8", 0, True, 30e9, 9.0, 3000, stopped_by="max_flops"),
    record("self-consistency:k=8", 1, False, 34e9, 11.0, 3400, stopped_by="timeout_s"),
]


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


def test_report_names_the_commits_each_row_was_solved_on() -> None:
    # A row resumed over sittings spans builds; a dirty checkout is its own entry.
    records = [record("greedy", problem, True) for problem in range(3)] + [record("rebase:width=4", 0, False)]
    records[1]["commit"] = "beef"
    records[2]["dirty"] = True
    report = markdown_report(records)
    assert "- commit beef: `greedy` 1\n" in report
    assert "- commit c0ffee: `greedy` 1, `rebase:width=4` 1\n" in report
    assert "- commit c0ffee (with uncommitted changes): `greedy` 1\n" in report


def test_report_lists_each_command_once_without_the_sitting_s_socket_and_run_file() -> None:
    # Each sitting ran the same command on another temporary socket, into another checkout.
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


def test_sign_test_known_values() -> None:
    assert sign_test(0, 6) == sign_test(6, 0) == pytest.approx(2 / 64)
    assert sign_test(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert sign_test(3, 12) == pytest.approx(2 * sum(math.comb(15, i) for i in range(4)) / 2 ** 15)
    assert sign_test(5, 5) == sign_test(0, 0) == 1.0


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
    assert "| 1 G | 3.00 (×4 at once) | 100 |" in report
    assert "A wall time marked ×N" in report


def test_run_file_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    whole = "".join(json.dumps(r) + "\n" for r in FIXED_RECORDS[:2])
    path.write_text(whole + '{"dataset": "gsm8k-te', encoding="utf-8")
    assert len(read_run_file(path)) == 2
    assert path.read_text(encoding="utf-8").endswith('"gsm8k-te')  # reading alone changes nothing
    assert len(read_run_file(path, repair=True)) == 2
    assert path.read_text(encoding="utf-8") == whole
    path.write_text(whole.rstrip("\n"), encoding="utf-8")  # a whole record, its newline lost
    assert len(read_run_file(path, repair=True)) == 2 and path.read_text(encoding="utf-8") == whole
    path.write_text("{broken\n" + whole, encoding="utf-8")
    with pytest.raises(RunFileError):
        read_run_file(path)


def test_run_file_refuses_another_model_or_run(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    write_jsonl(path, FIXED_RECORDS[:1])
    run_file = RunFile(path)
    try:
        with pytest.raises(UsageError, match="another strategyd-bench run"):
            RunFile(path)
        run_file.check_model({"name": "m", "sha256": None})
        with pytest.raises(UsageError):
            run_file.check_model({"name": "other", "sha256": "ab" * 32})
        with pytest.raises(UsageError):
            run_file.check_model({"name": "m", "sha256": "cd" * 32})
    finally:
        run_file.close()


def test_a_success_beats_a_failure_of_its_key(tmp_path: Path) -> None:
    failed, solved = record("greedy", 0, None), record("greedy", 0, True, 1e9, 1.0, 100)
    assert deduplicated([failed, solved]) == [solved]
    path = tmp_path / "run.jsonl"
    write_jsonl(path, [failed, solved])
    run_file = RunFile(path)
    try:
        assert run_file.by_key == {record_key(solved): solved}  # resuming does not solve it again
        assert run_file.drop_errors({record_key(failed)}) == 1
        assert read_lines(path) == [solved] and run_file.by_key == {record_key(solved): solved}
    finally:
        run_file.close()


def test_retry_errors_drops_only_the_failures_it_runs_again(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    retried, other_spec, other_problem = (record("greedy", 0, None), record("self-consistency:k=4", 0, None),
                                          record("greedy", 1, None))
    write_jsonl(path, [retried, other_spec, other_problem])
    run_file = RunFile(path)
    try:
        assert run_file.drop_errors({record_key(retried)}) == 1
        assert read_lines(path) == [other_spec, other_problem]
        assert set(run_file.by_key) == {record_key(other_spec), record_key(other_problem)}
    finally:
        run_file.close()


def test_drop_errors_keeps_the_file_locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.jsonl"
    write_jsonl(path, FIXED_RECORDS)
    locked_when_replaced: List[bool] = []
    replace = os.replace

    def replace_then_try_to_lock(source: str, target: str) -> None:
        replace(source, target)
        with open(target, "ab") as other_run:  # a second run opening the file the moment it is there
            try:
                fcntl.flock(other_run.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked_when_replaced.append(False)
            except BlockingIOError:
                locked_when_replaced.append(True)

    monkeypatch.setattr(os, "replace", replace_then_try_to_lock)
    run_file = RunFile(path)
    try:
        assert run_file.drop_errors({record_key(r) for r in FIXED_RECORDS}) == 1
        assert locked_when_replaced == [True]
        with pytest.raises(UsageError, match="another strategyd-bench run"):
            RunFile(path)
        run_file.append(record("greedy", 9, True))  # appends go to the new file
        assert [r["problem_id"] for r in read_lines(path)][-1] == 9
    finally:
        run_file.close()


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


def test_report_of_a_missing_run_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "typo.jsonl"
    with pytest.raises(RunFileError, match="typo.jsonl"):
        write_report([missing], None)
    assert main(["report", str(missing), "--no-plot"]) == 2
    assert str(missing) in capsys.readouterr().err
    created = RunFile(tmp_path / "new" / "run.jsonl")  # a run creates its file
    created.close()
    assert created.by_key == {}


def test_plot_files(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = tmp_path / "run.jsonl"
    write_jsonl(runs, FIXED_RECORDS)
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "strategyd_client.bench", "report", str(runs),
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


# --- solving, with a scripted client ------------------------------------------------------


CONTEXT = RunContext(dataset="gsm8k-test", seed=0, model={"name": "m", "sha256": None}, daemon_version="0",
                     commit=None, dirty=None, command="test", concurrency=1,
                     strategy_versions={"greedy": "1.0.0"}, backend={})


class ScriptedClient:
    """Stands in for Client: answers each problem text with its answer, or raises its error."""

    def __init__(self, outcomes: Dict[str, Any]) -> None:
        self.outcomes = outcomes

    def solve(self, problem: str, *args: Any, timeout: Optional[float] = None) -> SolveResult:
        outcome = self.outcomes[problem]
        if isinstance(outcome, Exception):
            raise outcome
        return SolveResult.from_json({
            "answer": outcome, "text": outcome, "candidates": [], "budget_exhausted": False,
            "strategy": {"name": "greedy", "version": "1.0.0", "generation": 1}, "metrics": {"flops": 1.0}})

    def close(self) -> None:
        pass


def test_a_grading_failure_is_that_problems_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_grader(answer: Optional[str], gold: str) -> bool:
        raise ValueError("a bug in grading")

    monkeypatch.setattr(bench, "is_correct", failing_grader)
    graded = solve_problem(ScriptedClient({"q": "72"}), parse_spec("greedy"),  # type: ignore[arg-type]
                           Problem(0, "q", "72", None), CONTEXT, None, threading.Event())
    assert graded["error"] == {"type": "ValueError", "code": None, "message": "a bug in grading"}
    assert graded["correct"] is None and graded["problem_id"] == 0


def test_solves_finished_when_the_run_stops_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fatal_first(futures: Sequence["Future[Any]"]) -> Iterable["Future[Any]"]:
        wait(futures)  # every solve has finished; the one that stops the run comes first
        return sorted(futures, key=lambda future: future.exception() is None)

    monkeypatch.setattr(bench, "as_completed", fatal_first)
    problems = [Problem(index, f"q{index}", "1", None) for index in range(3)]
    client = ScriptedClient({"q0": "1", "q1": ConnectionLost("the daemon went away"), "q2": "2"})
    run_file = RunFile(tmp_path / "run.jsonl")
    try:
        with pytest.raises(ConnectionLost):
            run_spec(client, parse_spec("greedy"), problems, run_file, CONTEXT,  # type: ignore[arg-type]
                     "greedy", 3, None)
    finally:
        run_file.close()
    assert [(r["problem_id"], r["correct"]) for r in read_lines(tmp_path / "run.jsonl")] == [(0, True), (2, False)]


# --- runs against the daemon --------------------------------------------------------------


def bench_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE), *filter(None, [env.get("PYTHONPATH")])])
    return env


def bench_command(daemon: Daemon, data_dir: Path, out: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "strategyd_client.bench", "run", "--socket", daemon.socket_path,
            "--data-dir", str(data_dir), "--dataset", "gsm8k-test", "--out", str(out), *extra]


def small_dataset(folder: Path, size: int) -> Path:
    write_jsonl(folder / "gsm8k-test.jsonl",
                [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"}
                 for i in range(size)])
    return folder


def read_lines(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_run_resumes_after_kill(daemon: Daemon, tmp_path: Path) -> None:
    problems = 2
    data_dir = small_dataset(tmp_path, problems)
    out = tmp_path / "run.jsonl"
    # One or two tokens each: solves are slow on a loaded machine, and the mechanics are the same.
    specs = ["greedy:max_tokens=1", "greedy:max_tokens=2@max_tokens=400"]
    command = bench_command(daemon, data_dir, out, *[f"--strategy={spec}" for spec in specs])
    killed = subprocess.Popen(command, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert killed.poll() is None, killed.communicate()[1].decode()
            assert time.monotonic() < deadline, "no record within 60 s"
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
        killed.stderr.close()  # type: ignore[union-attr]
    before = out.read_bytes()
    recorded_before = before.count(b"\n")
    assert 1 <= recorded_before < len(specs) * problems, "the kill came after the run had finished"
    with open(out, "ab") as file:  # as if the kill had come in the middle of a write
        file.write(b'{"dataset": "gsm8k-test", "problem_id": 3, "spe')

    finished = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "dropping a truncated last line" in finished.stderr
    assert out.read_bytes().startswith(before), "a record written before the kill changed"
    records = read_lines(out)
    keys = [(r["spec"], r["problem_id"]) for r in records]
    assert len(keys) == len(set(keys)), "a problem was recorded twice"
    assert sorted(keys) == sorted((spec, i) for spec in specs for i in range(problems)), "a problem was lost"
    for r in records:
        assert r["error"] is None and r["strategy"]["name"] == "greedy" and r["strategy"]["version"]
        assert r["gold"] == str(2 * r["problem_id"]) and r["correct"] is is_correct(r["answer"], r["gold"])
        assert r["metrics"]["flops"] > 0 and r["metrics"]["evaluated_tokens"] > 0 and r["seed"] == 0
        assert r["model"]["name"] == "smollm2-135m-instruct-q4_1" and r["model"]["sha256"] and r["concurrency"] == 1
    assert {json.dumps(r["budget"]) for r in records} == {"{}", '{"max_tokens": 400}'}
    assert len({record_key(r) for r in records}) == len(records)
    with Client(daemon.socket_path) as client:
        info = client.models_info()
    assert info.backend["system_info"].startswith("CPU : ")
    assert {json.dumps(r["backend"], sort_keys=True) for r in records} == {
        json.dumps({**info.backend, "threads": info.extra["threads"]}, sort_keys=True)}

    again = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert len(read_lines(out)) == len(records), "a finished run redid problems"


def test_a_new_plugin_version_solves_recorded_problems_again(daemon: Daemon, tmp_path: Path) -> None:
    data_dir = small_dataset(tmp_path, 2)
    out = tmp_path / "run.jsonl"
    command = bench_command(daemon, data_dir, out, "--strategy", "greedy:max_tokens=1")
    first = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    current = sorted(read_lines(out), key=lambda r: r["problem_id"])
    version = current[0]["strategy"]["version"]
    older = [{**r, "strategy": {**r["strategy"], "version": "0.0.1"}} for r in current]
    write_jsonl(out, [older[0], current[1]])  # problem 0 recorded by an older build of greedy

    again = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    records = read_lines(out)
    assert records[:2] == [older[0], current[1]], "a record of the older version was touched"
    assert [(r["problem_id"], r["strategy"]["version"]) for r in records[2:]] == [(0, version)]


def test_failed_solves_are_recorded_then_retried(daemon: Daemon, tmp_path: Path) -> None:
    # Problem 0 overflows the test daemon's 4096-token context: an engine error, at once.
    write_jsonl(tmp_path / "gsm8k-test.jsonl", [
        {"question": "one two three four five six seven eight nine ten " * 1200, "answer": "#### 1"},
        {"question": "What is 1 + 1?", "answer": "#### 2"},
    ])
    out = tmp_path / "run.jsonl"
    command = bench_command(daemon, tmp_path, out, "--strategy", "greedy:max_tokens=1")
    first = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    failed, solved = sorted(read_lines(out), key=lambda r: r["problem_id"])
    assert failed["error"]["type"] == "EngineError" and failed["correct"] is None and failed["metrics"] is None
    assert failed["strategy"]["version"] == solved["strategy"]["version"], "a retry would not find the failure"
    assert solved["error"] is None and solved["metrics"]["flops"] > 0, "the run stopped at the failure"
    assert "1 failed" in first.stderr

    other_spec = {**failed, "spec": "greedy:max_tokens=2", "params": {"max_tokens": 2}}
    with open(out, "a", encoding="utf-8") as file:  # a failure this command does not run again
        file.write(json.dumps(other_spec) + "\n")
    retried = subprocess.run([*command, "--retry-errors"], env=bench_env(), capture_output=True, text=True,
                             timeout=120)
    assert retried.returncode == 0, retried.stderr
    assert "1 failed records removed" in retried.stderr
    records = read_lines(out)
    assert sorted(r["problem_id"] for r in records) == [0, 0, 1]
    assert records[:2] == [solved, other_spec] and records[2]["error"]["type"] == "EngineError"


def test_unknown_strategy_or_param_stops_before_solving(daemon: Daemon, tmp_path: Path) -> None:
    data_dir = small_dataset(tmp_path, 2)
    out = tmp_path / "run.jsonl"
    for spec, message in (("greedy:bogus=1", "greedy has no param bogus"), ("no-such-strategy", "no strategy")):
        result = subprocess.run(bench_command(daemon, data_dir, out, "--strategy", spec), env=bench_env(),
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists() or out.read_bytes() == b""


def test_report_counts_the_solves_a_budget_stopped() -> None:
    older = record("greedy", 2, False, 1e9, 1.0, 100)
    older["budget_exhausted"], older["stopped_by"] = True, None  # before records named the budget
    records = [record("greedy", 0, True, 1e9, 1.0, 100, stopped_by="max_tokens"),
               record("greedy", 1, True, 1e9, 1.0, 100, stopped_by="max_tokens"), older]
    assert "| 100 | 1 (a budget), 2 (max_tokens) | 0 |" in markdown_report(records)


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
        [("2", 0.5), ("1", 0.5), ("2", 0.5), ("1", 0.5)],  # all even: the earlier best-scored candidate, 2, for both
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


def test_git_state_leaves_the_run_file_out_of_the_dirty_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "results" / "deeper").mkdir(parents=True)
    run_file, source = tmp_path / "results" / "run.jsonl", tmp_path / "source.txt"
    other_model, deeper = tmp_path / "results" / "other-model.jsonl", tmp_path / "results" / "deeper" / "fixture.jsonl"
    for path in (run_file, other_model, deeper):
        path.write_text('{"a": 1}\n')
    source.write_text("code\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.chdir(tmp_path / "results")
    for path in (run_file, other_model):  # another model's run file in the same folder grows too
        with path.open("a") as handle:
            handle.write('{"a": 2}\n')
    commit, dirty = bench.git_state(run_file)
    assert commit is not None and len(commit) == 40 and dirty is False
    assert bench.git_state()[1] is True  # without the run file named, its growth counts
    deeper.write_text("changed\n")  # only the run file's own folder is left out
    assert bench.git_state(run_file)[1] is True
    git("checkout", "--", str(deeper))
    source.write_text("changed\n")
    assert bench.git_state(run_file)[1] is True
    assert bench.git_state(tmp_path.parent / "elsewhere.jsonl")[1] is True  # a run file outside the repository
