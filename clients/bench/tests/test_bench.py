"""strategyd-bench run: spec parsing, presets, data sets, run files, solving with a scripted
client, and runs against the real daemon (the test model cannot do maths: these test
mechanics, resume above all)."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import pytest
from bench_helpers import FIXED_RECORDS, bench_env, read_lines, record, write_jsonl
from strategyd_daemon import Daemon

from strategyd_bench import run
from strategyd_bench.cli import build_parser, resolve_specs
from strategyd_bench.data import Problem, load_dataset, select_problems
from strategyd_bench.errors import RunFileError, UsageError
from strategyd_bench.grading import is_correct
from strategyd_bench.presets import PRESETS
from strategyd_bench.run import RunContext, check_strategies, run_spec, solve_problem
from strategyd_bench.runfile import RunFile, read_run_file, record_key
from strategyd_bench.report import deduplicated
from strategyd_bench.specs import Spec, parse_spec
from strategyd_client import Client, ConnectionLost, PluginInfo, SolveResult


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
    # Default params: added where a spec does not set them, and written into its label.
    assert parse_spec("greedy", default_params="max_tokens=1024").label == "greedy:max_tokens=1024"
    added = parse_spec("rebase:width=4,scorer=arith@timeout_s=5", default_params="max_tokens=1024,width=8")
    assert added.label == "rebase:width=4,scorer=arith,max_tokens=1024@timeout_s=5"
    assert added.params == {"width": 4, "scorer": "arith", "max_tokens": 1024}
    assert parse_spec("greedy:max_tokens=9", default_params="max_tokens=1024").params == {"max_tokens": 9}
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


def test_a_param_may_go_by_an_alias_its_schema_declares() -> None:
    class Plugins:
        def plugins(self) -> List[PluginInfo]:
            return [PluginInfo.from_json({
                "name": "self-consistency", "kind": "strategy", "version": "1.2.0", "abi": 1, "file": "x.so",
                "generation": 1, "loaded_at": "", "description": "", "in_flight": 0,
                "params_schema": {"n": {"type": "integer", "aliases": ["k"]}, "temperature": {}}})]

    specs = [parse_spec("self-consistency:k=4"), parse_spec("self-consistency:n=4,temperature=0.5")]
    assert check_strategies(Plugins(), specs) == {"self-consistency": "1.2.0"}  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="has no param m; its params: n, temperature"):
        check_strategies(Plugins(), [parse_spec("self-consistency:m=4")])  # type: ignore[arg-type]


def test_paper_preset_params_are_in_the_schemas(client: Client) -> None:
    loaded = {plugin.name for plugin in client.plugins()}
    specs = [spec for spec in resolve_specs(build_parser().parse_args(["run", "--preset", "paper", "--out", "x"]))
             if spec.strategy in loaded]  # the test daemon may lack plugins still being built
    assert any(spec.strategy == "rebase" for spec in specs)
    check_strategies(client, specs)


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


# --- run files ----------------------------------------------------------------------------


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


def test_run_file_refuses_records_of_another_problem_text(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    asked = Problem(0, "What is 6 * 7?", "42", None)
    write_jsonl(path, [{**FIXED_RECORDS[0], "problem_sha256": asked.text_sha256},
                       FIXED_RECORDS[1]])  # no fingerprint (an older record): not checked
    run_file = RunFile(path)
    try:
        dataset = FIXED_RECORDS[0]["dataset"]
        run_file.check_problems(dataset, [asked, Problem(1, "anything", "1", None)])
        run_file.check_problems("svamp", [Problem(0, "another data set", "1", None)])
        with pytest.raises(UsageError, match="problem 0 of"):
            run_file.check_problems(dataset, [Problem(0, "What is 6 * 7?\n\nAn added instruction.", "42", None)])
    finally:
        run_file.close()


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
    commit, dirty = run.git_state(run_file)
    assert commit is not None and len(commit) == 40 and dirty is False
    assert run.git_state()[1] is True  # without the run file named, its growth counts
    deeper.write_text("changed\n")  # only the run file's own folder is left out
    assert run.git_state(run_file)[1] is True
    git("checkout", "--", str(deeper))
    source.write_text("changed\n")
    assert run.git_state(run_file)[1] is True
    assert run.git_state(tmp_path.parent / "elsewhere.jsonl")[1] is True  # a run file outside the repository


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


def test_the_plugins_a_specs_params_name_are_part_of_its_condition() -> None:
    spec = parse_spec("best-of-n:n=8,scorer=self-certainty")
    assert run.plugins_named(spec, ["best-of-n", "self-certainty", "arith"]) == ["self-certainty"]
    loaded = ["best-of-n", "combine", "arith", "logprob", "greedy"]
    combined = Spec("c", "best-of-n", {"scorer": "combine", "scorer_params": {"scorers": "arith:0.5,logprob"}}, {})
    assert run.plugins_named(combined, loaded) == ["arith", "combine", "logprob"]
    as_written = parse_spec('best-of-n:n=8,scorer=combine,scorer_params={"scorers":"arith:0.5,logprob"}')
    assert run.plugins_named(as_written, loaded) == ["arith", "combine", "logprob"]

    class Plugins:
        def plugins(self) -> List[PluginInfo]:
            def info(name: str, kind: str, version: str, schema: Dict[str, Any]) -> PluginInfo:
                return PluginInfo.from_json({"name": name, "kind": kind, "version": version, "abi": 1, "file": "x.so",
                                             "generation": 1, "loaded_at": "", "description": "", "in_flight": 0,
                                             "params_schema": schema})
            return [info("best-of-n", "strategy", "1.5.0", {"n": {}, "scorer": {}}),
                    info("self-certainty", "scorer", "1.1.0", {}), info("arith", "scorer", "1.0.0", {})]

    assert check_strategies(Plugins(), [spec]) == {"best-of-n": "1.5.0", "self-certainty": "1.1.0"}  # type: ignore[arg-type]
    problem = Problem(0, "q", "72", None)
    old, new = (dataclasses.replace(CONTEXT, strategy_versions={"best-of-n": "1.5.0", "self-certainty": version})
                for version in ("1.0.0", "1.1.0"))
    assert run.problem_key(old, spec, problem) != run.problem_key(new, spec, problem)
    # What a run writes is what it resumes by.
    written = run.problem_record(new, spec, problem, run.failed(spec, "1.5.0", RuntimeError("lost")))
    assert written["strategy"]["uses"] == {"self-certainty": "1.1.0"}
    assert record_key(written) == run.problem_key(new, spec, problem)
    # A spec that names no other plugin keeps the key its records had before `uses`.
    greedy = parse_spec("greedy")
    plain = run.problem_record(CONTEXT, greedy, problem, run.failed(greedy, "1.0.0", RuntimeError("lost")))
    assert "uses" not in plain["strategy"]
    assert record_key(plain) == json.dumps(["gsm8k-test", 0, "greedy", "1.0.0", "{}", "{}", 0], sort_keys=True)


def test_a_grading_failure_is_that_problems_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_grader(answer: Optional[str], gold: str) -> bool:
        raise ValueError("a bug in grading")

    monkeypatch.setattr(run, "is_correct", failing_grader)
    solved = solve_problem(ScriptedClient({"q": "72"}), parse_spec("greedy"),  # type: ignore[arg-type]
                           Problem(0, "q", "72", None), CONTEXT, None, threading.Event())
    assert solved["correct"] is None and solved["error"] is None  # solving threads do not grade
    graded = run.graded(solved)
    assert graded["error"] == {"type": "ValueError", "code": None, "message": "a bug in grading"}
    assert graded["correct"] is None and graded["problem_id"] == 0


def test_solves_finished_when_the_run_stops_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fatal_first(futures: Sequence["Future[Any]"]) -> Iterable["Future[Any]"]:
        wait(futures)  # every solve has finished; the one that stops the run comes first
        return sorted(futures, key=lambda future: future.exception() is None)

    monkeypatch.setattr(run, "as_completed", fatal_first)
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


def bench_command(daemon: Daemon, data_dir: Path, out: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "strategyd_bench", "run", "--socket", daemon.socket_path,
            "--data-dir", str(data_dir), "--dataset", "gsm8k-test", "--out", str(out), *extra]


def small_dataset(folder: Path, size: int) -> Path:
    write_jsonl(folder / "gsm8k-test.jsonl",
                [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"}
                 for i in range(size)])
    return folder


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
        assert r["model"]["name"] == "smollm2-135m-instruct-q4_1" and r["model"]["sha256"]
        assert isinstance(r["details"], dict), "the strategy's details are part of its record"
    with Client(daemon.socket_path) as client:
        running = client.status().limits["max_concurrent_solves"]
    # Without --concurrency, as many solves in flight as the daemon runs at once.
    assert {r["concurrency"] for r in records} == {running}
    assert {json.dumps(r["budget"]) for r in records} == {"{}", '{"max_tokens": 400}'}
    assert len({record_key(r) for r in records}) == len(records)
    with Client(daemon.socket_path) as client:
        info = client.models_info()
    assert info.backend["system_info"].startswith("CPU : ")
    assert {json.dumps(r["backend"], sort_keys=True) for r in records} == {
        json.dumps({**info.backend, "threads": info.extra["threads"], "deterministic": False}, sort_keys=True)}

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
