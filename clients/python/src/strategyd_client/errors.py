"""Exceptions: one class per documented error code, plus the client's own failures."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type

from ._paths import default_socket_path


class StrategydError(Exception):
    """Base of every exception this package raises."""


class RPCError(StrategydError):
    """An error response from the daemon: JSON-RPC `code`, `message` and `data`."""

    code: int = 0  # the documented code of a subclass; the received code is on the instance

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" + (f": {self.data}" if self.data is not None else "")


class ParseError(RPCError):
    code = -32700


class InvalidRequest(RPCError):
    code = -32600


class MethodNotFound(RPCError):
    code = -32601


class InvalidParams(RPCError):
    code = -32602


class InternalError(RPCError):
    code = -32603


class UnknownPlugin(RPCError):
    code = -32000


class PluginFailed(RPCError):
    code = -32001


class PluginLoadFailed(RPCError):
    code = -32002


class Cancelled(RPCError):
    code = -32003


class Busy(RPCError):
    code = -32004


class NotPermitted(RPCError):
    code = -32005


class EngineError(RPCError):
    code = -32006


class ShuttingDown(RPCError):
    code = -32007


class LimitExceeded(RPCError):
    """One of the daemon's caps (status.limits) refused the request: data["limit"] names it."""
    code = -32008


_BY_CODE: Dict[int, Type[RPCError]] = {
    cls.code: cls
    for cls in (ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
                UnknownPlugin, PluginFailed, PluginLoadFailed, Cancelled, Busy, NotPermitted,
                EngineError, ShuttingDown, LimitExceeded)
}


def error_from_json(error: Any) -> RPCError:
    """The exception for a response's `error` member; RPCError itself for an unknown code."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return RPCError(0, f"malformed error object: {error!r}")
    code: int = error["code"]
    return _BY_CODE.get(code, RPCError)(code, str(error.get("message", "")), error.get("data"))


class DaemonNotRunning(StrategydError, ConnectionError):
    """Nothing listens on the socket: the daemon is not started, or uses another path."""

    def __init__(self, socket_path: str, cause: Optional[OSError] = None) -> None:
        self.socket_path = socket_path
        command = "strategyd --model MODEL.gguf"
        if socket_path != default_socket_path():
            command += f" --socket {socket_path}"
        reason = f" ({cause.strerror or cause})" if cause is not None else ""
        self.hint = (f"strategyd is not running at {socket_path}{reason}: start it with `{command}`"
                     " (or its systemd service), or point STRATEGYD_SOCKET at a running daemon's socket")
        super().__init__(self.hint)


class ConnectionLost(StrategydError, ConnectionError):
    """The connection closed (daemon died or restarted, client closed) before the response came."""


class RequestTimeout(StrategydError, TimeoutError):
    """No response within the call's `timeout`; a solve that timed out is cancelled on the daemon."""


class ProtocolError(StrategydError):
    """The daemon sent something that does not follow docs/api.md."""
