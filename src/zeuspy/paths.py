"""Where a project's files live (root, socket, pid file, state folder), and whether the
socket's folder and the process serving it are the user's own.

The client imports this on every command, so it uses ``posix`` and ``_socket`` only (``os``
costs 2 ms; both are built in and loaded already).
"""

import _socket
import posix

from zeuspy import procs

SOCKET_NAME = ".zeus.sock"
STATE_DIR = ".zeus"
#: The pid file, inside :data:`STATE_DIR` so that git never lists it (the folder ignores itself).
PID_NAME = "master.pid"
#: Where earlier zeuspy kept the pid file: still checked, so that a master it started is never
#: doubled.
LEGACY_PID_NAME = ".zeus.pid"
SOCKET_ENV = "ZEUSSOCK"
CONFIG_NAME = b"zeus.json"
#: Files that mark a project's root when no zeus.json is found (the built-in plan's project).
ROOT_MARKERS = (b"pyproject.toml", b"setup.py", b"setup.cfg", b"manage.py")
#: ``st_mode`` bits of a socket (``stat.S_IFSOCK``, without importing stat).
_S_IFMT, _S_IFSOCK, _S_IFDIR, _S_IFLNK = 0o170000, 0o140000, 0o040000, 0o120000


def _exists(path: bytes) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def _is_socket(path: bytes) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFSOCK
    except OSError:
        return False


def _parent(here: bytes) -> bytes:
    return here.rpartition(b"/")[0] or b"/"


def find_upwards(start: bytes, name: bytes) -> bytes | None:
    """The nearest of ``start`` and its parents that holds ``name``, or None."""
    here = start.rstrip(b"/") or b"/"
    while True:
        if _exists(here + b"/" + name):
            return here
        if here in (b"/", b""):
            return None
        here = _parent(here)


def _marked(here: bytes) -> bool:
    return any(_exists(here + b"/" + marker) for marker in ROOT_MARKERS)


def project_root(cwd: bytes | None = None) -> bytes:
    """The project around ``cwd``, where ``zeus start`` runs its master: the nearest folder
    holding zeus.json; else the nearest holding any of :data:`ROOT_MARKERS`; else ``cwd``."""
    start = cwd or posix.getcwdb()
    found = find_upwards(start, CONFIG_NAME)
    if found is not None:
        return found
    here = start.rstrip(b"/") or b"/"
    while True:
        if _marked(here):
            return here
        if here in (b"/", b""):
            return start
        here = _parent(here)


def _holds_master(here: bytes) -> bool:
    """A master runs (or a killed one ran) for ``here``: its socket, or its pid file (which is
    there even when the socket lives elsewhere: ``$ZEUSSOCK``, a path too long)."""
    return (_is_socket(here + b"/" + SOCKET_NAME.encode())
            or _exists(here + b"/" + STATE_DIR.encode() + b"/" + PID_NAME.encode()))


def master_root(cwd: bytes | None = None) -> bytes:
    """The project whose master ``zeus COMMAND`` (and status, restart, stop) talks to from
    ``cwd``: the nearest folder holding zeus.json; else the nearest folder holding a master's
    socket or pid file, even above a folder with a root marker (a subfolder of the project with a
    setup.py of its own, say); else :func:`project_root`.

    A stat or two per parent folder, no connection: a socket left by a master killed with
    SIGKILL still counts until the next ``zeus start`` there removes it."""
    start = cwd or posix.getcwdb()
    found = find_upwards(start, CONFIG_NAME)
    if found is not None:
        return found
    marked: bytes | None = None
    here = start.rstrip(b"/") or b"/"
    while True:
        if _holds_master(here):
            return here
        if marked is None and _marked(here):
            marked = here
        if here in (b"/", b""):
            return marked or start
        here = _parent(here)


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


def private_dir_problem(folder: bytes) -> str | None:
    """Why the folder of a socket outside the project (:func:`runtime_dir`) cannot be trusted,
    as one line for the user without the ``zeus: `` prefix, or None (it is a real folder, not a
    symlink, owned by this uid, with no permission for group or others; or it does not exist).
    Another local user who created ``/tmp/zeuspy-<uid>`` first could listen there and receive
    a client's environment, folder, input and terminal. One ``lstat``."""
    try:
        info = posix.lstat(folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot check {folder.decode(errors='replace')}: {exc.strerror}"
    name = folder.decode(errors="replace")
    uid = posix.getuid()
    kind = info.st_mode & _S_IFMT
    if kind == _S_IFLNK or kind != _S_IFDIR or info.st_uid != uid:
        what = ("a symlink" if kind == _S_IFLNK else "not a folder" if kind != _S_IFDIR
                else f"owned by uid {info.st_uid}, not by you (uid {uid})")
        return (f"{name}, the folder of the master's socket, is {what}: another user may be "
                f"listening there; have it removed (`rm -r {name}`, as its owner or root), or "
                "set XDG_RUNTIME_DIR or ZEUSSOCK")
    if info.st_mode & 0o077:
        return (f"{name}, the folder of the master's socket, is open to others (mode "
                f"{info.st_mode & 0o777:o}); remove it (`rm -r {name}`) or `chmod 700` it")
    return None


def socket_folder_problem(path: bytes) -> str | None:
    """:func:`private_dir_problem` of the socket's folder when ``path`` is in
    :func:`runtime_dir` (the folder zeuspy creates and must be the user's alone), else None: a
    socket in the project, or at ``$ZEUSSOCK``, is vouched for by :func:`peer_problem`. A
    prefix comparison on the usual path."""
    folder = runtime_dir()
    if not path.startswith(folder + b"/"):
        return None
    return private_dir_problem(folder)


#: Linux: ``SO_PEERCRED`` gives ``struct ucred {pid, uid, gid}``. Elsewhere (macOS, the BSDs):
def peer_problem(sock: _socket.socket, path: bytes) -> tuple[int, str | None]:
    """The pid serving ``sock`` (-1 if unknown), and why it cannot be trusted (one line without
    the ``zeus: `` prefix) or None when it runs as this uid. Check it before sending anything:
    whoever listens at ``path`` gets the environment, the folder, the input and the terminal."""
    try:
        pid, uid = procs.peer_ids(sock)
    except OSError as exc:
        return -1, (f"cannot tell who listens on {path.decode(errors='replace')} "
                    f"({exc.strerror}); refusing to send it anything")
    if uid != posix.getuid():
        name = path.decode(errors="replace")
        return pid, (f"{name} is served by uid {uid}, not by you (uid {posix.getuid()}); "
                     f"refusing to send it anything: have it removed (`rm {name}`, as its owner "
                     "or root), or set ZEUSSOCK")
    return pid, None


def state_dir(root: bytes) -> bytes:
    """``.zeus/``: the master's log and pid file; it holds a ``.gitignore`` of ``*``."""
    return root + b"/" + STATE_DIR.encode()


def pid_path(root: bytes) -> bytes:
    """The master's locked pid file, ``.zeus/master.pid``."""
    return state_dir(root) + b"/" + PID_NAME.encode()


def legacy_pid_path(root: bytes) -> bytes:
    """``.zeus.pid`` in the root: where a master of an earlier zeuspy keeps its pid file."""
    return root + b"/" + LEGACY_PID_NAME.encode()
