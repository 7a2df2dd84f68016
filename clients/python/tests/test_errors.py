"""Each documented error the daemon can be driven to, as its exception class."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Type

import pytest
from strategyd_daemon import LONG_PARAMS, LONG_PROBLEM, SHORT_PARAMS, SHORT_PROBLEM, Daemon

from strategyd_client import (AsyncClient, Busy, Cancelled, Client, ConnectionLost, EngineError, InternalError,
                              InvalidParams, InvalidRequest, LimitExceeded, MethodNotFound, NotPermitted, ParseError,
                              PluginFailed, PluginLoadFailed, Progress, RPCError, ShuttingDown, SolveResult,
                              UnknownPlugin, error_from_json)


def raw_exchange(socket_path: str, payload: bytes) -> Dict[str, Any]:
    """Sends bytes the client would never send; returns the one response line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect(socket_path)
        raw.sendall(payload)
        with raw.makefile("rb") as lines:
            response: Dict[str, Any] = json.loads(lines.readline())
    return response


def test_method_not_found(client: Client) -> None:
    with pytest.raises(MethodNotFound) as caught:
        client.call("no.such.method")
    assert caught.value.code == -32601 and caught.value.data["method"] == "no.such.method"


@pytest.mark.parametrize("params, offending", [
    ({"problem": ""}, "problem"),
    ({"problem": SHORT_PROBLEM, "seed": -1}, "seed"),
    ({"problem": SHORT_PROBLEM, "budget": {"max_tokens": "many"}}, "max_tokens"),
    ({"problem": SHORT_PROBLEM, "params": {"max_tokens": 0}}, "max_tokens"),
    ({"problem": SHORT_PROBLEM, "params": {"no_such_param": 1}}, "no_such_param"),
    ({}, "problem"),
])
def test_invalid_params(client: Client, params: Dict[str, Any], offending: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        client.call("solve", params, timeout=30)
    assert caught.value.code == -32602
    assert offending in caught.value.data["param"], caught.value.data
    assert caught.value.data["expected"]


def test_problem_over_the_string_limit_is_refused(client: Client) -> None:
    with pytest.raises(LimitExceeded) as caught:
        client.solve("x" * (64 * 1024 + 1), params=SHORT_PARAMS, timeout=30)
    assert caught.value.data == {"limit": "max_string_bytes", "max": 64 * 1024, "found": 64 * 1024 + 1}


def test_unknown_strategy(client: Client) -> None:
    with pytest.raises(UnknownPlugin) as caught:
        client.solve(SHORT_PROBLEM, strategy="no-such-strategy", timeout=30)
    assert caught.value.data["plugin"] == "no-such-strategy"
    assert "greedy" in caught.value.data["available"]


def test_plugin_failure(client: Client) -> None:
    if "best-of-n" not in client.status().plugins:
        pytest.skip("needs the best-of-n strategy, which fails on a scorer that is not loaded")
    with pytest.raises(PluginFailed) as caught:
        client.solve(SHORT_PROBLEM, strategy="best-of-n",
                     params={"n": 2, "max_tokens": 8, "scorer": "no-such-scorer"}, timeout=120)
    assert caught.value.data["plugin"] == "best-of-n"


def test_load_of_a_missing_plugin(client: Client) -> None:
    with pytest.raises(PluginLoadFailed) as caught:
        client.load("no-such-plugin")
    assert caught.value.data["reason"] == "not_found"


def test_plugin_name_must_not_be_a_path(client: Client) -> None:
    with pytest.raises(InvalidParams):
        client.load("../greedy")


def test_unload_of_an_unknown_plugin(client: Client) -> None:
    with pytest.raises(UnknownPlugin):
        client.unload("no-such-plugin")


def test_context_overflow_is_an_engine_error(client: Client) -> None:
    # ~12k tokens, within the 64 KiB problem limit but three times the 4096-token context.
    with pytest.raises(EngineError) as caught:
        client.solve("one two three " * 4000, params=SHORT_PARAMS, timeout=120)
    assert caught.value.data["reason"]


def test_parse_error(daemon: Daemon) -> None:
    response = raw_exchange(daemon.socket_path, b"{not json\n")
    assert response["id"] is None
    assert isinstance(error_from_json(response["error"]), ParseError)


def test_invalid_request(daemon: Daemon) -> None:
    response = raw_exchange(daemon.socket_path, b'{"jsonrpc": "1.0", "id": 7, "method": "ping"}\n')
    assert response["id"] == 7
    assert isinstance(error_from_json(response["error"]), InvalidRequest)


def test_request_over_the_size_limit(client: Client) -> None:
    # Answered with a null id; the client pins it on the longest request awaiting an answer.
    padding = {"padding": "x" * (1 << 20)}
    with client.solve_stream(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=120) as running:
        with pytest.raises(InvalidRequest) as caught:
            client.call("ping", padding, timeout=30)
        assert "1048576" in caught.value.data["detail"]
        assert isinstance(list(running)[-1], SolveResult)

    async def scenario() -> None:
        async with AsyncClient(client.socket_path) as async_client:
            with pytest.raises(InvalidRequest):
                await async_client.call("ping", padding, timeout=30)
            assert await async_client.ping() == "pong"

    asyncio.run(scenario())
    assert client.ping() == "pong"


@pytest.mark.parametrize("error_class", [
    ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError, UnknownPlugin, PluginFailed,
    PluginLoadFailed, Cancelled, Busy, NotPermitted, EngineError, ShuttingDown])
def test_each_documented_code_has_its_class(error_class: Type[RPCError]) -> None:
    error = error_from_json({"code": error_class.code, "message": "m", "data": None})
    assert type(error) is error_class and error.message == "m"


def test_unknown_codes_stay_rpc_errors() -> None:
    error = error_from_json({"code": -31999, "message": "new", "data": {"x": 1}})
    assert type(error) is RPCError and error.code == -31999 and error.data == {"x": 1}


def test_solves_beyond_the_running_ones_queue_and_beyond_the_queue_are_busy(
        spare_daemon: Callable[..., Daemon]) -> None:
    daemon = spare_daemon("--max-concurrent-solves", "2", "--max-queued-solves", "1")
    with Client(daemon.socket_path) as client:
        limits = client.status().limits
    assert (limits["max_concurrent_solves"], limits["max_queued_solves"]) == (2, 1)

    async def scenario() -> None:
        async with AsyncClient(daemon.socket_path) as client:
            streams = [client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120) for _ in range(3)]
            events = []
            for stream in streams:
                await stream.start()
                event = await stream.__anext__()
                assert isinstance(event, Progress)
                events.append(event.event)
            assert events == ["started", "started", "queued"]
            with pytest.raises(Busy) as busy:
                await client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=30)
            assert busy.value.data["max_queued_solves"] == 1
            # A running place frees: the queued solve starts.
            await streams[0].aclose()
            assert (await streams[2].__anext__()).event == "started"
            for stream in streams[1:]:
                await stream.aclose()

    asyncio.run(scenario())


def raised_when_killed(daemon: Daemon, request: Callable[[threading.Event], None]) -> BaseException:
    """Runs a request in a thread; once it reports its solves started, kills the daemon
    -9, and returns what the request raised."""
    raised: List[BaseException] = []
    started = threading.Event()

    def run() -> None:
        try:
            request(started)
        except BaseException as error:  # handed to the test thread
            raised.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(60) and not raised, raised
    os.kill(daemon.process.pid, signal.SIGKILL)
    thread.join(timeout=20)
    assert not thread.is_alive(), "the request still waits after the daemon died"
    assert raised, "the request returned although the daemon was killed"
    return raised[0]


def test_daemon_killed_mid_stream_is_connection_lost(spare_daemon: Callable[[], Daemon]) -> None:
    daemon = spare_daemon()

    def stream(started: threading.Event) -> None:
        with Client(daemon.socket_path) as client:
            for _ in client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120):
                started.set()

    assert isinstance(raised_when_killed(daemon, stream), ConnectionLost)


def test_daemon_killed_mid_async_solves_is_connection_lost(spare_daemon: Callable[[], Daemon]) -> None:
    daemon = spare_daemon()

    def solves(started: threading.Event) -> None:
        async def both() -> None:
            async with AsyncClient(daemon.socket_path) as client:
                running = client.solve(LONG_PROBLEM, params=LONG_PARAMS, timeout=120)
                stream = client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120)

                async def follow() -> None:
                    async for _ in stream:
                        started.set()

                await asyncio.gather(running, follow())

        asyncio.run(both())

    assert isinstance(raised_when_killed(daemon, solves), ConnectionLost)


def test_shutting_down(spare_daemon: Callable[[], Daemon]) -> None:
    daemon = spare_daemon()
    with Client(daemon.socket_path) as client:
        stream = client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120)
        next(stream)
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(ShuttingDown):
            client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=30)
        stream.close()
