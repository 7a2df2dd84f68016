"""A few thousand mutated requests over the socket of a real daemon on the test model (the
benchmark, scripts/fuzz-socket, sends 100,000): every reply is well-formed JSON-RPC, a
ping behind each request is answered, and the daemon is alive at the end."""
import importlib.machinery
import importlib.util
import os
import shutil
import signal
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("STRATEGYD_BIN", REPO / ".build" / "debug" / "strategyd"))
_loader = importlib.machinery.SourceFileLoader("strategyd_fuzz_socket", str(REPO / "scripts" / "fuzz-socket"))
_spec = importlib.util.spec_from_loader(_loader.name, _loader)
fuzz_socket = importlib.util.module_from_spec(_spec)
_loader.exec_module(fuzz_socket)
MODEL = fuzz_socket.test_model()


def test_mutated_requests_get_well_formed_replies_and_the_daemon_lives():
    folder = tempfile.mkdtemp(prefix="strategyd-fuzz-")
    process, path = fuzz_socket.start_daemon(BIN, MODEL, folder)
    try:
        figures = fuzz_socket.fuzz(path, 3000, seed=1, pid=process.pid)
        disconnects = figures["kinds"].get("half line, disconnect", 0)
        assert figures["probes_answered"] == 3000 - disconnects
        assert disconnects > 0 and figures["kinds"]["batch"] > 0 and figures["kinds"]["bytes"] > 0
        assert -32700 in figures["error_codes"] and -32600 in figures["error_codes"]
        assert process.poll() is None, "the daemon died"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def test_well_formed_is_strict():
    assert fuzz_socket.well_formed({"jsonrpc": "2.0", "id": 1, "result": "pong"})
    assert fuzz_socket.well_formed([{"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "x"}}])
    assert not fuzz_socket.well_formed({"jsonrpc": "2.0", "id": 1})
    assert not fuzz_socket.well_formed({"jsonrpc": "2.0", "id": 1, "result": 1, "error": {}})
    assert not fuzz_socket.well_formed({"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "m"}})
    assert not fuzz_socket.well_formed([])
