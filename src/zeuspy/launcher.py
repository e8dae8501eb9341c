"""The ``zeus`` script and its fast form.

The installer (pip, uv, pipx) writes ``zeus`` from the ``[project.scripts]`` entry point: a script
whose first line is ``#!<the environment's python>`` and which calls :func:`zeuspy.cli.main`. That
form works wherever the installer puts it (a venv, ``pip install --user``, Debian's
/usr/local/bin, python.org's macOS framework), but Python's ``site`` costs 3-5 ms on every call,
and the client's start-up is the floor of every command's latency.

So ``zeus start`` replaces the script, once, with the fast form: ``#!<the same python> -IS`` and
:data:`FAST_BODY`, which finds zeuspy in the environment's site-packages (or the source folder of
an editable install) without ``site``, falls back to ``site.main()`` for any other layout, and
leaves without the interpreter's teardown. It does so only when it is safe. The script must be
zeuspy's own entry-point script, and its interpreter line a plain absolute path that fits the
kernel's limit with ``-IS``. The script's line in the installation's RECORD must also be updated
(new hash and size). Then RECORD stays true, and ``pip uninstall`` and ``pip check`` see a file
the installer described.
"""

from __future__ import annotations

import base64
import hashlib
import os

#: Longest ``#!`` line every supported kernel runs whole (Linux before 5.1 cut at 127 bytes).
MAX_SHEBANG = 127
#: What only zeuspy's entry-point script contains (pip's, uv's and our fast form's).
ENTRY_MARK = b"from zeuspy.cli import main"
FAST_MARK = b"# zeuspy fast launcher"
#: Bound of the fast form's trial run (`zeus version`) before it replaces the script.
CHECK_TIMEOUT = 10.0

FAST_BODY = b'''\
# zeuspy fast launcher: written by `zeus start` (zeuspy/launcher.py) over the entry-point script.
# Python runs with -I -S: `site` costs 3-5 ms on every call. zeuspy is found in the environment's
# site-packages (a regular or a path-based editable install); anything else loads `site`.
import posix
import sys


def _find_zeuspy() -> bool:
    version = sys.version_info
    prefix = sys.executable.rpartition("/")[0].rpartition("/")[0]
    site_packages = f"{prefix}/lib/python{version[0]}.{version[1]}/site-packages"
    try:
        names = posix.listdir(site_packages)
    except OSError:
        return False
    sys.path.append(site_packages)
    if "zeuspy" in names:
        return True
    for name in names:
        if name.endswith(".pth") and "zeuspy" in name:
            with open(f"{site_packages}/{name}") as pth:
                found = [line for line in pth.read().splitlines() if line.startswith("/")]
            if found:
                # First on the path: finding zeuspy there spares listing the other folders
                # (about 1 ms); they hold only zeuspy (a src layout) in an editable install.
                sys.path[:0] = found
                return True
    return False


if not _find_zeuspy():
    import site

    site.main()

from zeuspy.cli import main  # noqa: E402

status = main()
# Leave without the interpreter's teardown (3-4 ms of the client's budget): flush and go.
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except Exception:
        status = status or 1
posix._exit(status)
'''


def fast_form(content: bytes) -> bytes | None:
    """The fast form of an entry-point script's ``content``, or None when it is not zeuspy's
    entry-point script with a plain ``#!/absolute/python`` line that fits with ``-IS``."""
    first, _, rest = content.partition(b"\n")
    if FAST_MARK in content or ENTRY_MARK not in rest or not first.startswith(b"#!/"):
        return None
    python = first[2:].strip()
    if any(c in python for c in b" \t\r\v\f"):  # arguments, or a path sh would have to quote
        return None
    if not python.rpartition(b"/")[2].startswith((b"python", b"pypy")):
        return None  # e.g. pip's `#!/bin/sh` form, which execs a python whose path has spaces
    shebang = b"#!" + python + b" -IS\n"
    if len(shebang) > MAX_SHEBANG:
        return None
    return shebang + FAST_BODY


def record_line(relative: str, data: bytes) -> str:
    """``path,sha256=<urlsafe base64, no padding>,size``: a RECORD line (PEP 376, PEP 627)."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def _record_of(path: str) -> tuple[str, str] | None:
    """(the RECORD file that lists ``path``, ``path`` as that RECORD names it), or None."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("zeuspy")
    except importlib.metadata.PackageNotFoundError:
        return None
    files = list(dist.files or ())
    records = [str(dist.locate_file(f)) for f in files
               if f.name == "RECORD" and f.parent.name.endswith(".dist-info")]
    if len(records) != 1:
        return None
    for entry in files:
        if os.path.realpath(str(dist.locate_file(entry))) == path:
            return records[0], str(entry)
    return None


def _replace(path: str, data: bytes, mode: int, check: bool = False) -> None:
    """Write ``data`` to ``path`` atomically, with ``mode``. ``check``: first run the new file
    as ``zeus version``; OSError unless it prints zeuspy's version (the fast form finds zeuspy
    without ``site`` and without the user's site-packages, which ``-I`` leaves out: a
    ``pip install --user`` or a ``PYTHONPATH`` install keeps the installer's form)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "wb") as f:
            f.write(data)
        os.chmod(temporary, mode)
        if check:
            _check(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _check(script: str) -> None:
    import subprocess

    from zeuspy import __version__

    try:
        done = subprocess.run([script, "version"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise OSError(f"{script} version did not answer") from None
    if done.returncode != 0 or done.stdout != f"zeuspy {__version__}\n".encode():
        raise OSError(f"{script} version: {done.returncode} {done.stdout!r} {done.stderr!r}")


def make_fast(script: str) -> bool:
    """Give the ``zeus`` script at ``script`` its fast form and its RECORD line the new hash;
    True when it did. Leaves both alone (False) when the script is not the entry-point form
    (already fast, someone else's, a wrapper), when RECORD does not list it or cannot be
    written, or when the script cannot be replaced (a read-only install)."""
    path = os.path.realpath(script)
    try:
        with open(path, "rb") as f:
            content = f.read()
        fast = fast_form(content)
        if fast is None:
            return False
        found = _record_of(path)
        if found is None:
            return False
        record, relative = found
        with open(record, encoding="utf-8") as f:
            lines = f.read().splitlines()
        rows = [i for i, line in enumerate(lines) if line.partition(",")[0] == relative]
        if len(rows) != 1:
            return False
        lines[rows[0]] = record_line(relative, fast)
        mode = os.stat(path).st_mode & 0o7777
        record_mode = os.stat(record).st_mode & 0o7777
        _replace(path, fast, mode, check=True)
        try:
            _replace(record, ("\n".join(lines) + "\n").encode(), record_mode)
        except OSError:
            _replace(path, content, mode)  # RECORD must not lie: put the script back
            raise
    except OSError:
        return False
    return True
