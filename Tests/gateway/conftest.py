"""The gateway's tests run a real strategyd on the test model (clients/testing) and a real
strategyd-gateway in front of it, driven by the official openai package."""
from __future__ import annotations

import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
for folder in (CLIENTS / "python" / "src", CLIENTS / "testing"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from strategyd_daemon import daemon, leaves_daemon_idle, spare_daemon  # noqa: E402,F401
