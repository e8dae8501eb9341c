"""Bounded waits: the bounds every wait of the suites uses, polling, and reading a pipe until a
pattern shows. Nothing here waits without a deadline."""

from __future__ import annotations

import os
import re
import select
import time
from collections.abc import Callable
from typing import Any

#: A master's phases booting (or a project's first command) takes at most this long.
BOOT_TIMEOUT = 20.0
#: A process asked to exit (a master stopped, a client's command ending) does within this.
EXIT_TIMEOUT = 10.0


def wait_for(predicate: Callable[[], Any], timeout: float = BOOT_TIMEOUT, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; raise
    AssertionError (naming ``what``) when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def read_until(fd: int, pattern: bytes, timeout: float = EXIT_TIMEOUT) -> bytes:
    """Read ``fd`` until the regex ``pattern`` matches what was read, and return all of it;
    AssertionError at EOF or after ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {pattern!r}; got {data[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"EOF before {pattern!r}; got {data[-500:]!r}")
            data += chunk
    return data
