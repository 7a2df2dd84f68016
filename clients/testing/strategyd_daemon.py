"""Starts a real strategyd on the test model, for the client's and the harness's tests.

A plain module, not a conftest: each test folder's conftest imports the fixtures from it
(and test modules its constants), so that both folders share one daemon setup and one
`conftest` name never stands for two files.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence

import pytest

from strategyd_client import Client

REPO = Path(__file__).resolve().parents[2]


def _cache_rule():
    """The cache layout, loaded by path from the harness (the one place that states it):
    the client's tests do not import the harness package."""
    path = REPO / "clients" / "bench" / "src" / "strategyd_bench" / "cache.py"
    spec = importlib.util.spec_from_file_location("strategyd_cache_rule", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


MODEL = _cache_rule().model_path("smollm2-135m-instruct-q4_1")
STARTUP_TIMEOUT = 60.0
# status can take seconds to answer while solves run (more on a loaded machine).
STATUS_TIMEOUT = 60.0

# Quick and long greedy solves; the long one keeps generating for many seconds on the test model.
# The test model's greedy story runs into a loop that lasts to max_tokens on every CPU's
# kernels; a greedy count, for one, ends after a few dozen numbers on some (a second).
SHORT_PROBLEM = "What is 2 + 3?"
SHORT_PARAMS: Dict[str, int] = {"max_tokens": 24}
LONG_PROBLEM = "Write a very long story, at least 3000 words, about a lighthouse keeper."
LONG_PARAMS: Dict[str, int] = {"max_tokens": 3000, "progress_every": 8}


class Daemon:
    def __init__(self, process: "subprocess.Popen[bytes]", socket_path: str, log_path: Path) -> None:
        self.process = process
        self.socket_path = socket_path
        self.log_path = log_path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: "subprocess.Popen[bytes]", timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_daemon(folder: Path, extra: Sequence[str] = ()) -> Daemon:
    binary = Path(os.environ.get("STRATEGYD_BIN") or REPO / ".build" / "debug" / "strategyd")
    if not binary.is_file():
        pytest.fail(f"strategyd binary not found at {binary}: run scripts/setup --debug "
                    "(or `swift build`), or set STRATEGYD_BIN", pytrace=False)
    if not MODEL.is_file():
        pytest.fail(f"test model not found at {MODEL}: run scripts/setup", pytrace=False)
    socket_path = str(folder / "s.sock")
    log_path = folder / "strategyd.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(binary), "--model", str(MODEL), "--socket", socket_path,
                                    "--context-size", "4096", *extra],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    daemon = Daemon(process, socket_path, log_path)
    with Client(socket_path, connect_timeout=2) as client:
        if client.wait_ready(STARTUP_TIMEOUT, alive=lambda: process.poll() is None):
            return daemon
    if process.poll() is not None:
        pytest.fail(f"strategyd exited with {process.returncode} while starting:\n{daemon.log_tail()}", pytrace=False)
    daemon.stop()
    pytest.fail(f"strategyd did not answer ping within {STARTUP_TIMEOUT:.0f} s:\n{daemon.log_tail()}", pytrace=False)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = start_daemon(tmp_path_factory.mktemp("daemon"))
    yield started
    started.stop()


@pytest.fixture
def spare_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Daemon]]:
    """Starts extra daemons a test may kill; stops whatever is left at the end of the test."""
    started: List[Daemon] = []

    def start(*extra: str) -> Daemon:
        started.append(start_daemon(tmp_path_factory.mktemp("spare"), extra))
        return started[-1]

    yield start
    for spare in started:
        spare.stop()


@pytest.fixture(autouse=True)
def leaves_daemon_idle(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the shared daemon, waits until no solve of it runs, so a
    cancelled solve still winding down cannot make the next test Busy."""
    yield
    if "daemon" not in request.fixturenames:
        return
    daemon: Daemon = request.getfixturevalue("daemon")
    deadline = time.monotonic() + STATUS_TIMEOUT
    with Client(daemon.socket_path) as client:
        while client.status(timeout=STATUS_TIMEOUT).solves_in_flight > 0:
            assert time.monotonic() < deadline, f"solves still run {STATUS_TIMEOUT:.0f} s after the test ended"
            time.sleep(0.1)


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.socket_path) as connected:
        yield connected
