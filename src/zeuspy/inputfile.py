"""Reading a file the user wrote (zeus.json, the plan file, pyproject.toml, manage.py) so that
any bad file is one :class:`ConfigError` line naming it, never a traceback or a hang.

What is refused, and why: a directory; anything but a regular file (a FIFO would block the read
forever, a device would never end); more than the caller's byte limit (a plan is a few KB: a huge
file is a mistake, and every later step is linear in it); a NUL byte; bytes that are not UTF-8.
Errors in the text give ``line:column`` (1-based; the column counts bytes for undecodable input).
Standard library only, like the rest of what the master and the built-in subcommands read
configuration with.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zeuspy.errors import ConfigError

#: zeus.json: a plan tree is a few hundred bytes; 1 MiB is thousands of commands.
CONFIG_LIMIT = 1 << 20
#: The plan file, pyproject.toml, manage.py: source files, larger than any real one.
SOURCE_LIMIT = 4 << 20


def location(text: str | bytes, index: int) -> str:
    """``line:column`` (1-based) of ``index`` in ``text``."""
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text.count(newline, 0, index) + 1  # type: ignore[arg-type]
    column = index - (text.rfind(newline, 0, index) + 1) + 1  # type: ignore[arg-type]
    return f"{line}:{column}"


def file_kind(mode: int) -> str:
    """What a file of ``mode`` (from ``lstat`` or ``fstat``) is, for a message: "a folder"..."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a device"


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The content of ``path`` (``what`` names it in messages: "the plan file"). Raises
    :class:`FileNotFoundError` when it does not exist (callers word that themselves), else
    :class:`ConfigError` for anything that is not a regular file of at most ``limit`` bytes."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat refuses it next).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"{path!r}: cannot read {what}: the path contains a NUL") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{path}: {what} is {file_kind(mode)}, not a file")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # read to EOF, not st_size: the file may grow while we read
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(f"{path}: {what} is larger than {limit // 1024} KiB; "
                          "is it the right file?")
    return b"".join(chunks)


def read_text(path: Path, what: str, limit: int) -> str:
    """:func:`read_bytes` decoded as UTF-8; a NUL byte or invalid UTF-8 is a ConfigError with
    its line and column."""
    return decode(path, what, read_bytes(path, what, limit))


def decode(path: Path, what: str, raw: bytes) -> str:
    """``raw`` (read from ``path``) as text: refused, with line and column, if it holds a NUL
    byte (Python's parser and most tools stop there) or is not UTF-8."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"{path}:{location(raw, nul)}: {what} contains a NUL byte")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}:{location(raw, exc.start)}: {what} is not UTF-8 "
                          f"(byte 0x{raw[exc.start]:02x})") from None
