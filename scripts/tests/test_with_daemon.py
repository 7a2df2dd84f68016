"""scripts/with-daemon: a real daemon on the test model for the command's life, and gone after."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "with-daemon"
BIN = Path(os.environ.get("STRATEGYD_BIN") or REPO / ".build" / "debug" / "strategyd").parent
MODEL = "smollm2-135m-instruct-q4_1"


def with_daemon(*args, timeout=300):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_the_command_talks_to_the_daemon_and_its_status_is_kept(tmp_path):
    seen = tmp_path / "socket"
    status = tmp_path / "status.json"
    result = with_daemon("--bin", str(BIN), MODEL, "--max-concurrent-solves", "3", "--", "sh", "-c",
                         f'echo "$STRATEGYD_SOCKET" > {seen}; '
                         f'"{BIN}/strategyctl" status --json --socket "$STRATEGYD_SOCKET" > {status}; exit 7')
    assert result.returncode == 7, result.stderr
    reported = json.loads(status.read_text())
    assert reported["limits"]["max_concurrent_solves"] == 3  # the daemon arguments reach the daemon
    socket = seen.read_text().strip()
    after = subprocess.run([str(BIN / "strategyctl"), "status", "--socket", socket],
                           capture_output=True, text=True, timeout=30)
    assert after.returncode != 0, "the daemon outlived the command"


def test_a_daemon_that_cannot_start_fails_with_its_log():
    result = with_daemon("--bin", str(BIN), MODEL, "--context-size", "1", "--", "true")
    assert result.returncode != 0
    assert "--context-size must be in" in result.stderr


def test_usage_without_a_command():
    result = with_daemon(MODEL, "--")
    assert result.returncode == 2 and "usage" in result.stderr


def test_terminated_it_ends_the_command_then_the_daemon(tmp_path):
    seen = tmp_path / "socket"
    process = subprocess.Popen([str(SCRIPT), "--bin", str(BIN), MODEL, "--", "sh", "-c",
                                f'echo "$STRATEGYD_SOCKET" > {seen}.tmp; mv {seen}.tmp {seen}; exec sleep 600'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not seen.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.2)
        socket = seen.read_text().strip()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM  # the command's own status: sleep ended by TERM
    finally:
        if process.poll() is None:
            process.kill()
    after = subprocess.run([str(BIN / "strategyctl"), "status", "--socket", socket],
                           capture_output=True, text=True, timeout=30)
    assert after.returncode != 0, "the daemon outlived the command"
