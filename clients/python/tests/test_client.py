"""The blocking Client against a real daemon: every method, streaming, cancel, threads; and
against a scripted socket, for what no real daemon sends."""
from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Union

import pytest
from strategyd_daemon import STATUS_TIMEOUT, LONG_PARAMS, LONG_PROBLEM, MODEL, SHORT_PARAMS, SHORT_PROBLEM, Daemon

from strategyd_client import (Budget, Cancelled, Client, DaemonNotRunning, Progress, ProtocolError,
                              RequestTimeout, SolveResult, _protocol, default_socket_path)


def wait_until_idle(client: Client) -> None:
    deadline = time.monotonic() + STATUS_TIMEOUT
    while client.status(timeout=STATUS_TIMEOUT).solves_in_flight > 0:
        assert time.monotonic() < deadline, "the daemon still runs a solve the client gave up"
        time.sleep(0.1)


def test_ping(client: Client) -> None:
    assert client.ping() == "pong"


def test_metrics_parse_as_prometheus_text_and_count_a_solve(client: Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def solves() -> float:
        return sum(sample.value for family in text_string_to_metric_families(client.metrics())
                   for sample in family.samples
                   if sample.name == "strategyd_solves_total" and sample.labels["strategy"] == "greedy")

    before = solves()
    client.solve("What is 2 + 3?", params={"max_tokens": 4}, timeout=120)
    assert solves() == before + 1
    families = {family.name: family.type for family in text_string_to_metric_families(client.metrics())}
    assert families["strategyd_solve_duration_seconds"] == "histogram"
    assert families["strategyd_live_sequences"] == "gauge"
    assert families["strategyd_tokens"] == "counter"


def test_status(client: Client) -> None:
    status = client.status()
    assert status.uptime_s >= 0
    assert status.model.context_size == 4096
    assert "greedy" in status.plugins
    assert status.requests_in_flight >= 0
    assert status.solves_in_flight >= 0
    assert status.totals.evaluated_tokens >= 0
    assert status.limits


def test_models_info(client: Client) -> None:
    info = client.models_info()
    assert info.path == str(MODEL) or info.path.endswith(MODEL.name)
    assert info.context_size == 4096
    assert info.layers > 0 and info.vocabulary_size > 0 and info.file_bytes == MODEL.stat().st_size
    assert 0 < info.non_embedding_parameters < info.parameters


def test_plugins(client: Client) -> None:
    plugins = {plugin.name: plugin for plugin in client.plugins()}
    greedy = plugins["greedy"]
    assert greedy.kind == "strategy" and greedy.abi == 1 and greedy.generation >= 1
    assert set(greedy.params_schema) >= {"max_tokens", "progress_every"}
    assert greedy.in_flight == 0


def test_solve(client: Client) -> None:
    result = client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, seed=1, timeout=120)
    assert isinstance(result.text, str) and result.text
    assert result.answer is None or isinstance(result.answer, str)
    assert result.strategy.name == "greedy" and result.strategy.generation >= 1
    assert result.candidates and result.candidates[0].text == result.text
    assert result.metrics.prompt_tokens > 0 and result.metrics.generated_tokens > 0
    assert result.metrics.evaluated_tokens > 0 and result.metrics.flops > 0
    assert result.budget_exhausted is False and result.stopped_by is None
    assert isinstance(result.details, dict)


def test_budget_exhausted(client: Client) -> None:
    prompt = client.solve(SHORT_PROBLEM, params={"max_tokens": 1}, timeout=120).metrics.prompt_tokens
    result = client.solve(SHORT_PROBLEM, params=LONG_PARAMS, budget=Budget(max_tokens=prompt + 8), timeout=120)
    assert result.budget_exhausted is True and result.stopped_by == "max_tokens"
    assert result.metrics.evaluated_tokens <= prompt + 8 + 1


def test_solve_stream_yields_progress_then_result(client: Client) -> None:
    with client.solve_stream(SHORT_PROBLEM, params={"max_tokens": 24, "progress_every": 8}, timeout=120) as stream:
        events: List[Union[Progress, SolveResult]] = list(stream)
    assert isinstance(events[-1], SolveResult)
    progress = [event for event in events[:-1] if isinstance(event, Progress)]
    assert progress and len(progress) == len(events) - 1
    assert all(event.id == stream.id for event in progress)
    assert progress[0].event == "started"
    steps = [event for event in progress if event.event == "step"]
    assert steps and all(step.metrics is not None and step.metrics.evaluated_tokens > 0 for step in steps)


def test_cancel(client: Client) -> None:
    stream = client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120)
    assert next(stream).event == "started"  # type: ignore[union-attr]
    assert client.cancel(stream.id) is True
    with pytest.raises(Cancelled) as caught:
        for _ in stream:
            pass
    assert caught.value.code == -32003
    assert client.cancel(10**9) is False  # no such solve
    wait_until_idle(client)


def test_closing_a_stream_cancels_its_solve(client: Client) -> None:
    with client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120) as stream:
        next(stream)
    wait_until_idle(client)


def test_timeout_raises_and_cancels(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        client.solve(LONG_PROBLEM, params=LONG_PARAMS, timeout=1.0)
    assert time.monotonic() - started < 5
    wait_until_idle(client)


def test_requests_from_many_threads_share_one_client(client: Client) -> None:
    results: List[object] = []

    def work(index: int) -> None:
        try:
            if index % 2:
                results.append(client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=120))
            else:
                results.append(client.status(timeout=STATUS_TIMEOUT))
        except Exception as error:  # reported below, with the others' results
            results.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert len(results) == 6 and not [r for r in results if isinstance(r, Exception)], results


def test_ping_is_answered_while_a_solve_runs(client: Client) -> None:
    with client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120) as stream:
        next(stream)
        started = time.monotonic()
        assert client.ping(timeout=5) == "pong"
        assert time.monotonic() - started < 2


def test_default_socket_follows_strategyd_socket(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGYD_SOCKET", daemon.socket_path)
    with Client() as client:
        assert client.socket_path == daemon.socket_path
        assert client.ping() == "pong"
    monkeypatch.delenv("STRATEGYD_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/4242")
    assert default_socket_path() == "/run/user/4242/strategyd/strategyd.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_socket_path() == "/run/strategyd/strategyd.sock"


def test_daemon_not_running(tmp_path: object) -> None:
    missing = f"{tmp_path}/nothing.sock"
    with pytest.raises(DaemonNotRunning) as caught:
        Client(missing).ping()
    assert missing in str(caught.value) and "strategyd --model" in caught.value.hint


def test_wait_ready(client: Client, tmp_path: object) -> None:
    assert client.wait_ready(5, model_hash=True)  # the fixture's daemon: ready, its model hashed
    missing = Client(f"{tmp_path}/nothing.sock")
    started = time.monotonic()
    assert not missing.wait_ready(0.5)  # nothing ever listens: gives up at the timeout
    assert not missing.wait_ready(60, alive=lambda: False)  # the process is gone: gives up at once
    assert time.monotonic() - started < 5


def test_reload_bumps_the_generation(client: Client) -> None:
    before = {plugin.name: plugin for plugin in client.plugins()}["greedy"]
    after = client.reload("greedy")
    assert after.name == "greedy" and after.generation > before.generation
    assert client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=120).strategy.generation == after.generation


def test_unload_then_load(client: Client) -> None:
    name = "self-consistency"
    if name not in {plugin.name for plugin in client.plugins()}:
        client.load(name)
    assert client.unload(name) == name
    assert name not in {plugin.name for plugin in client.plugins()}
    loaded = client.load(name)
    assert loaded.name == name and loaded.kind == "strategy"
    assert name in client.status().plugins


# --- against a scripted socket ------------------------------------------------------------


@contextlib.contextmanager
def scripted_daemon(folder: Path, reply: bytes) -> Iterator[str]:
    """A socket that answers the first request with `reply`, whatever it asked, then waits
    for the client to hang up."""
    path = str(folder / "scripted.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen()

        def answer() -> None:
            connection, _ = server.accept()
            with connection, connection.makefile("rb") as requests:
                requests.readline()
                connection.sendall(reply)
                connection.recv(1)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        yield path
        thread.join(timeout=10)


def response(result: Any, request_id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}).encode() + b"\n"


@pytest.mark.parametrize("line", [
    response("pong", [1]),
    response("pong", True),  # would answer request 1
    response("pong", 1.5),
    b'{"jsonrpc": "2.0", "method": "progress", "params": {"id": {"a": 1}, "event": "started"}}\n',
])
def test_ids_that_are_not_integers_or_strings_are_protocol_errors(line: bytes) -> None:
    with pytest.raises(ProtocolError, match="id"):
        _protocol.route(line)


def test_a_line_over_the_limit_fails_the_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_protocol, "MAX_LINE_BYTES", 1024)
    with scripted_daemon(tmp_path, response("x" * 2000)) as path, Client(path) as client:
        with pytest.raises(ProtocolError, match="over 1024 bytes"):
            client.call("ping", timeout=10)


def test_a_failing_reader_fails_the_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_route(line: bytes) -> None:
        raise TypeError("a bug in routing")

    monkeypatch.setattr(_protocol, "route", broken_route)
    with scripted_daemon(tmp_path, response("pong")) as path, Client(path) as client:
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="a bug in routing"):
            client.call("ping", timeout=10)  # not RequestTimeout: the request must not wait for nothing
        assert time.monotonic() - started < 5
