"""OS process primitives, one home each: signal a process group, a process's state (running,
stopped, zombie, gone), ``prctl`` (parent-death signal, child subreaper), a wait status as the
status a shell shows, and the credentials of a Unix socket's peer.

The client imports this module too (its slow paths, and its check of who serves the socket), so
only ``posix``, ``_socket`` and ``sys`` are loaded at import; ``ctypes`` (for ``prctl``) and
``subprocess`` (for ``ps`` where there is no ``/proc``) are loaded when first needed.
"""

import _socket
import posix
import sys

_LINUX = sys.platform.startswith("linux")

# -- signals ----------------------------------------------------------------------------------


def signal_group(pgid: int, signum: int) -> bool:
    """Signal the process group ``pgid``; False when it has no process left (or none of ours)."""
    if pgid <= 0:
        return False
    try:
        posix.kill(-pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def signal_group_or_pid(pid: int, signum: int) -> bool:
    """Signal ``pid``'s process group when it leads one (zeuspy's phases and commands do), else
    the process alone (a legacy shim's, a command that left its group). False when it is gone
    or not ours to signal."""
    if pid <= 0:
        return False
    try:
        posix.kill(-pid, signum)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        posix.kill(pid, signum)
        return True
    except OSError:
        return False


# -- states -----------------------------------------------------------------------------------
RUNNING = "running"
STOPPED = "stopped"
ZOMBIE = "zombie"
GONE = "gone"

#: ``/proc/<pid>/stat`` state letters (and ``ps``'s first ``stat`` letter) of a stopped process:
#: job control (^Z, SIGSTOP) or a tracer.
_STOPPED_LETTERS = frozenset("Tt")


def process_state(pid: int) -> str:
    """:data:`RUNNING`, :data:`STOPPED`, :data:`ZOMBIE` or :data:`GONE` for ``pid``. Linux:
    ``/proc/<pid>/stat``; macOS and others: ``ps -o stat=``; else only alive or gone."""
    if pid <= 0:
        return GONE
    try:
        fd = posix.open(f"/proc/{pid}/stat", posix.O_RDONLY | posix.O_CLOEXEC)
    except FileNotFoundError:
        return GONE if _LINUX else _state_from_ps(pid)
    except OSError:
        return _state_from_ps(pid)
    try:
        data = posix.read(fd, 512)
    except OSError:
        return GONE
    finally:
        posix.close(fd)
    # "pid (comm) S ...": comm may hold spaces and parentheses, so split after the last ")".
    fields = data.rpartition(b")")[2].split()
    return _from_letter(fields[0].decode() if fields else "X")


def _from_letter(letter: str) -> str:
    if letter in _STOPPED_LETTERS:
        return STOPPED
    if letter == "Z":
        return ZOMBIE
    if letter in ("X", "x", ""):
        return GONE
    return RUNNING


def _state_from_ps(pid: int) -> str:
    try:
        import subprocess

        done = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return RUNNING if exists(pid) else GONE
    letter = done.stdout.decode(errors="replace").strip()[:1]
    return _from_letter(letter) if letter else GONE


def exists(pid: int) -> bool:
    """Whether a process ``pid`` exists; a zombie counts (its parent has not reaped it yet), and
    so does another user's process. One ``kill(pid, 0)``."""
    try:
        posix.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but not ours to signal
    return True


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie: a dead process its parent has not reaped yet
    is gone for every purpose but ``kill``."""
    return process_state(pid) in (RUNNING, STOPPED)


# -- prctl ------------------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
#: libc's prctl, once looked up (typed ``object``: the client may not import ``typing``).
_prctl: object = None


def prctl(option: int, value: int) -> bool:
    """Linux's ``prctl(option, value)``; False elsewhere or when it fails. The C function is
    looked up once (the first phase does it): spares and commands call this on the path of a
    request, where loading the C library again would cost a fraction of a millisecond."""
    global _prctl
    if not _LINUX:
        return False
    function = _prctl
    if not callable(function):
        import ctypes

        function = _prctl = ctypes.CDLL(None, use_errno=True).prctl
    return int(function(option, value, 0, 0, 0)) == 0


# -- wait statuses ----------------------------------------------------------------------------


def exit_status(wait_status: int) -> tuple[int, int]:
    """A ``waitpid`` status as a shell shows it, and the signal: (code, 0) for an exit,
    (128 + N, N) for a death by signal N."""
    code = posix.waitstatus_to_exitcode(wait_status)
    return (128 - code, -code) if code < 0 else (code, 0)


# -- peers ------------------------------------------------------------------------------------
#: ``SO_PEERCRED`` (Linux: ``struct ucred {pid, uid, gid}``); elsewhere ``LOCAL_PEERCRED`` at level
#: ``SOL_LOCAL`` (0) gives ``struct xucred {version, uid, ...}``.
_PEERCRED = getattr(_socket, "SO_PEERCRED", None)
_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE = 0, 0x001, 76


def peer_ids(sock: _socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of the connected Unix socket ``sock`` (for a
    listener, as it was when it called ``listen``), from one ``getsockopt``; pid is -1 where the
    OS does not give it that way (macOS). OSError when the OS does not say."""
    if _PEERCRED is not None:
        raw = sock.getsockopt(_socket.SOL_SOCKET, _PEERCRED, 12)
        return (int.from_bytes(raw[0:4], sys.byteorder, signed=True),
                int.from_bytes(raw[4:8], sys.byteorder))
    raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
    return -1, int.from_bytes(raw[4:8], sys.byteorder)
