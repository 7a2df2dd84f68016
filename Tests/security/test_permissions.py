"""Who may talk to strategyd, checked with real processes of other users (setpriv):
the socket is 0660, so others cannot connect at all; a group member may solve but not
administer plugins (SO_PEERCRED: only the daemon's uid or root)."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("STRATEGYD_BIN", REPO / ".build" / "debug" / "strategyd"))
# The cache layout is stated once for Python, in the harness; loaded by path so that these
# tests need no package installed.
_rule = importlib.util.spec_from_file_location(
    "strategyd_cache_rule", REPO / "clients" / "bench" / "src" / "strategyd_bench" / "cache.py")
_cache = importlib.util.module_from_spec(_rule)
_rule.loader.exec_module(_cache)  # type: ignore[union-attr]
CACHE = _cache.cache_dir()
MODEL = CACHE / "models" / "smollm2-135m-instruct-q4_1.gguf"
NOBODY = 65534

# Run by another user: send one request, print the response (or the connection error).
CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as error:
    print(json.dumps({"connect_error": error.errno})); sys.exit(0)
s.sendall(sys.argv[2].encode() + b"\\n")
data = b""
while not data.endswith(b"\\n"):
    data += s.recv(65536)
print(data.decode().strip())
"""


@pytest.fixture
def daemon():
    assert BIN.exists(), f"{BIN} is missing: run scripts/setup"
    assert MODEL.exists(), f"{MODEL} is missing: run scripts/setup"
    if os.geteuid() != 0:
        pytest.fail("these tests switch users with setpriv and need root (CI runs as root)")
    # A folder other users can traverse (pytest's tmp_path is 0700): the socket's mode decides.
    folder = Path(tempfile.mkdtemp(prefix="strategyd-perm-", dir="/tmp"))
    folder.chmod(0o755)
    path = folder / "s.sock"
    process = subprocess.Popen([str(BIN), "--model", str(MODEL), "--socket", str(path), "--threads", "1",
                                "--context-size", "2048"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not path.exists():
        assert time.time() < deadline and process.poll() is None, "strategyd did not start"
        time.sleep(0.05)
    time.sleep(0.2)
    yield path
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


def as_user(path, request, gid):
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={gid}", "--clear-groups",
               sys.executable, "-c", CLIENT, str(path), json.dumps(request)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout)


def test_the_socket_is_0660_and_others_cannot_connect(daemon):
    assert daemon.stat().st_mode & 0o777 == 0o660
    answer = as_user(daemon, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, gid=NOBODY)
    assert answer == {"connect_error": 13}  # EACCES


def test_a_group_member_may_solve_but_not_load_plugins(daemon):
    group = daemon.stat().st_gid
    ping = as_user(daemon, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, gid=group)
    assert ping["result"] == "pong"
    for method in ("plugins.load", "plugins.reload", "plugins.unload"):
        refused = as_user(daemon, {"jsonrpc": "2.0", "id": 2, "method": method, "params": {"name": "greedy"}}, gid=group)
        assert refused["error"]["code"] == -32005, refused
        assert refused["error"]["data"]["uid"] == NOBODY
    listed = as_user(daemon, {"jsonrpc": "2.0", "id": 3, "method": "plugins.list"}, gid=group)
    assert any(p["name"] == "greedy" for p in listed["result"])
