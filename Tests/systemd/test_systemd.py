"""The systemd units and the daemon's systemd conventions, without a running systemd:
systemd-analyze verify on the units, socket activation with systemd-socket-activate,
and the notify protocol read from a datagram socket on NOTIFY_SOCKET."""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("STRATEGYD_BIN", REPO / ".build" / "debug" / "strategyd"))
GATEWAY_BIN = BIN.parent / "strategyd-gateway"
# The cache layout is stated once for Python, in the harness; loaded by path so that these
# tests need no package installed.
_rule = importlib.util.spec_from_file_location(
    "strategyd_cache_rule", REPO / "clients" / "bench" / "src" / "strategyd_bench" / "cache.py")
_cache = importlib.util.module_from_spec(_rule)
_rule.loader.exec_module(_cache)  # type: ignore[union-attr]
CACHE = _cache.cache_dir()
MODEL = CACHE / "models" / "smollm2-135m-instruct-q4_1.gguf"


@pytest.fixture(autouse=True)
def built():
    assert BIN.exists(), f"{BIN} is missing: run scripts/setup (or swift build)"
    assert MODEL.exists(), f"{MODEL} is missing: run scripts/setup"


def call(path, method, timeout=30.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(path))
        client.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            assert chunk, "connection closed without an answer"
            data += chunk
    return json.loads(data)


def test_units_verify(tmp_path):
    units = {}
    for name in ("strategyd.service", "strategyd.socket"):
        text = (REPO / "systemd" / name).read_text()
        units[name] = text.replace("/usr/local/bin/strategyd", str(BIN))
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "strategyd.service"),
                             str(tmp_path / "strategyd.socket")], capture_output=True, text=True)
    # verify exits 0 on some problems it only warns about: any output is a finding.
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr + result.stdout
    service = units["strategyd.service"]
    assert "Type=notify" in service and "NoNewPrivileges=yes" in service
    assert "SocketMode=0660" in units["strategyd.socket"]


def test_gateway_unit_verifies(tmp_path):
    units = {name: (REPO / "systemd" / name).read_text() for name in ("strategyd.service", "strategyd.socket")}
    units["strategyd.service"] = units["strategyd.service"].replace("/usr/local/bin/strategyd", str(BIN))
    gateway = (REPO / "systemd" / "strategyd-gateway.service").read_text()
    units["strategyd-gateway.service"] = gateway.replace("/usr/local/bin/strategyd-gateway", str(GATEWAY_BIN))
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "strategyd-gateway.service")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr + result.stdout
    assert "Type=notify" in gateway and "--listen 127.0.0.1:" in gateway and "SupplementaryGroups=strategyd" in gateway


def test_rpc_server_unit_and_the_daemons_rpc_drop_in_verify(tmp_path):
    rpc_server = CACHE / "llama.cpp" / "current" / "bin" / "ggml-rpc-server"
    unit = (REPO / "systemd" / "ggml-rpc-server.service").read_text()
    (tmp_path / "ggml-rpc-server.service").write_text(unit.replace("/usr/local/bin/ggml-rpc-server", str(rpc_server)))
    # The daemon's unit with the drop-in's lines, as systemd merges them.
    drop_in = (REPO / "systemd" / "strategyd-rpc.conf").read_text().split("[Service]\n", 1)[1]
    service = (REPO / "systemd" / "strategyd.service").read_text().replace("/usr/local/bin/strategyd", str(BIN))
    (tmp_path / "strategyd.service").write_text(service.replace("[Install]", drop_in + "\n[Install]"))
    (tmp_path / "strategyd.socket").write_text((REPO / "systemd" / "strategyd.socket").read_text())
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ggml-rpc-server.service"),
                             str(tmp_path / "strategyd.service")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr + result.stdout
    # Loopback only unless the administrator says otherwise: the server has no authentication.
    assert "-H 127.0.0.1" in unit
    assert "EnvironmentFile=-/etc/strategyd/strategyd.env" in service
    env_file = (REPO / "systemd" / "strategyd.env").read_text()
    assert all(line.startswith("#") or not line for line in env_file.splitlines()), "the example sets nothing"


def test_gateway_notify_protocol(tmp_path):
    notify_path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    listen = tmp_path / "gateway.sock"
    # It starts without its daemon (which systemd may start later) and says so on /health.
    gateway = subprocess.Popen([str(GATEWAY_BIN), "--listen", str(listen), "--socket", str(tmp_path / "absent.sock")],
                               env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = listener.recv(4096).decode()
        assert "READY=1" in ready and "STATUS=serving" in ready, ready
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(listen))
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := client.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 503"), reply
        gateway.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in listener.recv(4096).decode()
        assert gateway.wait(timeout=30) == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
        listener.close()


def test_a_broken_unit_fails_verification(tmp_path):
    """The check above can fail: a unit with an unknown type is reported."""
    text = (REPO / "systemd" / "strategyd.service").read_text().replace("Type=notify", "Type=notifyy")
    (tmp_path / "strategyd.service").write_text(text.replace("/usr/local/bin/strategyd", str(BIN)))
    (tmp_path / "strategyd.socket").write_text((REPO / "systemd" / "strategyd.socket").read_text())
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "strategyd.service")],
                            capture_output=True, text=True)
    assert "notifyy" in result.stderr


def test_socket_activation_answers_ping(tmp_path):
    path = tmp_path / "activated.sock"
    activator = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(path), str(BIN), "--model", str(MODEL), "--socket", str(path),
         "--context-size", "2048"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while not path.exists():
            assert time.time() < deadline, "systemd-socket-activate did not create the socket"
            time.sleep(0.05)
        # The first connection starts the daemon on the inherited socket.
        assert call(path, "ping")["result"] == "pong"
        status = call(path, "status")["result"]
        assert status["model"]["architecture"] == "llama"
    finally:
        activator.send_signal(signal.SIGTERM)
        output = activator.communicate(timeout=30)[0].decode()
    assert "activated=true" in output, output


def test_notify_protocol(tmp_path):
    notify_path = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    path = tmp_path / "s.sock"
    daemon = subprocess.Popen([str(BIN), "--model", str(MODEL), "--socket", str(path), "--context-size", "2048"],
                              env={**os.environ, "NOTIFY_SOCKET": str(notify_path)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        assert any(m.startswith("STATUS=loading") for m in messages), messages
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=serving" in ready
        # READY comes once the model is resident and the socket listens.
        assert call(path, "ping")["result"] == "pong"
        daemon.send_signal(signal.SIGTERM)
        stopping = listener.recv(4096).decode()
        assert "STOPPING=1" in stopping
        assert daemon.wait(timeout=30) == 0
        assert not path.exists(), "the socket is removed on exit"
    finally:
        if daemon.poll() is None:
            daemon.kill()
        listener.close()


def test_sigterm_while_loading_is_not_lost(tmp_path):
    # The signal arrives while the model loads, before the signal thread exists; it must
    # stay pending and end in the same graceful stop (exit 0, socket removed), not a
    # kill or a hang.
    path = tmp_path / "s.sock"
    daemon = subprocess.Popen([str(BIN), "--model", str(MODEL), "--socket", str(path), "--context-size", "2048"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first_line = daemon.stderr.readline().decode()
        assert "loading model" in first_line, first_line
        daemon.send_signal(signal.SIGTERM)
        stderr = first_line + daemon.communicate(timeout=60)[1].decode()
        assert daemon.returncode == 0, stderr
        assert "shutting down" in stderr and "SIGTERM" in stderr, stderr
        assert not path.exists()
    finally:
        if daemon.poll() is None:
            daemon.kill()
