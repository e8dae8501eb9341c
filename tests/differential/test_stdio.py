"""Issue 10, items 1 and 2: each standard stream keeps its own kind, and buffering is python's.

1. In a PTY, with the redirections a shell gives (``< file``, ``cat file |``, ``| cat``,
   ``> file``, ``2> file``, ``2>&1``), a command run by ``zeus run`` (or by the original Go client,
   emulated) sees what ``python`` sees: ``os.isatty`` and the ``os.fstat`` kind of fds 0-2, the
   exact bytes of a binary stdin holding every byte value (^C ^D ^Z DEL CR included), the output
   bytes and the terminal's state after.
2. ``-u`` and ``PYTHONUNBUFFERED=1`` make output reach a pipe or file while the program still
   runs; without them, ``2>&1`` gives python's bytes in python's order.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import socket
import subprocess
import time

import pytest

from tests.differential.harness import (
    RUN_TIMEOUT,
    popen_one,
    run_both,
    scratch,
    script_for,
    stopped,
)
from tests.harness.project import PyProject

#: 10,005 bytes: every byte value 39 times, then signal, EOF and erase keys of a terminal.
DATA = bytes(range(256)) * 39 + b"\x03\x04\x1a\x7f\r\n" * 3 + b"end"
assert len(DATA) == 10005

PROBE = """\
import hashlib, json, os, stat, sys

KINDS = (("FIFO", stat.S_ISFIFO), ("REG", stat.S_ISREG), ("SOCK", stat.S_ISSOCK),
         ("CHR", stat.S_ISCHR))


def kind(fd):
    mode = os.fstat(fd).st_mode
    return next((name for name, test in KINDS if test(mode)), oct(mode))


report = {"isatty": [os.isatty(fd) for fd in range(3)], "kinds": [kind(fd) for fd in range(3)],
          "sys.stdin.isatty": sys.stdin.isatty()}
if "read" in sys.argv[2:]:
    data = sys.stdin.buffer.read()
    report["stdin"] = [len(data), hashlib.sha256(data).hexdigest()]
with open(sys.argv[1], "w") as f:
    json.dump(report, f)
print("to stdout", sys.argv[2:])
print("to stderr", file=sys.stderr)
"""
#: Prints a line (stdout) and a partial line (stderr), then waits (at most 10 s) for the file
#: named by argv[1] before it prints the rest.
PAUSE = """\
import os, sys, time
print("first line")
sys.stderr.write("partial err ")
deadline = time.monotonic() + 10
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
print("second line")
"""
MIXED = """\
import sys
for i in range(5):
    print("out", i)
    print("err", i, file=sys.stderr)
sys.stdout.write("partial out ")
sys.stderr.write("partial err ")
print("x" * 9000)
print("after big", file=sys.stderr)
sys.stdout.write("flushed\\n")
sys.stdout.flush()
print("err after flush", file=sys.stderr)
sys.stdout.buffer.write(b"B" * 20000 + b"\\n")
print("err after 20000", file=sys.stderr)
print("tail out", end="")
print("tail err", end="", file=sys.stderr)
"""
#: How the interpreter set up its standard streams, written to argv[1].
STREAMS = """\
import io, json, sys
report = {}
for name in ("stdin", "stdout", "stderr"):
    stream = getattr(sys, name)
    report[name] = {"line_buffering": stream.line_buffering, "write_through": stream.write_through,
                    "encoding": stream.encoding, "errors": stream.errors,
                    "buffer": type(stream.buffer).__name__,
                    "raw": type(getattr(stream.buffer, "raw", stream.buffer)).__name__,
                    "fileno": stream.fileno(), "mode": getattr(stream, "mode", None)}
report["DEFAULT_BUFFER_SIZE"] = io.DEFAULT_BUFFER_SIZE
with open(sys.argv[1], "w") as f:
    json.dump(report, f, sort_keys=True)
"""
SCRIPT = "import sys\nprint('script ran', sys.argv, sys.stdin.isatty())\n"

PROJECT_FILES: dict[str, str | bytes] = {
    "probe.py": PROBE, "pause.py": PAUSE, "mixed.py": MIXED, "script.py": SCRIPT,
    "streams.py": STREAMS,
    "data.bin": DATA,
}

# -- 1. each standard stream keeps its own kind ------------------------------------------------

#: (id, snippet, expected isatty of fds 0-2 under python). ``$PY probe.py "$OUT/report"`` then
#: the redirections; "tty" means the stream stays on the PTY.
STDIN = {"tty": "", "file": " < data.bin", "pipe": ""}
STDOUT_STDERR = {
    "out=tty,err=tty": ("", True, True),
    "out=tty,err=file": (' 2> "$OUT/err"', True, False),
    "out=pipe,err=tty": (" | cat", False, True),
    "out=pipe,err=file": (' 2> "$OUT/err" | cat', False, False),
    "out=file,err=tty": (' > "$OUT/out"', False, True),
    "out=file,err=file": (' > "$OUT/out" 2> "$OUT/err"', False, False),
    "out=pipe,err=same pipe": (" 2>&1 | cat", False, False),
    "out=file,err=same file": (' > "$OUT/out" 2>&1', False, False),
}
COMBOS = [(f"in={stdin},{rest}", stdin, rest)
          for stdin in ("tty", "file") for rest in STDOUT_STDERR]
COMBOS += [("in=pipe,out=pipe,err=tty", "pipe", "out=pipe,err=tty"),
           ("in=pipe,out=tty,err=tty", "pipe", "out=tty,err=tty")]


def combo_snippet(stdin: str, rest: str) -> str:
    tail, _, _ = STDOUT_STDERR[rest]
    # A terminal on stdin is not read: with stdin a socket (the Go client relays the terminal into
    # it), reading would wait for an EOF nobody types.
    read = "" if stdin == "tty" else " read"
    command = f'$PY probe.py "$OUT/report" a{read}{STDIN[stdin]}{tail}'
    return f"cat data.bin | {command}" if stdin == "pipe" else command


@pytest.mark.parametrize(("stdin", "rest"), [c[1:] for c in COMBOS], ids=[c[0] for c in COMBOS])
def test_each_stream_keeps_its_kind(zeus_project: PyProject, stdin: str, rest: str) -> None:
    python, candidate = run_both(zeus_project, combo_snippet(stdin, rest), pty=True,
                                 sides=("python", "zeus"))
    # The reference is what the combination says (this checks the scenario itself).
    report = json.loads(python.files["report"])
    _, out_tty, err_tty = STDOUT_STDERR[rest]
    assert report["isatty"] == [stdin == "tty", out_tty, err_tty], report
    if stdin != "tty":
        assert report["stdin"] == [len(DATA), hashlib.sha256(DATA).hexdigest()]
    assert python.status == 0, python
    # What the command saw, then everything the user saw.
    assert json.loads(candidate.files.get("report", b"null")) == report
    assert candidate == python


@pytest.mark.parametrize(("stdin", "rest"), [c[1:] for c in COMBOS], ids=[c[0] for c in COMBOS])
def test_a_legacy_client_gets_its_own_streams(zeus_project: PyProject, stdin: str,
                                              rest: str) -> None:
    """The original Go client speaks no extension: the command gets its pairs (a PTY where its
    stdout or stderr is a terminal, else a socket), stdin riding on the stdout pair. That is the
    legacy protocol, so the kinds are the Go client's, not python's; what zeuspy owes it is
    the rest: every byte of a non-terminal stdin, the same output and files, the same status,
    the terminal as it was."""
    _, out_tty, err_tty = STDOUT_STDERR[rest]
    if stdin != "tty" and out_tty:
        pytest.skip("the Go client feeds a file through its own PTY, where ^C, ^\\ and ^Z bytes "
                    "become signals: its protocol's choice, nothing the master can change")
    python, legacy = run_both(zeus_project, combo_snippet(stdin, rest), pty=True,
                              sides=("python", "legacy"))
    report = json.loads(legacy.files.get("report", b"null"))
    assert report is not None, legacy
    assert report["isatty"] == [out_tty, out_tty, err_tty], report
    assert report["kinds"] == ["CHR" if out_tty else "SOCK"] * 2 + ["CHR" if err_tty else "SOCK"]
    if stdin != "tty" and not out_tty:
        # Relayed through a socket: exact. Through the Go client's PTY the line discipline would
        # interpret the control bytes; that is its choice.
        assert report["stdin"] == [len(DATA), hashlib.sha256(DATA).hexdigest()]
    assert (legacy.status, legacy.signal, legacy.termios) == (
        python.status, python.signal, python.termios)
    # The Go client relays stdout and stderr apart, so where both end in one place (the screen,
    # `> out 2>&1`) lines of the two may swap places: there, the same lines; elsewhere the
    # same bytes.
    files = {name: data for name, data in python.files.items() if name != "report"}
    got = {name: legacy.files.get(name) for name in files}
    if rest == "out=file,err=same file":
        got = {name: sorted((data or b"").splitlines()) for name, data in got.items()}
        files = {name: sorted(data.splitlines()) for name, data in files.items()}
    assert got == files
    assert sorted(legacy.stdout.splitlines()) == sorted(python.stdout.splitlines())


@pytest.mark.parametrize("client", ["zeus", "legacy"])
def test_stdin_and_stdout_sockets_stay_sockets(zeus_project: PyProject, client: str) -> None:
    """A socket on stdin and stdout (``systemd``-style, or a parent's socketpair) is passed on:
    kind SOCK, the exact bytes, no terminal anywhere."""
    reports = {}
    for side in ("python", client):
        with scratch() as out:
            feed, stdin = socket.socketpair()
            reader, stdout = socket.socketpair()
            with feed, stdin, reader, stdout:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", script_for('$PY probe.py "$OUT/report" read', side, out)],
                    cwd=zeus_project.root, env=zeus_project.env(), stdin=stdin, stdout=stdout,
                    stderr=subprocess.DEVNULL, start_new_session=True)
                stdin.close()
                stdout.close()
                with stopped(proc):
                    feed.sendall(DATA)
                    feed.shutdown(socket.SHUT_WR)
                    reader.settimeout(RUN_TIMEOUT)
                    got = b""
                    while chunk := reader.recv(65536):
                        got += chunk
                    proc.wait(RUN_TIMEOUT)
                reports[side] = (json.loads((out / "report").read_text()), got, proc.returncode)
    python = reports["python"]
    assert python[0]["kinds"] == ["SOCK", "SOCK", "CHR"]
    assert python[0]["stdin"] == [len(DATA), hashlib.sha256(DATA).hexdigest()]
    if client == "legacy":
        # The Go client gives stderr (/dev/null here) a socket pair of its own: its protocol.
        python[0]["kinds"][2] = "SOCK"
    assert reports[client] == python


@pytest.mark.parametrize("snippet", ["$PY < script.py", "$PY - x y < script.py",
                                     "cat script.py | $PY"],
                         ids=["stdin-file", "dash-file", "stdin-pipe"])
def test_a_script_on_stdin_runs_instead_of_a_console(zeus_project: PyProject,
                                                     snippet: str) -> None:
    """``python < script.py`` on a terminal runs the script (stdin is not a terminal); a console
    would wait for input (bounded: the run fails after 3 s)."""
    python, zeus = run_both(zeus_project, snippet, pty=True, timeout=3.0)
    assert b"script ran" in python.stdout and b"False" in python.stdout, python
    assert zeus == python


# -- 2. buffering as python does it ----------------------------------------------------------------

UNBUFFERED = {
    "-u | cat": ("$PY -u pause.py \"$OUT/go\" | cat", b"first line\n"),
    "-u | tee": ("$PY -u pause.py \"$OUT/go\" | tee \"$OUT/log\"", b"first line\n"),
    "PYTHONUNBUFFERED | cat": ("PYTHONUNBUFFERED=1 $PY pause.py \"$OUT/go\" | cat",
                               b"first line\n"),
    "-u stderr 2>&1 | cat": ("$PY -u pause.py \"$OUT/go\" 2>&1 | cat",
                             b"first line\npartial err "),
    "-u > file": ("$PY -u pause.py \"$OUT/go\" > \"$OUT/log\"", None),
}


@pytest.mark.parametrize("side", ["python", "zeus"])
@pytest.mark.parametrize("case", list(UNBUFFERED))
def test_unbuffered_output_arrives_before_the_end(zeus_project: PyProject, side: str,
                                                  case: str) -> None:
    """A line printed before a pause reaches the pipe's reader (or the file) while the program
    still waits; then it ends normally."""
    snippet, expected = UNBUFFERED[case]
    with scratch() as out:
        proc = popen_one(zeus_project, snippet, side, out)
        with stopped(proc):
            assert proc.stdout is not None
            got = b""
            deadline = time.monotonic() + 5
            wanted = expected or b"first line\n"
            while time.monotonic() < deadline:
                if expected is None:
                    log = out / "log"
                    got = log.read_bytes() if log.exists() else b""
                    if got.startswith(wanted):
                        break
                    time.sleep(0.02)
                    continue
                ready, _, _ = select.select([proc.stdout], [], [], 0.05)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    got += chunk
                    if got.startswith(wanted):
                        break
            early = got
            still_running = proc.poll() is None
            (out / "go").touch()
            rest, _ = proc.communicate(timeout=RUN_TIMEOUT)
        assert early.startswith(wanted), f"{side}: only {early!r} before the end"
        assert still_running
        status = (out / ".status").read_text()
        assert status.strip() == "0"
        if expected is not None:
            assert (early + rest).endswith(b"second line\n")


BUFFERED = {
    "2>&1 | cat": "$PY mixed.py 2>&1 | cat",
    "2>&1": "$PY mixed.py 2>&1",
    "> file 2>&1": '$PY mixed.py > "$OUT/all" 2>&1',
    "separate pipes": "$PY mixed.py",
    "-u 2>&1 | cat": "$PY -u mixed.py 2>&1 | cat",
}


@pytest.mark.parametrize("case", list(BUFFERED))
def test_buffered_output_has_pythons_bytes_and_order(zeus_project: PyProject, case: str) -> None:
    python, zeus = run_both(zeus_project, BUFFERED[case])
    everything = python.stdout + python.stderr + b"".join(python.files.values())
    assert b"tail outtail err" in everything or b"tail errtail out" in everything or \
        (b"tail out" in python.stdout and b"tail err" in python.stderr), python
    assert zeus == python


def test_buffered_output_on_a_terminal(zeus_project: PyProject) -> None:
    """On a terminal stdout is line-buffered: python's order, with the terminal's CR LF."""
    python, zeus = run_both(zeus_project, "$PY mixed.py", pty=True)
    assert b"out 0\r\nerr 0\r\n" in python.stdout
    assert zeus == python


STREAM_SETUPS = {
    "pipes": ('$PY streams.py "$OUT/report" | cat', False),
    "pipes -u": ('$PY -u streams.py "$OUT/report" 2>&1 | cat', False),
    "PYTHONUNBUFFERED": ('PYTHONUNBUFFERED=1 $PY streams.py "$OUT/report" > "$OUT/x"', False),
    "files": ('$PY streams.py "$OUT/report" < data.bin > "$OUT/x" 2> "$OUT/y"', False),
    "terminal": ('$PY streams.py "$OUT/report"', True),
    "terminal -u": ('$PY -u streams.py "$OUT/report"', True),
}


@pytest.mark.parametrize("case", list(STREAM_SETUPS))
def test_streams_are_set_up_as_python_does(zeus_project: PyProject, case: str) -> None:
    """``sys.stdin/stdout/stderr``: line buffering, write-through, encoding, errors, buffer
    classes and fds, as python sets them for that kind of file and those options."""
    snippet, pty = STREAM_SETUPS[case]
    python, zeus = run_both(zeus_project, snippet, pty=pty)
    report = json.loads(python.files["report"])
    assert report["stdout"]["line_buffering"] is (pty and "-u" not in case), report
    assert json.loads(zeus.files.get("report", b"null")) == report
    assert zeus == python
