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
import stat

from zeuspy import masterstate, paths
from zeuspy.errors import AlreadyRunning, ZeusError
from zeuspy.master import statefiles
from zeuspy.master.statefiles import StateFileError


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
        if a master, of this zeuspy or an earlier one, holds the project. Neither ``.zeus`` nor
        the pid file is followed if it is a symlink (:mod:`zeuspy.master.statefiles`): that, or
        a wrong type, is a :class:`~zeuspy.master.statefiles.StateFileError`."""
        folder = os.path.dirname(self.path)
        dir_fd = statefiles.open_state_dir(self.root)
        try:
            fd = statefiles.open_state_file(dir_fd, os.path.basename(self.path),
                                            os.O_RDWR | os.O_CREAT, folder,
                                            "the master's pid file")
        finally:
            os.close(dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise _already_running(self.root, other) from None
        # Checked while we hold the new lock: no master of this zeuspy can start meanwhile.
        try:
            legacy = running_master(os.fsdecode(paths.legacy_pid_path(os.fsencode(self.root))))
            if legacy is not None:
                raise _already_running(self.root, legacy)
        except (AlreadyRunning, StateFileError):
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # ours while locked: leave no empty pid file behind
            os.close(fd)
            raise
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
    ``.zeus/master.pid`` or an earlier zeuspy's ``.zeus.pid``), or None;
    :class:`~zeuspy.master.statefiles.StateFileError` when one of them, or ``.zeus``, is a
    symlink or of the wrong type."""
    encoded = os.fsencode(root)
    folder = os.fsdecode(paths.state_dir(encoded))
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.lstat(folder).st_mode):
            raise StateFileError(f"zeus: {folder} is a symlink, not the master's state folder "
                                 "(zeuspy never follows links among its state files); remove it "
                                 "and try again")
    for path in (paths.pid_path(encoded), paths.legacy_pid_path(encoded)):
        pid = running_master(os.fsdecode(path))
        if pid is not None:
            return pid
    return None


def running_master(pid_path: str) -> int | None:
    """The pid of the live master holding ``pid_path``'s lock, or None (no such file, or nobody
    holds it). Never through a symlink: a symlink, or a pid file that is not a regular file, is
    a :class:`~zeuspy.master.statefiles.StateFileError` (one line for the user)."""
    pid, locked, problem = masterstate.read_pid_file(pid_path)
    if problem == masterstate.SYMLINK:
        raise statefiles.StateFileError(
            f"zeus: {pid_path} is a symlink, not a pid file (zeuspy never follows links "
            "among its state files); remove it and try again")
    if problem == masterstate.NOT_A_FILE:
        raise statefiles.StateFileError(
            f"zeus: {pid_path} is not a pid file (a folder or a special file); remove it "
            "and try again")
    return pid if locked else None  # unlocked: nobody holds it, the file is stale


def ensure_private_dir(path: str) -> None:
    """The folder of a socket outside the project (too long a path) must be ours alone: create
    it with mode 0700; refuse (:class:`~zeuspy.errors.ZeusError`, one line) one that is a
    symlink, not a folder, another user's, or open to others. Another local user could have
    created it first and listen there for our clients; clients run the same check
    (:func:`zeuspy.paths.private_dir_problem`)."""
    folder = os.path.dirname(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    problem = paths.private_dir_problem(os.fsencode(folder))
    if problem is not None:
        raise ZeusError(f"zeus: {problem}")


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
