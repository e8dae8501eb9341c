"""The pid file, locked for the master's whole life: one master per project, and a dead master's
leftovers are recognised (the kernel drops the lock when the process dies, even by SIGKILL).

The file is ``.zeus/master.pid`` (:func:`zeuspy.paths.pid_path`); a master of an earlier zeuspy
locks ``.zeus.pid`` in the root instead, so both are checked before a master starts or a signal
is sent."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket

from zeuspy import paths
from zeuspy.errors import AlreadyRunning


def _already_running(root: str, pid: object) -> AlreadyRunning:
    return AlreadyRunning(f"zeus: a master is already running for {root} (pid {pid}); use it, "
                          "or stop it first with `zeus stop`")


class PidLock:
    """``path`` (:func:`zeuspy.paths.pid_path` of the project root) holding our pid, flock'ed
    until :meth:`release`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.root = os.path.dirname(os.path.dirname(path))  # path is ROOT/.zeus/master.pid
        self.fd: int | None = None

    def acquire(self) -> None:
        """Lock the pid file (creating ``.zeus/``, mode 0700, if needed); :class:`AlreadyRunning`
        if a master, of this zeuspy or an earlier one, holds the project."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(self.path), 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise _already_running(self.root, other) from None
        # Checked while we hold the new lock: no master of this zeuspy can start meanwhile.
        legacy = running_master(os.fsdecode(paths.legacy_pid_path(os.fsencode(self.root))))
        if legacy is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # ours while locked: leave no empty pid file behind
            os.close(fd)
            raise _already_running(self.root, legacy)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


def master_pid(root: str) -> int | None:
    """The pid of the live master of the project in ``root`` (its pid file's lock is held,
    ``.zeus/master.pid`` or an earlier zeuspy's ``.zeus.pid``), or None."""
    encoded = os.fsencode(root)
    for path in (paths.pid_path(encoded), paths.legacy_pid_path(encoded)):
        pid = running_master(os.fsdecode(path))
        if pid is not None:
            return pid
    return None


def running_master(pid_path: str) -> int | None:
    """The pid of the live master holding ``pid_path``'s lock, or None."""
    try:
        fd = os.open(pid_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        return None  # we got the lock: nobody holds it, the file is stale
    finally:
        os.close(fd)


def ensure_private_dir(path: str) -> None:
    """The folder of a socket outside the project (too long a path) must be ours alone: create
    it with mode 0700, refuse one that another user owns or others can enter."""
    folder = os.path.dirname(path)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if info.st_uid != os.getuid() or info.st_mode & 0o077 or not os.path.isdir(folder):
        raise AlreadyRunning(
            f"zeus: {folder} (for the socket, as the project path is too long) must be a folder "
            "of yours with mode 0700; fix it or set ZEUSSOCK to a shorter path")


def clear_stale_socket(path: str) -> None:
    """Remove a socket left by a dead master; refuse if a live master answers on it."""
    if not os.path.exists(path) and not os.path.islink(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise AlreadyRunning(
        f"zeus: another master is listening on {path}; stop it first (`zeus stop`) or set "
        "ZEUSSOCK to another path"
    )
