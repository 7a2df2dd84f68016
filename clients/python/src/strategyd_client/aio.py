"""The asyncio client: many requests in flight on one connection, matched by id.
Cancelling a task that awaits a solve sends `cancel` for that solve."""
from __future__ import annotations

import asyncio
import itertools
import time
from types import TracebackType
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Tuple, Type, Union

from . import _protocol
from ._paths import SocketPath, resolve_socket
from ._protocol import ADMIN_TIMEOUT, SHORT_TIMEOUT, Item, RequestId
from .errors import DaemonNotRunning, ProtocolError, RequestTimeout, StrategydError
from .results import Budget, ModelInfo, PluginInfo, Progress, SolveResult, Status


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


class _AsyncConnection:
    """One socket to the daemon and the requests awaiting an answer on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        # Each request awaiting an answer: its queue, and its line's length (see oversize_owner).
        self._pending: Dict[RequestId, Tuple["asyncio.Queue[Item]", int]] = {}
        self._failure: Optional[StrategydError] = None
        self._ids = itertools.count(1)
        self._drain_lock = asyncio.Lock()  # Python 3.9 allows one drain() at a time
        self._read_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def open(cls, path: str, connect_timeout: Optional[float]) -> "_AsyncConnection":
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(path, limit=_protocol.MAX_LINE_BYTES), connect_timeout)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise DaemonNotRunning(path, error) from error
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._failure is not None

    def register(self, method: str, params: Optional[Mapping[str, Any]]) -> Tuple[int, "asyncio.Queue[Item]", bytes]:
        """A new request: its id, the queue its answers arrive on, and the line to send."""
        if self._failure is not None:
            raise _protocol.fresh(self._failure)
        request_id = next(self._ids)
        line = _protocol.encode(request_id, method, params)
        replies: "asyncio.Queue[Item]" = asyncio.Queue()
        self._pending[request_id] = (replies, len(line))
        return request_id, replies, line

    async def send(self, line: bytes) -> None:
        # write() queues the whole line at once, so concurrent requests never interleave.
        self._writer.write(line)
        try:
            async with self._drain_lock:
                await self._writer.drain()
        except OSError as error:
            self._fail(_protocol.lost(str(error)))
            raise _protocol.lost(str(error)) from error

    def send_cancel(self, request_id: RequestId) -> None:
        """Fire and forget, without awaiting: usable while a task is being cancelled."""
        if self._failure is None:
            self._writer.write(_protocol.encode(next(self._ids), "cancel", {"id": request_id}))

    def forget(self, request_id: RequestId) -> None:
        self._pending.pop(request_id, None)

    async def close(self) -> None:
        self._fail(_protocol.lost("the client closed it"))
        await asyncio.gather(self._read_task, return_exceptions=True)

    async def _read_loop(self) -> None:
        failure: StrategydError = _protocol.lost("strategyd closed the connection")
        try:
            while True:
                line = await self._reader.readline()
                if not line.endswith(b"\n"):
                    break  # EOF, possibly in the middle of a line
                routed = _protocol.route(line)
                if routed is not None:
                    self._deliver(*routed)
        except ProtocolError as error:
            failure = error
        except ValueError:
            failure = _protocol.overlong_line()
        except OSError as error:
            failure = _protocol.lost(str(error))
        finally:
            self._fail(failure)

    def _deliver(self, request_id: Optional[RequestId], item: Item) -> None:
        if request_id is None:
            request_id = _protocol.oversize_owner(item, {key: size for key, (_, size) in self._pending.items()})
            if request_id is None:
                return
        waiting = self._pending.get(request_id) if item[0] == "progress" else self._pending.pop(request_id, None)
        if waiting is not None:
            waiting[0].put_nowait(item)

    def _fail(self, failure: StrategydError) -> None:
        if self._failure is not None:
            return
        self._failure = failure
        pending, self._pending = self._pending, {}
        for replies, _ in pending.values():
            replies.put_nowait(("error", _protocol.fresh(failure)))
        self._writer.close()
        if asyncio.current_task() is not self._read_task:
            self._read_task.cancel()


class _AsyncCall:
    """One request in flight."""

    def __init__(self, connection: _AsyncConnection, method: str, params: Optional[Mapping[str, Any]]) -> None:
        self._connection = connection
        self._method = method
        self.id, self._replies, self._line = connection.register(method, params)
        self._done = False

    async def start(self) -> None:
        try:
            await self._connection.send(self._line)
        except BaseException:
            self.abandon()
            raise

    async def next(self, deadline: Optional[float]) -> Item:
        """The next progress notification or the result; raises the error response."""
        try:
            # What already came is returned even past the deadline, as by the sync client: on
            # Python <= 3.11, wait_for(get(), 0) times out before get() takes a queued item.
            if self._replies.empty():
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                item = await asyncio.wait_for(self._replies.get(), timeout)
            else:
                item = self._replies.get_nowait()
        except asyncio.TimeoutError:
            self.abandon()
            raise RequestTimeout(f"strategyd did not answer {self._method} (id {self.id}) in time") from None
        except BaseException:  # the task was cancelled: so is the solve
            self.abandon()
            raise
        kind, value = item
        if kind != "progress":
            self._done = True
        if kind == "error":
            raise value
        return item

    async def result(self, deadline: Optional[float]) -> Any:
        while True:
            kind, value = await self.next(deadline)
            if kind == "result":
                return value

    def abandon(self) -> None:
        """Stops waiting; a solve still running is cancelled on the daemon."""
        if not self._done:
            self._done = True
            self._connection.forget(self.id)
            if self._method == "solve":
                self._connection.send_cancel(self.id)


class AsyncSolveStream(AsyncIterator[Union[Progress, SolveResult]]):
    """Yields the `progress` events of one solve, then its SolveResult, then stops.

    The request is sent on the first iteration (or by `start()` / `async with`); `id` is
    its request id from then on. Cancelling the iterating task, `aclose()`, or leaving
    the `async with` block before the result cancels the solve on the daemon. The
    timeout counts from the start.
    """

    def __init__(self, client: "AsyncClient", params: Dict[str, Any], timeout: Optional[float]) -> None:
        self._client = client
        self._params = params
        self._timeout = timeout
        self._deadline: Optional[float] = None
        self._call: Optional[_AsyncCall] = None
        self._finished = False
        self.id: Optional[RequestId] = None

    async def start(self) -> "AsyncSolveStream":
        if self._call is None:
            call = _AsyncCall(await self._client._connection(), "solve", self._params)
            self._call, self.id, self._deadline = call, call.id, _deadline(self._timeout)
            await call.start()
        return self

    def __aiter__(self) -> "AsyncSolveStream":
        return self

    async def __anext__(self) -> Union[Progress, SolveResult]:
        if self._finished:
            raise StopAsyncIteration
        try:
            await self.start()
            assert self._call is not None
            kind, value = await self._call.next(self._deadline)
        except BaseException:
            self._finished = True
            raise
        if kind == "progress":
            return Progress.from_json(value)
        self._finished = True
        return SolveResult.from_json(value)

    async def cancel(self, timeout: Optional[float] = SHORT_TIMEOUT) -> bool:
        """Asks the daemon to cancel; the stream then raises Cancelled. False if not running."""
        if self.id is None:
            return False
        return await self._client.cancel(self.id, timeout=timeout)

    async def aclose(self) -> None:
        self._finished = True
        if self._call is not None:
            self._call.abandon()

    async def __aenter__(self) -> "AsyncSolveStream":
        return await self.start()

    async def __aexit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                        trace: Optional[TracebackType]) -> None:
        await self.aclose()


class AsyncClient:
    """An asyncio strategyd client, for use from one event loop.

    `socket` defaults to STRATEGYD_SOCKET, then the default path (see
    default_socket_path). The connection opens on the first call; if it is lost, the
    requests in flight raise ConnectionLost and the next call opens a new one.
    """

    def __init__(self, socket: Optional[SocketPath] = None, *, connect_timeout: float = SHORT_TIMEOUT) -> None:
        self.socket_path = resolve_socket(socket)
        self._connect_timeout = connect_timeout
        self._connection_: Optional[_AsyncConnection] = None
        self._connecting: Optional[asyncio.Lock] = None  # made in the loop (Python 3.9 binds locks to one)

    async def _connection(self) -> _AsyncConnection:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection_ is None or self._connection_.closed:
                self._connection_ = await _AsyncConnection.open(self.socket_path, self._connect_timeout)
            return self._connection_

    async def close(self) -> None:
        """Closes the connection; requests in flight raise ConnectionLost (solves are cancelled)."""
        connection, self._connection_ = self._connection_, None
        if connection is not None:
            await connection.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                        trace: Optional[TracebackType]) -> None:
        await self.close()

    async def call(self, method: str, params: Optional[Mapping[str, Any]] = None, *,
                   timeout: Optional[float] = ADMIN_TIMEOUT) -> Any:
        """Any method, raw: returns the JSON result or raises its error."""
        call = _AsyncCall(await self._connection(), method, params)
        deadline = _deadline(timeout)
        await call.start()
        return await call.result(deadline)

    async def ping(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> str:
        return str(await self.call("ping", timeout=timeout))

    async def status(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> Status:
        return Status.from_json(await self.call("status", timeout=timeout))

    async def metrics(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> str:
        """The daemon's metrics in Prometheus text format."""
        return str(await self.call("metrics", timeout=timeout))

    async def models_info(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> ModelInfo:
        return ModelInfo.from_json(await self.call("models.info", timeout=timeout))

    async def solve(self, problem: str, strategy: str = "greedy", params: Optional[Mapping[str, Any]] = None,
                    budget: Union[Budget, Mapping[str, Any], None] = None, seed: Optional[int] = None, *,
                    timeout: Optional[float] = None) -> SolveResult:
        """Runs a strategy on a problem. On timeout or task cancellation the solve is cancelled."""
        params_ = _protocol.solve_params(problem, strategy, params, budget, seed, stream=False)
        return SolveResult.from_json(await self.call("solve", params_, timeout=timeout))

    def solve_stream(self, problem: str, strategy: str = "greedy", params: Optional[Mapping[str, Any]] = None,
                     budget: Union[Budget, Mapping[str, Any], None] = None, seed: Optional[int] = None, *,
                     timeout: Optional[float] = None) -> AsyncSolveStream:
        """`async for event in client.solve_stream(...)`: Progress events, then the SolveResult."""
        params_ = _protocol.solve_params(problem, strategy, params, budget, seed, stream=True)
        return AsyncSolveStream(self, params_, timeout)

    async def cancel(self, request_id: RequestId, *, timeout: Optional[float] = SHORT_TIMEOUT) -> bool:
        """Cancels a solve of this client's connection; True if it was running."""
        return bool(_protocol.member(await self.call("cancel", {"id": request_id}, timeout=timeout), "cancelled"))

    async def plugins(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> List[PluginInfo]:
        return [PluginInfo.from_json(entry) for entry in _protocol.array(await self.call("plugins.list", timeout=timeout))]

    async def load(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> PluginInfo:
        """Loads lib<name>.so from the daemon's plugin directory."""
        return PluginInfo.from_json(await self.call("plugins.load", {"name": name}, timeout=timeout))

    async def reload(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> PluginInfo:
        """Swaps in the plugin's current build; solves in flight finish on the old generation."""
        return PluginInfo.from_json(await self.call("plugins.reload", {"name": name}, timeout=timeout))

    async def unload(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> str:
        return str(_protocol.member(await self.call("plugins.unload", {"name": name}, timeout=timeout), "unloaded"))
