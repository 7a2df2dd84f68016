#!/usr/bin/env python3
"""Rebuild a plugin and hot-swap it into the running daemon.

Runs `swift build --product NAME` in the repository, then plugins.reload (plugins.load
if it is not loaded yet) and prints the old and new generation. Solves in flight finish
on the old generation.

    python3 hot_swap.py greedy
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from strategyd_client import Client, StrategydError

REPO = Path(__file__).resolve().parents[3]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="the plugin, as in Plugins/NAME")
    parser.add_argument("--repo", type=Path, default=REPO, help=f"default: {REPO}")
    parser.add_argument("--socket", help="default: STRATEGYD_SOCKET, then the standard path")
    args = parser.parse_args()

    build = subprocess.run(["swift", "build", "--product", args.name], cwd=args.repo)
    if build.returncode != 0:
        print(f"hot_swap: swift build failed ({build.returncode}); the daemon keeps the old build", file=sys.stderr)
        return build.returncode
    try:
        with Client(args.socket) as client:
            old = next((plugin for plugin in client.plugins() if plugin.name == args.name), None)
            new = client.reload(args.name) if old is not None else client.load(args.name)
    except StrategydError as error:
        print(f"hot_swap: {error}", file=sys.stderr)
        return 1
    before = f"generation {old.generation} ({old.version})" if old is not None else "not loaded"
    print(f"{args.name}: {before} -> generation {new.generation} ({new.version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
