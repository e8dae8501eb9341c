"""Fixtures of the unit tests: no processes, no master; just a check that no fd leaks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest


def open_fds() -> set[int]:
    """The fds open in this process right now (the listing's own fd excluded)."""
    fds = {int(name) for name in os.listdir("/proc/self/fd")}
    return {fd for fd in fds if _is_open(fd)}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def no_fd_leak() -> Iterator[Callable[[], set[int]]]:
    """Fails the test when it ends with fds open that were not open when it started."""
    before = open_fds()
    yield open_fds
    leaked = open_fds() - before
    assert not leaked, f"fds leaked: {sorted(leaked)} -> " + ", ".join(
        _describe(fd) for fd in sorted(leaked)
    )


def _describe(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
