"""Sweeps over a Ray cluster: a real local cluster of two nodes (Ray's own cluster_utils,
two raylets on this host), a real strategyd per node on the test model, and the harness's
command line as a user runs it."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest
from ray.cluster_utils import Cluster

from bench_helpers import bench_env, read_lines, write_jsonl
from strategyd_daemon import MODEL, REPO, start_daemon

OBJECT_STORE_BYTES = 80 << 20  # Ray's floor is 75 MiB; the runs move kilobytes
PROBLEMS = 8


def start_cluster(node_env: List[Dict[str, str]]) -> Cluster:
    """A head and more nodes on this host, one CPU each, each with its own environment."""
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "object_store_memory": OBJECT_STORE_BYTES, "env_vars": node_env[0]})
    for env in node_env[1:]:
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE_BYTES, env_vars=env)
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = start_cluster([{}, {}])
    yield started
    started.shutdown()


def bin_dir() -> Path:
    binary = Path(os.environ.get("STRATEGYD_BIN") or REPO / ".build" / "debug" / "strategyd")
    return binary.parent


def counting_dataset(folder: Path) -> Path:
    """Problems whose greedy answers run to the token cap: each solve takes a second or so."""
    write_jsonl(folder / "gsm8k-test.jsonl",
                [{"question": f"Write the numbers from {i} to {i + 200}, one per line.", "answer": f"#### {i}"}
                 for i in range(PROBLEMS)])
    return folder


def ray_command(cluster: Cluster, data_dir: Path, out: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "strategyd_bench", "run", "--ray", cluster.address, "--data-dir", str(data_dir),
            "--dataset", "gsm8k-test", "--out", str(out), "--strategy", "greedy:max_tokens=40", *extra]


def private_daemons() -> List[str]:
    """Pids of daemons the node actors started (their sockets are under strategyd-ray-*)."""
    found = subprocess.run(["pgrep", "-f", "strategyd-ray-.*/strategyd.sock"], capture_output=True, text=True)
    return found.stdout.split()


def private_daemon_command(cluster: Cluster, data_dir: Path, out: Path) -> List[str]:
    return ray_command(cluster, data_dir, out, "--ray-model", str(MODEL), "--ray-threads", "1",
                       "--ray-bin", str(bin_dir()), "--ray-daemon-arg=--context-size=4096", "--concurrency", "1")


def run_and_kill(command: List[str], out: Path, victims: Callable[[], List[str]]) -> str:
    """Runs the command until both nodes have recorded a problem, SIGKILLs the first of
    `victims`, and returns the run's stderr once it ends."""
    run = subprocess.Popen(command, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            records = read_lines(out) if out.exists() else []
            if len({record["node"] for record in records}) == 2:
                break
            assert run.poll() is None, run.communicate()[1]
            assert time.monotonic() < deadline, "no record from both nodes within 240 s"
            time.sleep(0.1)
        assert len(records) < PROBLEMS, "the run ended before a node could be killed"
        pids = victims()
        assert len(pids) == 2, pids
        os.kill(int(pids[0]), signal.SIGKILL)
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0, stderr
    return stderr


def gone(processes: Callable[[], List[str]], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes() == []


def node_actors() -> List[str]:
    return subprocess.run(["pgrep", "-f", "^ray::NodeDaemon"], capture_output=True, text=True).stdout.split()


def test_a_run_uses_every_node_survives_a_lost_actor_and_resumes(cluster: Cluster, tmp_path: Path) -> None:
    data_dir = counting_dataset(tmp_path)
    out = tmp_path / "run.jsonl"
    command = private_daemon_command(cluster, data_dir, out)
    stderr = run_and_kill(command, out, node_actors)
    assert "lost" in stderr and "go to the other nodes" in stderr, stderr
    records = read_lines(out)
    assert len(records) == PROBLEMS, f"{len(records)} records"
    assert sorted(record["problem_id"] for record in records) == list(range(PROBLEMS))
    assert all(record["error"] is None and 0 < record["metrics"]["generated_tokens"] <= 40 for record in records)
    assert len({record["node"] for record in records}) == 2
    # The lost actor's daemon went with it; the other was stopped at the end.
    assert gone(private_daemons)

    before = out.read_bytes()
    again = subprocess.run(command, env=bench_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == before, "resuming solved something again"
    assert f"{PROBLEMS}/{PROBLEMS}" in again.stderr


def test_a_daemon_lost_under_its_live_actor_gives_its_problems_to_the_other_node(
        cluster: Cluster, tmp_path: Path) -> None:
    data_dir = counting_dataset(tmp_path)
    out = tmp_path / "run.jsonl"
    stderr = run_and_kill(private_daemon_command(cluster, data_dir, out), out, private_daemons)
    assert "lost (ConnectionLost)" in stderr or "lost (DaemonNotRunning)" in stderr, stderr
    records = read_lines(out)
    assert sorted(record["problem_id"] for record in records) == list(range(PROBLEMS))
    assert all(record["error"] is None for record in records)
    assert gone(node_actors), "the actors outlived the run"
    assert gone(private_daemons)


def test_ray_options_need_ray(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "strategyd_bench", "run", "--out", str(tmp_path / "r.jsonl"),
                             "--strategy", "greedy", "--ray-model", "m"], env=bench_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "--ray-model without --ray" in result.stderr


def test_a_node_on_another_model_is_refused(tmp_path: Path) -> None:
    # The same weights and name with other bytes: a file of its own sha256 that loads.
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / MODEL.name
    shutil.copyfile(MODEL, other)
    with open(other, "ab") as file:
        file.write(b"\0" * 64)
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
    first = start_daemon(folders[0])
    second = start_daemon(folders[1], ["--model", str(other)])
    cluster = start_cluster([{"STRATEGYD_SOCKET": first.socket_path}, {"STRATEGYD_SOCKET": second.socket_path}])
    try:
        data_dir = counting_dataset(tmp_path)
        out = tmp_path / "run.jsonl"
        result = subprocess.run(ray_command(cluster, data_dir, out), env=bench_env(), capture_output=True, text=True,
                                timeout=300)
    finally:
        cluster.shutdown()
        first.stop()
        second.stop()
    assert result.returncode == 2, result.stderr
    assert "differs from node" in result.stderr and "model sha256" in result.stderr, result.stderr
    assert not out.exists() or out.read_bytes() == b""
