"""Where the daemon's socket is: docs/api.md, "The socket"."""
from __future__ import annotations

import os
from typing import Optional, Union

SocketPath = Union[str, "os.PathLike[str]"]


def default_socket_path() -> str:
    """The socket strategyctl uses without --socket: docs/api.md, "The socket"."""
    explicit = os.environ.get("STRATEGYD_SOCKET")
    if explicit:
        return explicit
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "strategyd", "strategyd.sock")
    return "/run/strategyd/strategyd.sock"


def resolve_socket(socket: Optional[SocketPath]) -> str:
    return os.fspath(socket) if socket is not None else default_socket_path()
