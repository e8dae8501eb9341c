"""The ``zeus`` launcher (bin/zeus) in its direct form.

bin/zeus starts with a few lines that ``/bin/sh`` runs: they exec the Python installed beside the
script with ``-I -S``. That form survives any installer (a wheel cannot carry an interpreter path
with arguments: pip rewrites a ``#!python`` line to the interpreter's path and drops them), but
the extra exec of ``/bin/sh`` costs about 1 ms on every call, and the client's start-up is the
floor of every command's latency.

So ``zeus start`` replaces the first line, once, with ``#!<that python> -IS`` when the kernel
can run that: the rest of the file stays, and Python reads the sh lines as a string expression.
"""

from __future__ import annotations

import os

#: The launcher's first line, and a line that only the launcher's sh part contains.
SH_LINE = b"#!/bin/sh\n"
SH_MARK = b'exec "$d/python" -IS "$0" "$@"'
#: Longest ``#!`` line every supported kernel runs whole (Linux before 5.1 cut at 127 bytes).
MAX_SHEBANG = 127


def make_direct(launcher: str, python: str) -> bool:
    """Give ``launcher`` the first line ``#!<python> -IS``; True when it did.

    Leaves it alone (False) unless it is the sh form, ``python`` is the ``python`` beside it (as
    the sh lines would choose), the line fits :data:`MAX_SHEBANG` without whitespace in the
    path, and the file can be replaced (a read-only install stays as it is). The new file
    replaces the old one atomically, with the same mode."""
    path = os.path.realpath(launcher)
    folder = os.path.dirname(path)
    if python != os.path.join(folder, "python") or any(c.isspace() for c in python):
        return False
    shebang = f"#!{python} -IS\n".encode()
    if len(shebang) > MAX_SHEBANG:
        return False
    try:
        with open(path, "rb") as f:
            content = f.read()
        if not content.startswith(SH_LINE) or SH_MARK not in content:
            return False
        mode = os.stat(path).st_mode & 0o7777
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as f:
                f.write(shebang + content[len(SH_LINE):])
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError:
        return False
    return True
