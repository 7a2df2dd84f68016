"""Python client of strategyd: JSON-RPC 2.0 over a Unix socket (see docs/api.md).

    from strategyd_client import Client
    with Client() as client:
        print(client.solve("What is 6 * 7?").answer)
"""
from ._paths import default_socket_path
from .aio import AsyncClient, AsyncSolveStream
from .client import Client, SolveStream
from .errors import (Busy, Cancelled, ConnectionLost, DaemonNotRunning, EngineError, InternalError,
                     InvalidParams, InvalidRequest, LimitExceeded, MethodNotFound, NotPermitted, ParseError,
                     PluginFailed, PluginLoadFailed, ProtocolError, RequestTimeout, RPCError,
                     ShuttingDown, StrategydError, UnknownPlugin, error_from_json)
from .results import (Budget, Candidate, Metrics, ModelInfo, PluginInfo, Progress, SolveResult,
                      Status, StrategyInfo)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncSolveStream", "Budget", "Busy", "Cancelled", "Candidate", "Client",
    "ConnectionLost", "DaemonNotRunning", "EngineError", "InternalError", "InvalidParams",
    "InvalidRequest", "LimitExceeded", "Metrics", "MethodNotFound", "ModelInfo", "NotPermitted", "ParseError",
    "PluginFailed", "PluginInfo", "PluginLoadFailed", "Progress", "ProtocolError", "RPCError",
    "RequestTimeout", "ShuttingDown", "SolveResult", "SolveStream", "Status", "StrategydError",
    "StrategyInfo", "UnknownPlugin", "default_socket_path", "error_from_json",
]
