"""The master's process, named for the user: its pid and whether it is running, stopped, a
zombie or gone, so that a client or built-in that gets no answer says why ("stopped: `fg` it")
instead of hanging or claiming that no master runs.

Only for slow and error paths (a connect, handshake or pid that takes too long, a query nobody
answers), but cheap all the same: ``posix`` and ``zeuspy.paths`` at import; ``fcntl`` to test
the pid file's lock and, on macOS, ``subprocess`` for ``ps``, only when called.
"""

import posix

from zeuspy import paths
from zeuspy.procs import GONE, RUNNING, STOPPED, ZOMBIE, process_state

#: No pid file names a live or recently dead master (and no pid was given).
NONE = "none"


#: Why :func:`read_pid_file` found no pid file: none there, a symlink, not a regular file.
MISSING = "missing"
SYMLINK = "a symlink"
NOT_A_FILE = "not a regular file"


def read_pid_file(path: bytes | str) -> tuple[int | None, bool, str | None]:
    """One pid file, opened without following a link: the pid it names (None: none), whether
    its lock is held (the master that wrote it is alive; a lock that cannot be tested counts as
    held), and why it is no pid file (:data:`MISSING`, :data:`SYMLINK`, :data:`NOT_A_FILE`) or
    None. The one reader of pid files (master/lock.py raises on a symlink or wrong type)."""
    import errno
    import fcntl

    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_NONBLOCK
                        | posix.O_CLOEXEC)
    except OSError as exc:
        return None, False, SYMLINK if exc.errno == errno.ELOOP else MISSING
    try:
        if posix.fstat(fd).st_mode & 0o170000 != 0o100000:
            return None, False, NOT_A_FILE
        text = posix.pread(fd, 32, 0).decode(errors="replace").strip()
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # BlockingIOError: held; anything else: cannot tell, trust the file
            locked = True
        else:
            locked = False
        return (int(text) if text.isdigit() else None), locked, None
    finally:
        posix.close(fd)


def pid_file_pid(root: bytes) -> tuple[int | None, bool]:
    """The pid in the project's pid file (``.zeus/master.pid``, else an older zeuspy's
    ``.zeus.pid``) and whether its lock is held (the master that wrote it is alive); (None,
    False) when neither names a pid. Never follows a symlink; a file of another type is
    ignored."""
    for path in (paths.pid_path(root), paths.legacy_pid_path(root)):
        pid, locked, problem = read_pid_file(path)
        if problem is None and pid is not None:
            return pid, locked
    return None, False


class MasterState:
    """A master's pid (None when unknown) and :data:`RUNNING`, :data:`STOPPED`,
    :data:`ZOMBIE`, :data:`GONE` or :data:`NONE`."""

    __slots__ = ("pid", "state")

    def __init__(self, pid: int | None, state: str) -> None:
        self.pid = pid
        self.state = state

    def __repr__(self) -> str:
        return f"MasterState(pid={self.pid}, state={self.state!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MasterState)
                and (self.pid, self.state) == (other.pid, other.state))

    def __hash__(self) -> int:
        return hash((self.pid, self.state))

    def describe(self) -> str:
        """``the master (pid 123) is stopped (^Z or SIGSTOP)``, ``... is running``, ``... is a
        zombie (it exited; its parent has not reaped it)``, ``... is gone``, or ``no master is
        running``."""
        if self.state == NONE or self.pid is None:
            return "no master is running"
        what = {STOPPED: "is stopped (^Z or SIGSTOP)", RUNNING: "is running",
                ZOMBIE: "is a zombie (it exited; its parent has not reaped it)",
                GONE: "is gone"}.get(self.state, f"is {self.state}")
        return f"the master (pid {self.pid}) {what}"

    def advice(self) -> str:
        """What the user can do about it: for a stopped master, ``fg`` it in its terminal or
        ``kill -CONT PID``; for a running one that does not answer, its log or ``zeus stop``;
        else ``zeus start``."""
        if self.state == STOPPED:
            return f"run `fg` in its terminal, or `kill -CONT {self.pid}`"
        if self.state == RUNNING:
            return (f"see .zeus/master.log; `zeus stop` (or `kill {self.pid}`) and `zeus start` "
                    "if it stays so")
        return "start one with `zeus start`"


def master_state(root: bytes, pid: int | None = None) -> MasterState:
    """The state of the master of the project in ``root`` (bytes, as :mod:`zeuspy.paths`): of
    ``pid`` when given (e.g. the peer pid of a connection), else of the pid in its pid file.
    A pid file whose lock nobody holds names a master that is gone (or a zombie), whatever
    process has that pid now."""
    if pid is not None and pid > 0:
        return MasterState(pid, process_state(pid))
    found, locked = pid_file_pid(root)
    if found is None:
        return MasterState(None, NONE)
    state = process_state(found)
    if not locked and state != ZOMBIE:
        state = GONE  # the pid may belong to another process by now
    return MasterState(found, state)
