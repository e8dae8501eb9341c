"""Differential harness: one scenario, run as ``python ...`` and as ``zeus run ...``, compared.

A scenario is a ``/bin/sh`` snippet in which ``$PY`` stands for the interpreter::

    record_py, record_zeus = run_both(project, '$PY probe.py < data.bin 2> "$OUT/err" | cat',
                                      pty=True)
    assert record_zeus == record_py

- ``$PY`` is the venv's ``python`` (``sys.executable``: both sides have the same interpreter and
  packages), or ``zeus run`` (``ZEUS run``), or the Go client emulation
  (``side="legacy"``, tests/harness/go_client.py).
- ``$OUT`` is an empty scratch folder of that run (outside the project); every file the snippet
  writes there comes back in :attr:`Record.files`. ``PY`` and ``OUT`` are shell variables, not
  exported: the command's environment is the same on both sides.
- Both sides run in the project's folder with the project's environment (``project.env()``),
  through ``/bin/sh -c`` (dash, which reports a child killed by a signal on its stderr, e.g.
  ``Terminated``, so WIFSIGNALED shows in the bytes), on pipes (``stdin`` bytes, default
  ``/dev/null``) or on a fresh PTY (``pty=True``; ``interact`` drives it with pexpect).
- ``exec $PY ...`` as the snippet makes :attr:`Record.shell` the command's own end as its parent
  sees it (``signal SIGINT`` versus ``exit 130``: WIFSIGNALED); ``shell="/bin/bash"`` runs the
  snippet with bash (which aborts a loop only when the child died of the SIGINT it got too).
- :func:`interactive_bash` is an interactive ``bash --norc --noprofile -i`` on a PTY with ``$PY``
  set and prompt ``ZP> ``, for job control (^Z, ``fg``) and typed-ahead keys.
- The record holds what the shell saw: ``$?`` and ``kill -l $?``, the shell's own end (an exit
  status, or the signal it died of: dash dies of SIGINT after a child did), the bytes, and for PTY
  runs ``stty -a`` after the snippet.

Every wait is bounded (:data:`RUN_TIMEOUT`). The project and master come from conftest.py's
``zeus_project`` fixture (a zero-config Python project, leak-checked when the module ends).
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from tests.harness.legacy_client import GO_CLIENT
from tests.harness.project import ZEUS, Project

#: Bound of one side of one scenario.
RUN_TIMEOUT = 15.0
SIDES = ("python", "zeus")
#: The PTY size of every terminal run.
DIMENSIONS = (24, 80)

#: Runs after the snippet: what the shell saw. (The ``stty`` line is added for PTY runs.)
_EPILOGUE = """
rc=$?
sig=
if [ "$rc" -gt 128 ]; then sig=$(kill -l "$rc" 2>/dev/null); fi
{stty}printf '%s %s' "$rc" "$sig" > "$OUT/.status"
"""


@dataclass(frozen=True)
class Record:
    """What one side of a scenario showed; two records compare equal when nobody could tell the
    runs apart (timing aside)."""

    #: The shell's stdout and stderr (pipe runs); for PTY runs, every byte the terminal showed
    #: in ``stdout`` and ``b""`` in ``stderr``.
    stdout: bytes
    stderr: bytes
    #: ``$?`` after the snippet, and ``kill -l $?`` when it is above 128 ("" otherwise); None
    #: when the shell never got there (it died).
    status: int | None
    signal: str
    #: How the wrapping shell ended: ``"exit N"`` or ``"signal NAME"``.
    shell: str
    #: Files the snippet wrote in ``$OUT``, by name.
    files: dict[str, bytes] = field(default_factory=dict)
    #: ``stty -a`` after the snippet (PTY runs), else None.
    termios: str | None = None


def side_command(side: str) -> str:
    """What ``$PY`` expands to on ``side``: ``python``, ``zeus`` or ``legacy``."""
    if side == "python":
        return shlex.quote(sys.executable)
    if side == "zeus":
        return f"{shlex.quote(ZEUS)} run"
    if side == "legacy":
        return f"{shlex.quote(sys.executable)} -I {shlex.quote(str(GO_CLIENT))} - run"
    raise ValueError(f"unknown side {side!r}")


def script_for(snippet: str, side: str, out: Path, pty: bool = False) -> str:
    """The whole ``sh -c`` script of one side."""
    stty = 'stty -a > "$OUT/.stty" 2>/dev/null\n' if pty else ""
    return (f"PY={shlex.quote(side_command(side))}\nOUT={shlex.quote(str(out))}\n"
            f"{snippet}{_EPILOGUE.format(stty=stty)}")


def _shell_end(returncode: int | None, signalstatus: int | None = None) -> str:
    if signalstatus is not None:
        return f"signal {signal.Signals(signalstatus).name}"
    assert returncode is not None
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


def _collect(out: Path, stdout: bytes, stderr: bytes, shell: str) -> Record:
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if not p.name.startswith(".")}
    status_file, stty_file = out / ".status", out / ".stty"
    status, name = None, ""
    if status_file.exists():
        rc, _, name = status_file.read_text().partition(" ")
        status = int(rc)
    termios = stty_file.read_text() if stty_file.exists() else None
    return Record(stdout, stderr, status, name.strip(), shell, files, termios)


@contextmanager
def scratch() -> Iterator[Path]:
    """An empty ``$OUT`` folder, removed after."""
    with tempfile.TemporaryDirectory(prefix="zdiff-") as folder:
        yield Path(folder)


def run_one(project: Project, snippet: str, side: str, *, pty: bool = False,
            stdin: bytes | None = None, env: dict[str, str] | None = None,
            interact: Callable[[pexpect.spawn], None] | None = None,
            timeout: float = RUN_TIMEOUT, shell: str = "/bin/sh") -> Record:
    """Run ``snippet`` once with ``$PY`` meaning ``side``; see the module docstring.

    ``env`` replaces ``project.env()``. On a PTY, ``interact(child)`` may type and expect
    before the harness waits for EOF (its expects are bounded by ``timeout`` too); ``stdin``
    is for pipe runs only.
    """
    environ = project.env() if env is None else env
    with scratch() as out:
        script = script_for(snippet, side, out, pty)
        if not pty:
            proc = subprocess.Popen([shell, "-c", script], cwd=project.root, env=environ,
                                    stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
            with stopped(proc):
                try:
                    stdout, stderr = proc.communicate(stdin, timeout=timeout)
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"{side}: {snippet!r} still ran after {timeout} s") \
                        from None
            return _collect(out, stdout, stderr, _shell_end(proc.returncode))
        assert stdin is None, "a PTY run types its input with interact"
        child = pexpect.spawn(shell, ["-c", script], cwd=str(project.root), env=environ,
                              timeout=timeout, dimensions=DIMENSIONS)
        seen = io.BytesIO()
        child.logfile_read = seen
        try:
            if interact is not None:
                interact(child)
            child.expect(pexpect.EOF, timeout=timeout)
        finally:
            child.close(force=True)
        return _collect(out, seen.getvalue(), b"", _shell_end(child.exitstatus,
                                                                child.signalstatus))


def run_both(project: Project, snippet: str, *, sides: tuple[str, str] = SIDES,
             **options: object) -> tuple[Record, Record]:
    """``run_one`` for ``python`` then ``zeus`` (or ``sides``): (reference, candidate)."""
    first, second = (run_one(project, snippet, side, **options)  # type: ignore[arg-type]
                     for side in sides)
    return first, second


def popen_one(project: Project, snippet: str, side: str, out: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``snippet`` on pipes (stdin ``/dev/null``) and return at once, for tests that watch
    output while it runs (``out`` is ``$OUT``, from :func:`scratch`). The caller bounds its reads
    and must ``kill``/``communicate`` the process (:func:`stopped`)."""
    return subprocess.Popen(["/bin/sh", "-c", script_for(snippet, side, out)], cwd=project.root,
                            env=project.env() if env is None else env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


@contextmanager
def stopped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Yield ``proc``; on the way out, SIGKILL its session if it still runs, and reap it."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        proc.communicate(timeout=RUN_TIMEOUT)


#: The prompt of :func:`interactive_bash`.
PROMPT = b"ZP> "


@contextmanager
def interactive_bash(project: Project, side: str,
                     timeout: float = RUN_TIMEOUT) -> Iterator[tuple[pexpect.spawn, io.BytesIO]]:
    """An interactive bash on a fresh PTY in the project, ``$PY`` set for ``side``, at its first
    prompt: (the pexpect child, everything the terminal showed from that prompt on). Bounded by
    ``timeout`` per expect; closed (SIGKILL if need be) on the way out."""
    env = dict(project.env(), PS1=PROMPT.decode(), HISTFILE="/dev/null", TERM="dumb")
    child = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], cwd=str(project.root),
                          env=env, timeout=timeout, dimensions=DIMENSIONS)
    try:
        child.expect_exact(PROMPT)
        # Before the transcript starts: both sides' transcripts start alike.
        child.sendline(f"PY={shlex.quote(side_command(side))}")
        child.expect_exact(PROMPT)
        seen = io.BytesIO()
        child.logfile_read = seen
        yield child, seen
    finally:
        child.close(force=True)
