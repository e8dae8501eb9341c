"""Where a project's files live: root, socket, pid file, state folder.

The client imports this on every command, so it uses ``posix`` only (``os`` costs 2 ms).
"""

import posix

SOCKET_NAME = ".zeus.sock"
PID_NAME = ".zeus.pid"
STATE_DIR = ".zeus"
SOCKET_ENV = "ZEUSSOCK"
CONFIG_NAME = b"zeus.json"
#: Files that mark a project's root when no zeus.json is found (the built-in plan's project).
ROOT_MARKERS = (b"pyproject.toml", b"setup.py", b"setup.cfg", b"manage.py")


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
    """The nearest folder holding zeus.json; else the nearest holding any of
    :data:`ROOT_MARKERS`; else ``cwd``."""
    start = cwd or posix.getcwd().encode()
    found = find_upwards(start, CONFIG_NAME)
    if found is not None:
        return found
    here = start.rstrip(b"/") or b"/"
    while True:
        for marker in ROOT_MARKERS:
            if _exists(here + b"/" + marker):
                return here
        if here in (b"/", b""):
            return start
        here = here.rpartition(b"/")[0] or b"/"


#: Longest socket path every supported OS binds (macOS: 104 bytes with the NUL; Linux: 108).
MAX_SOCKET_PATH = 103


def _fnv1a(data: bytes) -> str:
    """A stable 64-bit digest (FNV-1a) without importing hashlib on the client's path."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def runtime_dir() -> bytes:
    """A private per-user folder for sockets whose natural path is too long:
    ``$XDG_RUNTIME_DIR/zeuspy``, else ``/tmp/zeuspy-<uid>`` (the master creates it, mode 0700)."""
    base = posix.environ.get(b"XDG_RUNTIME_DIR")
    if base and base.startswith(b"/"):
        return base + b"/zeuspy"
    return b"/tmp/zeuspy-%d" % posix.getuid()


def socket_path(root: bytes) -> bytes:
    """``$ZEUSSOCK`` when set, else ``.zeus.sock`` in the project root, else (when that path is
    longer than the OS allows) a socket named after the root in :func:`runtime_dir`."""
    override = posix.environ.get(SOCKET_ENV.encode())
    if override:
        return override
    path = root + b"/" + SOCKET_NAME.encode()
    if len(path) <= MAX_SOCKET_PATH:
        return path
    return runtime_dir() + b"/" + _fnv1a(root).encode() + b".sock"


def pid_path(root: bytes) -> bytes:
    return root + b"/" + PID_NAME.encode()


def state_dir(root: bytes) -> bytes:
    return root + b"/" + STATE_DIR.encode()
