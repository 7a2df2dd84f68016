"""The harness's tests: most need no daemon; runs and head files use a real strategyd on
the test model (clients/testing), as the client's tests do."""
from __future__ import annotations

import sys
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2]
# Both packages from their source trees (no install needed) and the shared daemon
# fixtures, whichever folder pytest took its configuration from.
for folder in (CLIENTS / "python" / "src", CLIENTS / "bench" / "src", CLIENTS / "testing"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from strategyd_daemon import client, daemon, leaves_daemon_idle, spare_daemon  # noqa: E402,F401
