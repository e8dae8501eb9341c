"""The master's state files, never followed: ``.zeus/``, its pid file, log and ``.gitignore``,
and an older zeuspy's ``.zeus.pid``.

A repository can ship a symlink named ``.zeus`` or ``.zeus.pid`` (or ``.zeus/master.log``), and
a master that followed it would overwrite the link's target with its pid or write its log into
someone else's folder. So ``.zeus/`` is opened with ``O_NOFOLLOW | O_DIRECTORY`` and must be a
folder of ours, and each file in it is opened relative to that folder's fd with ``O_NOFOLLOW``
(``O_NONBLOCK`` too, so that a FIFO planted there cannot hang us) and must be a regular file.
Anything else is one line (:class:`StateFileError`) naming the path and what to remove.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from zeuspy import paths
from zeuspy.errors import ZeusError
from zeuspy.inputfile import file_kind

LOG_NAME = "master.log"
IGNORE_NAME = ".gitignore"


class StateFileError(ZeusError):
    """A state file (or ``.zeus/``) is a symlink, of the wrong type, or not ours."""



def _refuse(path: str, found: str, wanted: str) -> StateFileError:
    why = (" (zeuspy never follows links among its state files)" if found == "a symlink"
           else "")
    return StateFileError(f"zeus: {path} is {found}, not {wanted}{why}; remove it and try again")


def _lstat_kind(path: str) -> str:
    try:
        return file_kind(os.lstat(path).st_mode)
    except OSError:
        return "not usable"


def state_dir_path(root: str) -> str:
    return os.fsdecode(paths.state_dir(os.fsencode(root)))


def open_state_dir(root: str, create: bool = True) -> int:
    """An fd of ``ROOT/.zeus`` (created mode 0700 when ``create``), a real folder of ours, its
    mode tightened to 0700; :class:`StateFileError` otherwise. FileNotFoundError when it does not
    exist and ``create`` is False. The caller closes the fd."""
    path = state_dir_path(root)
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(path, _lstat_kind(path), "the master's state folder") from None
        raise StateFileError(f"zeus: cannot open {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        os.close(fd)
        raise StateFileError(f"zeus: {path} belongs to uid {info.st_uid}, not to you (uid "
                             f"{os.getuid()}); remove it and try again")
    if info.st_mode & 0o077:
        os.fchmod(fd, 0o700)  # ours: keep the log (every phase's output) private
    return fd


def open_state_file(dir_fd: int, name: str, flags: int, folder: str, wanted: str,
                    mode: int = 0o600) -> int:
    """``name`` in the state folder open as ``dir_fd``, never through a symlink and only when it
    is a regular file (``wanted`` names it in the error, ``folder`` is the folder's path).
    FileNotFoundError passes through when ``flags`` does not create it, FileExistsError with
    ``O_EXCL``."""
    path = os.path.join(folder, name)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode,
                     dir_fd=dir_fd)
    except (FileNotFoundError, FileExistsError):
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EMLINK):
            raise _refuse(path, _lstat_kind(path), wanted) from None
        raise StateFileError(f"zeus: cannot open {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refuse(path, file_kind(info.st_mode), wanted)
    os.set_blocking(fd, True)
    return fd


def check_file(path: str, wanted: str) -> None:
    """Refuse (:class:`StateFileError`) when ``path`` exists and is not a regular file; lstat
    only, for a file opened later by code that takes a path."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, file_kind(info.st_mode), wanted)


def prepare(root: str) -> str:
    """Create ``.zeus/`` (mode 0700, a ``.gitignore`` of ``*`` so that git lists none of it)
    and check its log; the log's path. :class:`StateFileError` when either is not what it
    should be. Safe to open the log by path afterwards: the folder is ours alone and the log is
    a regular file (:func:`open_log` opens it without following anything anyway)."""
    folder = state_dir_path(root)
    dir_fd = open_state_dir(root)
    try:
        with contextlib.suppress(FileExistsError):
            fd = open_state_file(dir_fd, IGNORE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                 folder, "a .gitignore", 0o644)
            try:
                os.write(fd, b"*\n")
            finally:
                os.close(fd)
        check_file(os.path.join(folder, IGNORE_NAME), "a .gitignore")
        os.close(open_log(root, dir_fd))
    finally:
        os.close(dir_fd)
    return os.path.join(folder, LOG_NAME)


def open_log(root: str, dir_fd: int | None = None) -> int:
    """``.zeus/master.log`` open for appending (created 0600), never through a symlink."""
    own = dir_fd is None
    fd = open_state_dir(root) if dir_fd is None else dir_fd
    try:
        return open_state_file(fd, LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                               state_dir_path(root), "the master's log")
    finally:
        if own:
            os.close(fd)
