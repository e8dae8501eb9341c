"""The pid file, locked for the master's whole life: one master per project, and a dead master's
leftovers are recognised (the kernel drops the lock when the process dies, even by SIGKILL)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket

from zeuspy.errors import AlreadyRunning


class PidLock:
    """``.zeus.pid`` holding our pid, flock'ed until :meth:`release`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise AlreadyRunning(
                f"zeus: a master is already running for {os.path.dirname(self.path)} "
                f"(pid {other}); use it, or stop it first with `zeus stop`"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self.fd)
            self.fd = None


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
