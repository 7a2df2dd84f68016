"""AsyncClient against a real daemon: every method, many solves in flight, cancellation."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, List, Mapping, Optional, Tuple, TypeVar, Union

import pytest
from strategyd_daemon import STATUS_TIMEOUT, LONG_PARAMS, LONG_PROBLEM, SHORT_PARAMS, SHORT_PROBLEM, Daemon

from strategyd_client import (AsyncClient, Cancelled, MethodNotFound, Progress, RequestTimeout,
                              SolveResult, UnknownPlugin)
from strategyd_client.aio import _AsyncCall

T = TypeVar("T")


def run(daemon: Daemon, scenario: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with AsyncClient(daemon.socket_path) as client:
            return await asyncio.wait_for(scenario(client), 300)
    return asyncio.run(main())


async def wait_until_idle(client: AsyncClient) -> None:
    deadline = time.monotonic() + STATUS_TIMEOUT
    while (await client.status(timeout=STATUS_TIMEOUT)).solves_in_flight > 0:
        assert time.monotonic() < deadline, "the daemon still runs a solve the client gave up"
        await asyncio.sleep(0.1)


def test_every_method(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> None:
        assert await client.ping() == "pong"
        assert (await client.status()).model.context_size == 4096
        assert (await client.models_info()).context_size == 4096
        assert "greedy" in {plugin.name for plugin in await client.plugins()}
        result = await client.solve(SHORT_PROBLEM, params=SHORT_PARAMS, timeout=120)
        assert result.strategy.name == "greedy" and result.metrics.evaluated_tokens > 0
        assert await client.call("ping") == "pong"
        assert await client.cancel(123456) is False
        generation = (await client.reload("greedy")).generation
        assert (await client.reload("greedy")).generation > generation
        assert await client.unload("self-consistency") == "self-consistency"
        assert (await client.load("self-consistency")).name == "self-consistency"
        with pytest.raises(MethodNotFound):
            await client.call("no.such.method")
        with pytest.raises(UnknownPlugin):
            await client.solve(SHORT_PROBLEM, strategy="no-such-strategy")

    run(daemon, scenario)


def test_stream_yields_progress_then_result(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> None:
        stream = client.solve_stream(SHORT_PROBLEM, params={"max_tokens": 24, "progress_every": 8}, timeout=120)
        events: List[Union[Progress, SolveResult]] = [event async for event in stream]
        assert isinstance(events[-1], SolveResult)
        progress = [event for event in events[:-1] if isinstance(event, Progress)]
        assert progress and len(progress) == len(events) - 1
        assert all(event.id == stream.id for event in progress)
        assert progress[0].event == "started" and any(event.event == "step" for event in progress)

    run(daemon, scenario)


def test_concurrent_solves_on_one_connection(daemon: Daemon) -> None:
    # Each solve gets its own token limit, so each result shows which request it answers
    # (texts cannot tell: batched decoding changes greedy outputs slightly); the long
    # problem keeps the model from ending its turn before the limit.
    limits = [4, 8, 12]

    async def scenario(client: AsyncClient) -> List[SolveResult]:
        return await asyncio.gather(*(client.solve(LONG_PROBLEM, params={"max_tokens": limit}, timeout=120)
                                      for limit in limits))

    results = run(daemon, scenario)
    assert [result.metrics.generated_tokens for result in results] == limits


def test_concurrent_solves_on_several_connections(daemon: Daemon) -> None:
    limits = [4, 8, 12]

    async def main() -> List[SolveResult]:
        clients = [AsyncClient(daemon.socket_path) for _ in limits]
        try:
            return await asyncio.gather(*(client.solve(LONG_PROBLEM, params={"max_tokens": limit}, timeout=120)
                                          for client, limit in zip(clients, limits)))
        finally:
            for client in clients:
                await client.close()

    results = asyncio.run(main())
    assert [result.metrics.generated_tokens for result in results] == limits


def test_pings_are_answered_while_solves_run(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> None:
        async with client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120) as stream:
            await stream.__anext__()
            started = time.monotonic()
            assert await asyncio.gather(*(client.ping() for _ in range(5))) == ["pong"] * 5
            assert time.monotonic() - started < 2

    run(daemon, scenario)


def test_cancelling_the_task_cancels_the_solve(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> None:
        task = asyncio.ensure_future(client.solve(LONG_PROBLEM, params=LONG_PARAMS, timeout=120))
        deadline = time.monotonic() + STATUS_TIMEOUT
        while (await client.status(timeout=STATUS_TIMEOUT)).solves_in_flight == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await wait_until_idle(client)
        assert await client.ping() == "pong"  # the connection is still good

    run(daemon, scenario)


def test_cancel_request_gives_cancelled(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> None:
        stream = client.solve_stream(LONG_PROBLEM, params=LONG_PARAMS, timeout=120)
        first = await stream.__anext__()
        assert isinstance(first, Progress) and first.event == "started"
        assert await stream.cancel() is True
        with pytest.raises(Cancelled):
            async for _ in stream:
                pass

    run(daemon, scenario)


def test_timeout_raises_and_cancels(daemon: Daemon) -> None:
    async def scenario(client: AsyncClient) -> Any:
        with pytest.raises(RequestTimeout):
            await client.solve(LONG_PROBLEM, params=LONG_PARAMS, timeout=1.0)
        await wait_until_idle(client)

    run(daemon, scenario)


class AnsweredConnection:
    """Stands in for a connection whose answer to the request has already come."""

    def __init__(self, answer: Any) -> None:
        self.replies: "asyncio.Queue[Any]" = asyncio.Queue()
        self.replies.put_nowait(("result", answer))

    def register(self, method: str, params: Optional[Mapping[str, Any]]) -> Tuple[int, "asyncio.Queue[Any]", bytes]:
        return 1, self.replies, b""

    def forget(self, request_id: int) -> None:
        pass

    def send_cancel(self, request_id: int) -> None:
        pass


def test_an_answer_already_come_is_returned_past_the_deadline() -> None:
    async def scenario() -> Any:
        call = _AsyncCall(AnsweredConnection("pong"), "ping", None)  # type: ignore[arg-type]
        return await call.result(time.monotonic() - 1)

    assert asyncio.run(scenario()) == "pong"
