"""The blocking client. Thread-safe: any number of threads may have requests in flight
on one Client; a reader thread routes each response (and progress notification) to the
request it answers, by id."""
from __future__ import annotations

import itertools
import queue
import socket as sockets
import threading
import time
from types import TracebackType
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Type, Union

from . import _protocol
from ._paths import SocketPath, resolve_socket
from ._protocol import ADMIN_TIMEOUT, SHORT_TIMEOUT, Item, RequestId
from .errors import DaemonNotRunning, ProtocolError, RequestTimeout, StrategydError
from .results import Budget, ModelInfo, PluginInfo, Progress, SolveResult, Status


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


class _Connection:
    """One socket to the daemon and the requests awaiting an answer on it."""

    def __init__(self, path: str, connect_timeout: float) -> None:
        sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(path)
            sock.settimeout(None)
        except (FileNotFoundError, ConnectionRefusedError) as error:
            sock.close()
            raise DaemonNotRunning(path, error) from error
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._state_lock = threading.Lock()  # _pending, _failure, _ids
        self._send_lock = threading.Lock()   # whole lines, never interleaved
        # Each request awaiting an answer: its queue, and its line's length (see oversize_owner).
        self._pending: Dict[RequestId, Tuple["queue.SimpleQueue[Item]", int]] = {}
        self._failure: Optional[StrategydError] = None
        self._ids = itertools.count(1)
        threading.Thread(target=self._read_loop, name=f"strategyd-reader {path}", daemon=True).start()

    @property
    def closed(self) -> bool:
        return self._failure is not None

    def send(self, method: str, params: Optional[Mapping[str, Any]]) -> Tuple[int, "queue.SimpleQueue[Item]"]:
        """Sends a request; its answers arrive on the returned queue."""
        replies: "queue.SimpleQueue[Item]" = queue.SimpleQueue()
        with self._state_lock:
            if self._failure is not None:
                raise _protocol.fresh(self._failure)
            request_id = next(self._ids)
            line = _protocol.encode(request_id, method, params)
            self._pending[request_id] = (replies, len(line))
        try:
            with self._send_lock:
                self._sock.sendall(line)
        except OSError as error:
            self.forget(request_id)
            self._fail(_protocol.lost(str(error)))
            raise _protocol.lost(str(error)) from error
        return request_id, replies

    def send_cancel(self, request_id: RequestId) -> None:
        """Fire and forget: the `cancel` response is dropped (no one awaits its id)."""
        with self._state_lock:
            if self._failure is not None:
                return
            cancel_id = next(self._ids)
        try:
            with self._send_lock:
                self._sock.sendall(_protocol.encode(cancel_id, "cancel", {"id": request_id}))
        except OSError:
            pass  # the connection is gone, and with it the request: the daemon cancels it

    def forget(self, request_id: RequestId) -> None:
        with self._state_lock:
            self._pending.pop(request_id, None)

    def close(self) -> None:
        self._fail(_protocol.lost("the client closed it"))

    def _read_loop(self) -> None:
        failure: StrategydError = _protocol.lost("strategyd closed the connection")
        try:
            with self._sock.makefile("rb") as lines:
                while True:
                    line = lines.readline(_protocol.MAX_LINE_BYTES + 1)
                    if not line.endswith(b"\n"):
                        if len(line) > _protocol.MAX_LINE_BYTES:
                            raise _protocol.overlong_line()
                        break  # EOF, possibly in the middle of a line
                    routed = _protocol.route(line)
                    if routed is not None:
                        self._deliver(*routed)
        except ProtocolError as error:
            failure = error
        except OSError as error:
            failure = _protocol.lost(str(error))
        except Exception as error:  # a dead reader must not leave the requests waiting forever
            failure = ProtocolError(f"the client failed on a message from strategyd: {error!r}")
        finally:
            self._fail(failure)
            self._sock.close()

    def _deliver(self, request_id: Optional[RequestId], item: Item) -> None:
        with self._state_lock:
            if request_id is None:
                request_id = _protocol.oversize_owner(item, {key: size for key, (_, size) in self._pending.items()})
                if request_id is None:
                    return
            waiting = self._pending.get(request_id) if item[0] == "progress" else self._pending.pop(request_id, None)
        if waiting is not None:
            waiting[0].put(item)

    def _fail(self, failure: StrategydError) -> None:
        with self._state_lock:
            if self._failure is not None:
                return
            self._failure = failure
            pending, self._pending = self._pending, {}
        for replies, _ in pending.values():
            replies.put(("error", _protocol.fresh(failure)))
        try:
            self._sock.shutdown(sockets.SHUT_RDWR)  # wakes the reader thread, which closes the socket
        except OSError:
            pass


class _Call:
    """One request in flight."""

    def __init__(self, connection: _Connection, method: str, params: Optional[Mapping[str, Any]]) -> None:
        self._connection = connection
        self._method = method
        self.id, self._replies = connection.send(method, params)
        self._done = False

    def next(self, deadline: Optional[float]) -> Item:
        """The next progress notification or the result; raises the error response."""
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            item = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.abandon()
            raise RequestTimeout(f"strategyd did not answer {self._method} (id {self.id}) in time") from None
        except BaseException:  # KeyboardInterrupt: do not leave the daemon working for no one
            self.abandon()
            raise
        kind, value = item
        if kind != "progress":
            self._done = True
        if kind == "error":
            raise value
        return item

    def result(self, deadline: Optional[float]) -> Any:
        while True:
            kind, value = self.next(deadline)
            if kind == "result":
                return value

    def abandon(self) -> None:
        """Stops waiting; a solve still running is cancelled on the daemon."""
        if not self._done:
            self._done = True
            self._connection.forget(self.id)
            if self._method == "solve":
                self._connection.send_cancel(self.id)


class SolveStream(Iterator[Union[Progress, SolveResult]]):
    """Yields the `progress` events of one solve, then its SolveResult, then stops.

    The request is already sent: `id` is its request id, usable with Client.cancel from
    any thread. Closing the stream (or leaving its `with` block) before the result
    cancels the solve on the daemon.
    """

    def __init__(self, call: _Call, client: "Client", timeout: Optional[float]) -> None:
        self._call = call
        self._client = client
        self._deadline = _deadline(timeout)
        self._finished = False
        self.id: RequestId = call.id

    def __iter__(self) -> "SolveStream":
        return self

    def __next__(self) -> Union[Progress, SolveResult]:
        if self._finished:
            raise StopIteration
        try:
            kind, value = self._call.next(self._deadline)
        except BaseException:
            self._finished = True
            raise
        if kind == "progress":
            return Progress.from_json(value)
        self._finished = True
        return SolveResult.from_json(value)

    def cancel(self, timeout: Optional[float] = SHORT_TIMEOUT) -> bool:
        """Asks the daemon to cancel; the stream then raises Cancelled. False if already done."""
        return self._client.cancel(self.id, timeout=timeout)

    def close(self) -> None:
        self._finished = True
        self._call.abandon()

    def __enter__(self) -> "SolveStream":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        self.close()


class Client:
    """A blocking strategyd client.

    `socket` defaults to STRATEGYD_SOCKET, then the default path (see
    default_socket_path). The connection opens on the first call; if it is lost, the
    requests in flight raise ConnectionLost and the next call opens a new one.
    """

    def __init__(self, socket: Optional[SocketPath] = None, *, connect_timeout: float = SHORT_TIMEOUT) -> None:
        self.socket_path = resolve_socket(socket)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._connection_: Optional[_Connection] = None

    def _connection(self) -> _Connection:
        with self._lock:
            if self._connection_ is None or self._connection_.closed:
                self._connection_ = _Connection(self.socket_path, self._connect_timeout)
            return self._connection_

    def close(self) -> None:
        """Closes the connection; requests in flight raise ConnectionLost (solves are cancelled)."""
        with self._lock:
            connection, self._connection_ = self._connection_, None
        if connection is not None:
            connection.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, kind: Optional[Type[BaseException]], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        self.close()

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, *,
             timeout: Optional[float] = ADMIN_TIMEOUT) -> Any:
        """Any method, raw: returns the JSON result or raises its error."""
        return _Call(self._connection(), method, params).result(_deadline(timeout))

    def ping(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> str:
        return str(self.call("ping", timeout=timeout))

    def wait_ready(self, timeout: float, *, alive: Callable[[], bool] = lambda: True,
                   model_hash: bool = False) -> bool:
        """Waits until the daemon answers ping (a daemon just started is still loading its
        model) and, with `model_hash`, knows its model's sha256 (hashed after loading; run
        records carry it). Returns False, at once, when `alive()` turns false (the daemon's
        process exited), or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while alive():
            try:
                if self.ping(timeout=2) == "pong" and (not model_hash or self.models_info().sha256):
                    return True
            except (StrategydError, OSError):  # not listening yet, or a connect that timed out
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return False

    def status(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> Status:
        return Status.from_json(self.call("status", timeout=timeout))

    def models_info(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> ModelInfo:
        return ModelInfo.from_json(self.call("models.info", timeout=timeout))

    def metrics(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> str:
        """The daemon's metrics in Prometheus text format."""
        return str(self.call("metrics", timeout=timeout))

    def solve(self, problem: str, strategy: str = "greedy", params: Optional[Mapping[str, Any]] = None,
              budget: Union[Budget, Mapping[str, Any], None] = None, seed: Optional[int] = None, *,
              timeout: Optional[float] = None) -> SolveResult:
        """Runs a strategy on a problem. On timeout the solve is cancelled and RequestTimeout raised."""
        params_ = _protocol.solve_params(problem, strategy, params, budget, seed, stream=False)
        return SolveResult.from_json(self.call("solve", params_, timeout=timeout))

    def solve_stream(self, problem: str, strategy: str = "greedy", params: Optional[Mapping[str, Any]] = None,
                     budget: Union[Budget, Mapping[str, Any], None] = None, seed: Optional[int] = None, *,
                     timeout: Optional[float] = None) -> SolveStream:
        """Sends a streaming solve now; iterate the result for Progress events, then the SolveResult."""
        params_ = _protocol.solve_params(problem, strategy, params, budget, seed, stream=True)
        return SolveStream(_Call(self._connection(), "solve", params_), self, timeout)

    def cancel(self, request_id: RequestId, *, timeout: Optional[float] = SHORT_TIMEOUT) -> bool:
        """Cancels a solve of this client's connection; True if it was running."""
        return bool(_protocol.member(self.call("cancel", {"id": request_id}, timeout=timeout), "cancelled"))

    def plugins(self, *, timeout: Optional[float] = SHORT_TIMEOUT) -> List[PluginInfo]:
        return [PluginInfo.from_json(entry) for entry in _protocol.array(self.call("plugins.list", timeout=timeout))]

    def load(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> PluginInfo:
        """Loads lib<name>.so from the daemon's plugin directory."""
        return PluginInfo.from_json(self.call("plugins.load", {"name": name}, timeout=timeout))

    def reload(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> PluginInfo:
        """Swaps in the plugin's current build; solves in flight finish on the old generation."""
        return PluginInfo.from_json(self.call("plugins.reload", {"name": name}, timeout=timeout))

    def unload(self, name: str, *, timeout: Optional[float] = ADMIN_TIMEOUT) -> str:
        return str(_protocol.member(self.call("plugins.unload", {"name": name}, timeout=timeout), "unloaded"))
