"""strategyd-bench calibrate: the file the auto strategy reads."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench_helpers import bench_env, record, write_jsonl
from strategyd_bench.calibrate import FORMAT, calibration
from strategyd_bench.errors import UsageError


def runs(tmp_path: Path, rows) -> Path:
    path = tmp_path / "run.jsonl"
    write_jsonl(path, rows)
    return path


def test_accuracy_flops_and_the_frontier(tmp_path: Path) -> None:
    # Measured on problems 0-2, the ones every spec was graded on (k=8 failed on 3).
    rows = ([record("greedy", i, i < 1, 1e9) for i in range(4)]                       # 1/3 at 1 G
            + [record("self-consistency:k=4", i, i < 2, 4e9) for i in range(4)]      # 2/3 at 4 G
            + [record("rebase:width=4", i, i < 1, 6e9) for i in range(4)]            # 1/3 at 6 G: dominated
            + [record("self-consistency:k=8", i, True, 8e9) for i in range(3)]       # 3/3 at 8 G
            + [record("self-consistency:k=8", 3, None)])                              # a failure is not graded
    result = calibration([runs(tmp_path, rows)])
    assert result["format"] == FORMAT
    (model,) = result["models"]
    assert model["sha256"] == "ab" * 32 and model["dataset"] == "gsm8k-test"
    specs = {spec["spec"]: spec for spec in model["specs"]}
    assert [spec["spec"] for spec in model["specs"]] == ["greedy", "self-consistency:k=4", "rebase:width=4",
                                                        "self-consistency:k=8"]  # cheapest first
    assert specs["greedy"]["problems"] == 3 and specs["greedy"]["solved"] == 1 and specs["greedy"]["mean_flops"] == 1e9
    assert specs["self-consistency:k=8"]["problems"] == 3 and specs["self-consistency:k=8"]["solved"] == 3
    assert {name for name, spec in specs.items() if spec["frontier"]} == {"greedy", "self-consistency:k=4",
                                                                          "self-consistency:k=8"}
    assert specs["self-consistency:k=4"]["strategy"] == "self-consistency"
    assert specs["self-consistency:k=4"]["params"] == {"k": "4"}


def test_each_shared_problem_s_flops_and_outcome_cheapest_first(tmp_path: Path) -> None:
    # What auto reads under a cap: greedy's dear problems are the ones it solves.
    rows = ([record("greedy", i, i >= 2, flops) for i, flops in enumerate([3e9, 1e9, 4e9, 2e9])]
            + [record("self-consistency:k=4", i, True, 8e9) for i in range(3)])  # problem 3 not shared
    (model,) = calibration([runs(tmp_path, rows)])["models"]
    specs = {spec["spec"]: spec for spec in model["specs"]}
    assert specs["greedy"]["solves"] == [{"flops": 1e9, "correct": False}, {"flops": 3e9, "correct": False},
                                         {"flops": 4e9, "correct": True}]
    assert len(specs["self-consistency:k=4"]["solves"]) == 3


def test_the_newest_plugin_version_stands_for_a_spec(tmp_path: Path) -> None:
    old = [record("greedy", i, False, 1e9) for i in range(4)]
    new = [record("greedy", i, True, 2e9) for i in range(4)]
    for row in new:
        row["strategy"]["version"] = "1.10.0"  # newer than 1.9.x, read as numbers
    for row in old:
        row["strategy"]["version"] = "1.9.0"
    (model,) = calibration([runs(tmp_path, old + new)])["models"]
    (spec,) = model["specs"]
    assert spec["accuracy"] == 1.0 and spec["mean_flops"] == 2e9


def test_several_datasets_need_a_choice(tmp_path: Path) -> None:
    rows = [record("greedy", 0, True, 1e9), {**record("greedy", 0, True, 1e9), "dataset": "svamp"}]
    with pytest.raises(UsageError, match="--dataset"):
        calibration([runs(tmp_path, rows)])
    (model,) = calibration([runs(tmp_path, rows)], dataset="svamp")["models"]
    assert model["dataset"] == "svamp"


def test_the_command_writes_the_file(tmp_path: Path) -> None:
    path = runs(tmp_path, [record("greedy", i, True, 1e9) for i in range(2)])
    out = tmp_path / "calibration.json"
    result = subprocess.run([sys.executable, "-m", "strategyd_bench", "calibrate", str(path), "--out", str(out)],
                            capture_output=True, text=True, env=bench_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["models"][0]["specs"][0]["frontier"] is True
    assert "greedy: 2/2" in result.stdout


def test_a_budget_that_stopped_nothing_counts_as_the_bare_spec(tmp_path: Path) -> None:
    def budgeted(spec: str, problem_id: int, correct: bool, stopped_by=None):
        row = record(spec, problem_id, correct, 1e9, stopped_by=stopped_by)
        row.update(spec=f"{spec}@timeout_s=3600", budget={"timeout_s": 3600})
        return row
    rows = ([budgeted("greedy", i, i < 3) for i in range(4)] + [record("greedy", 3, True, 1e9)]  # problem 3 twice
            + [budgeted("self-consistency:k=8", i, True, stopped_by="timeout_s" if i == 0 else None) for i in range(4)]
            + [budgeted("best-of-n:n=8", i, True, stopped_by="kv_cache" if i == 0 else None) for i in range(4)])
    (model,) = calibration([runs(tmp_path, rows)])["models"]
    specs = {spec["spec"]: spec for spec in model["specs"]}
    # A stop by something other than its budget (the KV cache) does not make the budget binding.
    assert set(specs) == {"greedy", "self-consistency:k=8@timeout_s=3600", "best-of-n:n=8"}
    assert specs["greedy"]["budget"] == {} and specs["greedy"]["problems"] == 4
    assert specs["self-consistency:k=8@timeout_s=3600"]["budget"] == {"timeout_s": 3600}


def test_specs_on_different_samples_are_compared_on_the_problems_they_share(tmp_path: Path) -> None:
    # greedy on 8 problems, 3-7 right; best-of-n only on the first 4, where it beats greedy.
    rows = ([record("greedy", i, i >= 3, 1e9) for i in range(8)]
            + [record("best-of-n:n=4", i, i >= 2, 4e9) for i in range(4)])
    (model,) = calibration([runs(tmp_path, rows)])["models"]
    specs = {spec["spec"]: spec for spec in model["specs"]}
    assert specs["greedy"]["problems"] == 4 and specs["greedy"]["graded"] == 8 and specs["greedy"]["solved"] == 1
    assert specs["best-of-n:n=4"]["solved"] == 2 and specs["best-of-n:n=4"]["frontier"]
    disjoint = [record("greedy", 0, True, 1e9), record("best-of-n:n=4", 1, True, 4e9)]
    with pytest.raises(UsageError, match="share no problem"):
        calibration([runs(tmp_path, disjoint)])
