"""``sys.stdin``, ``sys.stdout`` and ``sys.stderr`` made as the interpreter makes them at start-up.

A command process inherits the phase's stream objects, built for the phase's fds and the
master's environment. Once it has the client's fds as 0/1/2 it needs new ones, built the way
CPython's ``create_stdio`` (Python/pylifecycle.c) builds them, so that output reaches a pipe or
a file in the same chunks and at the same moments as under ``python``:

- stdin is buffered; stdout and stderr are buffered unless ``PYTHONUNBUFFERED`` is set (or
  ``-u``), in which case they write straight to the fd (no buffer at all, ``write_through``);
- a buffer is ``st_blksize`` of the fd (4096 for a pipe, a socket or most files), as ``io.open``
  picks it, not ``io.DEFAULT_BUFFER_SIZE``;
- stdout is line-buffered on a terminal, stderr always;
- newlines are not translated (``newline="\\n"``: stdin keeps ``\\r\\n``);
- encoding and errors are the interpreter's, or ``PYTHONIOENCODING``'s (``encoding:errors``);
  stderr's errors are ``backslashreplace``;
- the raw files are named ``<stdin>``, ``<stdout>``, ``<stderr>``; the fds are never closed by
  closing the objects.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping

#: The interpreter's own choice for stdout (the phase's, made from the master's locale).
_INTERPRETER = (getattr(sys.__stdout__, "encoding", None) or "utf-8",
                getattr(sys.__stdout__, "errors", None) or "strict")


def _flag(environ: Mapping[bytes, bytes], name: bytes) -> bool:
    return bool(environ.get(name))


def _io_encoding(environ: Mapping[bytes, bytes]) -> tuple[str, str]:
    """(encoding, errors) for stdin and stdout: ``PYTHONIOENCODING`` where it says, else the
    interpreter's."""
    encoding, errors = _INTERPRETER
    value = environ.get(b"PYTHONIOENCODING")
    if value:
        name, _, handler = os.fsdecode(value).partition(":")
        if name:
            try:
                import codecs

                codecs.lookup(name)
                encoding = name
            except LookupError:
                pass  # python refuses to start here; a command keeps the interpreter's choice
        if handler:
            errors = handler
    return encoding, errors


def _stream(fd: int, name: str, write: bool, unbuffered: bool, encoding: str, errors: str,
            line_buffering: bool) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
    buffer: io.RawIOBase | io.BufferedIOBase
    if write and unbuffered:
        buffer = raw
    else:
        size = io.DEFAULT_BUFFER_SIZE
        try:
            blksize = os.fstat(fd).st_blksize
        except OSError:
            blksize = 0
        if blksize > 1:
            size = blksize
        buffer = io.BufferedWriter(raw, size) if write else io.BufferedReader(raw, size)
    raw.name = name  # python names its raw stdio files so
    stream = io.TextIOWrapper(buffer, encoding=encoding, errors=errors,
                              newline="\n", line_buffering=line_buffering,
                              write_through=unbuffered)
    stream.mode = "w" if write else "r"  # type: ignore[misc]
    return stream


def rebuild(environ: Mapping[bytes, bytes] | None = None, unbuffered: bool | None = None,
            which: tuple[str, ...] = ("stdin", "stdout", "stderr")) -> None:
    """Replace ``sys.<which>`` and ``sys.__<which>__`` with new objects on fds 0/1/2, made as
    ``python`` would make them for ``environ`` (default: this process's). ``unbuffered``: what
    ``-u`` says; by default ``PYTHONUNBUFFERED`` in ``environ`` decides (the phase's own
    interpreter flags do not: the command stands for a ``python`` started from the client). The
    old objects are flushed first and left to the garbage collector without closing their
    fds."""
    env = os.environb if environ is None else environ
    if unbuffered is None:
        unbuffered = _flag(env, b"PYTHONUNBUFFERED")
    encoding, errors = _io_encoding(env)
    for name in which:
        old = getattr(sys, name, None)
        if name != "stdin" and old is not None:
            try:
                old.flush()
            except (OSError, ValueError):
                pass
        fd = ("stdin", "stdout", "stderr").index(name)
        write = fd != 0
        try:
            tty = os.isatty(fd)
        except OSError:
            tty = False
        line = not unbuffered and (tty or fd == 2)
        new = _stream(fd, f"<{name}>", write, unbuffered, encoding,
                      "backslashreplace" if fd == 2 else errors, line)
        setattr(sys, name, new)
        setattr(sys, f"__{name}__", new)
