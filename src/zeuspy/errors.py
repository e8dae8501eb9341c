"""Failures a user can meet, each a value with words for the user and a named exit code."""

from __future__ import annotations

#: Exit codes of ``zeus`` itself (a command's own status passes through unchanged).
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad command line or bad plan: nothing was started


class ZeusError(Exception):
    """An error shown to the user as one line (what, where, what to do); exits ``exit_code``."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(ZeusError):
    """zeus.json or the plan file is invalid; the master starts nothing."""

    exit_code = EXIT_USAGE


class UsageError(ZeusError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE


class AlreadyRunning(ZeusError):
    """Another master already serves this project."""

    exit_code = EXIT_FAILURE
