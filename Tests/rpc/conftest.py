"""The RPC backend's tests run real ggml-rpc-servers (built by scripts/setup) and real
strategyd daemons (clients/testing) on the test model."""
from __future__ import annotations

import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
for folder in (CLIENTS / "python" / "src", CLIENTS / "testing"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from strategyd_daemon import client, daemon, spare_daemon  # noqa: E402,F401
