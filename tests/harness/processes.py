"""What the tests know about processes, read from ``/proc`` (Linux, as the suites run).

A test's processes are found two ways, and the one listing (:func:`processes_in`) takes both:

- by **mark**: every process a test starts carries ``ZEUSPY_TEST_MARK=<unique id>`` in its
  environment (:data:`MARK_ENV`; phases, runners and commands inherit it), read back from
  ``/proc/<pid>/environ``. Projects set ``SPT_NOENV=1`` so that ``setproctitle`` does not reuse
  the environment's memory for a long title, but a process may still clear or replace its
  environment, so the mark alone can miss one;
- by **folder**: a process whose working directory is the test's project folder or below it (a
  master, its phases, commands and clients run there).

The state of a pid is read here from ``/proc/<pid>/stat`` on purpose rather than with
``zeuspy.procs``: the tests check zeuspy's process handling against this independent reading.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Protocol

#: The environment variable that marks a test's processes.
MARK_ENV = "ZEUSPY_TEST_MARK"
#: How long the processes of a finished test may take to go: a master's escalating kills
#: (SIGTERM, then SIGKILL) take about 2 s.
LEAK_GRACE = 5.0


class Marked(Protocol):
    """Anything that carries a test's mark (a project)."""

    @property
    def mark(self) -> str: ...


def new_mark() -> str:
    """A fresh, unique mark for a test's processes."""
    return uuid.uuid4().hex


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, D, T, t, Z, ...), or None when there is no such
    process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "pid (comm) S ...": comm may hold spaces and parentheses, so split after the last ")".
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead process its parent has not reaped yet)."""
    return proc_state(pid) not in (None, "Z", "X")


def is_dead(pid: int) -> bool:
    """``not alive(pid)``: gone, or a zombie."""
    return not alive(pid)


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid: int) -> str:
    """The command line (or title) of ``pid``, arguments joined by spaces; "" when gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def fd_count(pid: int) -> int:
    """How many fds ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    """What each open fd of ``pid`` points to (``socket:[inode]``, ``pipe:[inode]``, a path);
    an fd closed while it is read is left out."""
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _pids() -> list[int]:
    """Every pid but this process's."""
    me = os.getpid()
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) != me]


def children_of(ppid: int) -> list[int]:
    """The pids whose parent is ``ppid`` (zombies included)."""
    return [pid for pid in _pids() if parent_of(pid) == ppid]


def _carries(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def _works_in(pid: int, root: str) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return cwd == root or cwd.startswith(root + "/")


def processes_in(folder: os.PathLike[str] | str | None = None, *,
                 mark: str | None = None) -> list[tuple[int, str]]:
    """(pid, command line) of every live process (zombies and this process left out) whose
    working directory is ``folder`` or below it, or whose environment carries ``mark``; in pid
    order. The one listing of a test's processes."""
    root = os.path.realpath(folder) if folder is not None else None
    needle = f"{MARK_ENV}={mark}".encode() if mark is not None else None
    found = []
    for pid in sorted(_pids()):
        if ((root is not None and _works_in(pid, root))
                or (needle is not None and _carries(pid, needle))) and alive(pid):
            found.append((pid, cmdline(pid)))
    return found


def titled(owner: str | Marked, prefix: str) -> list[int]:
    """The live processes of ``owner`` (a mark, or a project carrying one) whose title starts
    with ``prefix``."""
    mark = owner if isinstance(owner, str) else owner.mark
    return [pid for pid, title in processes_in(mark=mark) if title.startswith(prefix)]


def kill_quietly(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal ``pid`` (SIGKILL by default); a process already gone is no error."""
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def kill_left(folder: os.PathLike[str] | str | None = None, *, mark: str | None = None) -> None:
    """SIGKILL every process :func:`processes_in` lists for ``folder`` and ``mark``."""
    for pid, _ in processes_in(folder, mark=mark):
        kill_quietly(pid)


def wait_no_processes(folder: os.PathLike[str] | str | None = None, *, mark: str | None = None,
                      timeout: float = LEAK_GRACE) -> list[tuple[int, str]]:
    """Wait up to ``timeout`` seconds for :func:`processes_in` to list nothing; what it lists
    last (empty on success)."""
    deadline = time.monotonic() + timeout
    left = processes_in(folder, mark=mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = processes_in(folder, mark=mark)
    return left


def check_no_leftovers(folder: os.PathLike[str] | str | None = None, *, mark: str | None = None,
                       grace: float = LEAK_GRACE, context: str = "") -> None:
    """The leak check of every suite: raise AssertionError (after SIGKILLing them, so that one
    leak does not break the next test) if processes of a test (working in ``folder`` or below,
    or carrying ``mark``) are still alive ``grace`` seconds after it ended. ``context`` (e.g.
    the master's log) is added to the message."""
    left = wait_no_processes(folder, mark=mark, timeout=grace)
    if not left:
        return
    for pid, _ in left:
        kill_quietly(pid)
    kill_left(folder, mark=mark)  # and whatever they forked meanwhile
    raise AssertionError(f"processes left behind: {left}" + (f"\n{context}" if context else ""))


class ProjectLike(Marked, Protocol):
    """A test's project folder as the leak check sees it (tests.harness.project.Project)."""

    @property
    def root(self) -> Path: ...

    @property
    def log(self) -> str: ...


def project_leftovers(project: ProjectLike, grace: float = LEAK_GRACE) -> None:
    """:func:`check_no_leftovers` for a project: its folder and its mark, with the tail of its
    master's log in the message."""
    check_no_leftovers(project.root, mark=project.mark, grace=grace,
                       context=f"master log:\n{project.log[-3000:]}")


def project_pids(project: ProjectLike) -> set[int]:
    """The pids :func:`processes_in` lists for a project (its folder and its mark)."""
    return {pid for pid, _ in processes_in(project.root, mark=project.mark)}


def default_signals() -> None:
    """Give SIGINT (Python's KeyboardInterrupt handler), SIGQUIT and SIGHUP their defaults in
    this process when they are ignored, so that the processes it starts do not inherit them
    ignored."""
    for number, handler in ((signal.SIGINT, signal.default_int_handler),
                            (signal.SIGQUIT, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL)):
        if signal.getsignal(number) == signal.SIG_IGN:
            signal.signal(number, handler)
