"""What the sync and async clients share: framing, request params, and routing of
incoming messages to the request they answer."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import ConnectionLost, InvalidRequest, ProtocolError, StrategydError, error_from_json
from .results import Budget

SHORT_TIMEOUT = 10.0  # ping, status, plugins.list, cancel: answered while solves run
ADMIN_TIMEOUT = 60.0  # plugin load/reload/unload (dlopen, plugin init) and raw calls

# Longest line either client reads from the daemon; a solve's text is bounded by the
# context, so this only guards against a runaway peer.
MAX_LINE_BYTES = 256 << 20

RequestId = Union[int, str]
# What a request's queue receives: ("progress", params) | ("result", value) | ("error", exc).
Item = Tuple[str, Any]


def encode(request_id: RequestId, method: str, params: Optional[Mapping[str, Any]]) -> bytes:
    message: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = dict(params)
    # json.dumps escapes control characters, so the line holds no raw newline.
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def solve_params(problem: str, strategy: str, params: Optional[Mapping[str, Any]],
                 budget: Union[Budget, Mapping[str, Any], None], seed: Optional[int],
                 stream: bool) -> Dict[str, Any]:
    """The `solve` params; omitted ones take the daemon's defaults."""
    out: Dict[str, Any] = {"problem": problem, "strategy": strategy}
    if params is not None:
        out["params"] = dict(params)
    if budget is not None:
        out["budget"] = budget.to_json() if isinstance(budget, Budget) else dict(budget)
    if seed is not None:
        out["seed"] = seed
    if stream:
        out["stream"] = True
    return out


def route(line: bytes) -> Optional[Tuple[Optional[RequestId], Item]]:
    """The request a line is for (None: see oversize_owner) and what to hand it; None
    for lines no request awaits (notifications other than progress)."""
    try:
        message = json.loads(line)
    except ValueError as error:
        raise ProtocolError(f"strategyd sent a line that is not JSON: {line[:200]!r}") from error
    if not isinstance(message, dict):
        raise ProtocolError(f"strategyd sent a JSON value that is not a message: {line[:200]!r}")
    if "id" not in message:
        params = message.get("params")
        if message.get("method") == "progress" and isinstance(params, dict) and "id" in params:
            return _request_id(params["id"], line), ("progress", params)
        return None
    request_id = _request_id(message["id"], line)
    if "error" in message:
        return request_id, ("error", error_from_json(message["error"]))
    if "result" in message:
        return (request_id, ("result", message["result"])) if request_id is not None else None
    raise ProtocolError(f"strategyd sent a response with neither result nor error: {line[:200]!r}")


def _request_id(value: Any, line: bytes) -> Optional[RequestId]:
    """An id as the client sends them (or null); anything else could not be looked up, or
    would match the wrong request (true == 1)."""
    if value is None or (isinstance(value, (int, str)) and not isinstance(value, bool)):
        return value
    raise ProtocolError(f"strategyd sent an id that is neither an integer nor a string: {line[:200]!r}")


def oversize_owner(error: Item, line_bytes: Mapping[RequestId, int]) -> Optional[RequestId]:
    """The request an error with a null id answers. The client sends only valid requests,
    so such an error is "Invalid Request" for a line over --max-request-bytes; and the
    lines over a size limit are the longest of those still awaiting an answer."""
    if not isinstance(error[1], InvalidRequest):
        return None
    return max(line_bytes, key=line_bytes.__getitem__, default=None)


def member(result: Any, key: str) -> Any:
    """result[key] of an object result, or ProtocolError."""
    if not isinstance(result, dict) or key not in result:
        raise ProtocolError(f"strategyd answered {result!r}, an object with {key!r} was expected")
    return result[key]


def array(result: Any) -> List[Any]:
    if not isinstance(result, list):
        raise ProtocolError(f"strategyd answered {result!r}, an array was expected")
    return result


def fresh(error: StrategydError) -> StrategydError:
    """A new instance of a connection-wide error, so each waiting thread or task raises its own."""
    return type(error)(*error.args)


def lost(reason: str) -> ConnectionLost:
    return ConnectionLost(f"connection to strategyd lost: {reason}")


def overlong_line() -> ProtocolError:
    return ProtocolError(f"strategyd sent a line over {MAX_LINE_BYTES} bytes")
