"""A model over hosts: strategyd puts the test model's layers on two ggml-rpc-servers on
localhost (llama.cpp's RPC backend, built by scripts/setup) and solves as it does locally."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from strategyd_client import Client
from strategyd_daemon import MODEL, REPO, Daemon, stop_process

_rule = importlib.util.spec_from_file_location(
    "strategyd_cache_rule", REPO / "clients" / "bench" / "src" / "strategyd_bench" / "cache.py")
_cache = importlib.util.module_from_spec(_rule)
_rule.loader.exec_module(_cache)  # type: ignore[union-attr]
RPC_SERVER = _cache.cache_dir() / "llama.cpp" / "current" / "bin" / "ggml-rpc-server"
BIN = Path(os.environ.get("STRATEGYD_BIN") or REPO / ".build" / "debug" / "strategyd")
PROBLEM = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. " \
          "How many clips did Natalia sell altogether in April and May?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def rpc_servers(tmp_path: Path) -> Iterator[List[str]]:
    """Two ggml-rpc-servers on loopback, one thread each."""
    assert RPC_SERVER.is_file(), f"{RPC_SERVER} is missing: run scripts/setup"
    endpoints, processes = [], []
    try:
        for number in range(2):
            port = free_port()
            log = open(tmp_path / f"rpc-{number}.log", "wb")
            processes.append(subprocess.Popen([str(RPC_SERVER), "-H", "127.0.0.1", "-p", str(port), "-t", "1"],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            endpoints.append(f"127.0.0.1:{port}")
        for endpoint, process in zip(endpoints, processes):
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, f"ggml-rpc-server at {endpoint} exited with {process.returncode}"
                try:
                    socket.create_connection(("127.0.0.1", int(endpoint.split(":")[1])), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"ggml-rpc-server at {endpoint} did not listen within 30 s"
                    time.sleep(0.1)
        yield endpoints
    finally:
        for process in processes:
            stop_process(process)


def test_the_model_split_over_two_rpc_servers_solves_as_it_does_locally(
        client: Client, spare_daemon: Callable[..., Daemon], rpc_servers: List[str]) -> None:
    split = spare_daemon("--rpc", ",".join(rpc_servers), "--tensor-split", "3,1")
    with Client(split.socket_path) as remote:
        devices = remote.status(timeout=60).model.devices
        info_devices = remote.models_info().devices
        result = remote.solve(PROBLEM, "greedy", {"max_tokens": 96}, seed=0)
    assert info_devices == devices
    assert [device["kind"] for device in devices] == ["cpu", "rpc", "rpc"]
    assert [device["description"] for device in devices[1:]] == rpc_servers
    assert [device["layer_share"] for device in devices[1:]] == [0.75, 0.25]
    assert all(device["memory_total_bytes"] > 0 for device in devices)
    local = client.solve(PROBLEM, "greedy", {"max_tokens": 96}, seed=0)
    assert client.status(timeout=60).model.devices[1:] == []
    # The servers run the same build's CPU kernels on the same weights: the same tokens.
    assert result.metrics.generated_tokens == local.metrics.generated_tokens > 0
    assert result.text == local.text
    assert result.answer == local.answer


def run_daemon(tmp_path: Path, *arguments: str, env: Optional[Dict[str, str]] = None
               ) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([str(BIN), "--model", str(MODEL), "--socket", str(tmp_path / "s.sock"), *arguments],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_an_rpc_server_that_does_not_answer_is_named(tmp_path: Path) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = run_daemon(tmp_path, "--rpc", endpoint)
    assert result.returncode == 3, result.stderr
    assert f"no ggml-rpc-server answers at {endpoint}" in result.stderr


def test_the_unit_environment_file_sets_the_servers(tmp_path: Path) -> None:
    """STRATEGYD_RPC (systemd/strategyd.env) is read as --rpc is, and named in its errors."""
    endpoint = f"127.0.0.1:{free_port()}"
    result = run_daemon(tmp_path, env={"STRATEGYD_RPC": endpoint})
    assert result.returncode == 3, result.stderr
    assert f"no ggml-rpc-server answers at {endpoint}" in result.stderr
    result = run_daemon(tmp_path, env={"STRATEGYD_RPC": "nowhere"})
    assert "STRATEGYD_RPC: 'nowhere' is not HOST:PORT" in result.stderr


@pytest.mark.parametrize("arguments, message", [
    (["--rpc", "localhost"], "--rpc: 'localhost' is not HOST:PORT"),
    (["--rpc", "127.0.0.1:0"], "'127.0.0.1:0' is not HOST:PORT"),
    (["--rpc", "[::1]:50052"], "ggml-rpc speaks IPv4 only"),
    (["--rpc", "127.0.0.1:5,127.0.0.1:5"], "127.0.0.1:5 is named twice"),
    (["--tensor-split", "1,1"], "--tensor-split needs RPC servers"),
    (["--rpc", "127.0.0.1:1", "--tensor-split", "1,-1"], "'-1' is not a share"),
    (["--rpc", "127.0.0.1:1", "--deterministic"], "--deterministic needs every product on this host's CPU"),
])
def test_placement_flags_are_checked_before_loading(tmp_path: Path, arguments: List[str], message: str) -> None:
    result = run_daemon(tmp_path, *arguments)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "loading model" not in result.stderr


def test_the_split_must_name_a_share_per_device(tmp_path: Path, rpc_servers: List[str]) -> None:
    result = run_daemon(tmp_path, "--rpc", ",".join(rpc_servers), "--tensor-split", "1,1,1")
    assert result.returncode == 3, result.stderr
    assert "the split names 3 shares; the RPC servers offer 2 devices" in result.stderr
