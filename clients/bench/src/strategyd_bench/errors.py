"""The harness's own errors: each stops a command with a message rather than a traceback
(the command line's main turns them into exit status 2)."""
from __future__ import annotations


class UsageError(Exception):
    """A command line, spec or data file the run cannot work with."""


class RunFileError(Exception):
    """A run file that cannot be read: missing, unreadable, or a broken line that is not its last."""


class UnknownBaseline(Exception):
    """The report was asked to compare with a condition no run file holds."""


class MissingMatplotlib(Exception):
    """The plot was asked for, and matplotlib is not installed."""
