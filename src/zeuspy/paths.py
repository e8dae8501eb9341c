"""Where a project's files live: root, socket, pid file, state folder.

The client imports this on every command, so it uses ``posix`` only (``os`` costs 2 ms).
"""

from __future__ import annotations

import posix

SOCKET_NAME = ".zeus.sock"
PID_NAME = ".zeus.pid"
STATE_DIR = ".zeus"
SOCKET_ENV = "ZEUSSOCK"
ROOT_MARKERS = (b"zeus.json", b"pyproject.toml")


def _exists(path: bytes) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def find_upwards(start: bytes, name: bytes) -> bytes | None:
    """The nearest of ``start`` and its parents that holds ``name``, or None."""
    here = start.rstrip(b"/") or b"/"
    while True:
        if _exists(here + b"/" + name):
            return here
        if here in (b"/", b""):
            return None
        here = here.rpartition(b"/")[0] or b"/"


def project_root(cwd: bytes | None = None) -> bytes:
    """The nearest folder holding zeus.json, else the nearest holding pyproject.toml, else cwd."""
    start = cwd or posix.getcwd().encode()
    for marker in ROOT_MARKERS:
        found = find_upwards(start, marker)
        if found is not None:
            return found
    return start


def socket_path(root: bytes) -> bytes:
    """``$ZEUSSOCK`` when set, else ``.zeus.sock`` in the project root."""
    override = posix.environ.get(SOCKET_ENV.encode())
    return override if override else root + b"/" + SOCKET_NAME.encode()


def pid_path(root: bytes) -> bytes:
    return root + b"/" + PID_NAME.encode()


def state_dir(root: bytes) -> bytes:
    return root + b"/" + STATE_DIR.encode()
