"""Issue 10, item 7: legacy clients lose nothing.

The original Go client exits as soon as it reads the exit status, without draining the command's
output (tests/harness/go_client.py emulates it, and the first test checks that the emulation really
does not drain). Through it, a command that prints its last lines just before exiting, run many
times on pipes and files, must lose none of them: the master must not send the status before the
output can be read.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.differential.harness import RUN_TIMEOUT, Record, run_both
from tests.harness.legacy_client import GO_CLIENT
from tests.harness.project import PyProject

LAST = """\
import sys
print("out", sys.argv[1])
print("err", sys.argv[1], file=sys.stderr)
"""
PROJECT_FILES = {"last.py": LAST}
#: Runs per test: the loss was 10-16 % of runs, so 150 runs all survive by chance with
#: probability below 1e-6.
RUNS = 150


def _fds(message_fds: list[int], sock: socket.socket) -> None:
    space = socket.CMSG_SPACE(array.array("i").itemsize)
    _, ancillary, _, _ = sock.recvmsg(1, space)
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            message_fds.extend(array.array("i", payload))


def test_the_emulation_exits_at_the_status_without_draining(tmp_path: Path) -> None:
    """Against a fake master that sends the status while output is still to come, the emulated
    Go client exits at once with that status and never shows the late output."""
    path = str(tmp_path / "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(RUN_TIMEOUT)
    client = subprocess.Popen([sys.executable, "-I", str(GO_CLIENT), path, "run"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    fds: list[int] = []
    try:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(RUN_TIMEOUT)
            header = b""
            while not header.endswith(b"\0"):
                header += conn.recv(1)
            assert header.startswith(b"T:0:") and header.endswith(b":run\0"), header
            for _ in range(3):  # args, stdout, stderr
                _fds(fds, conn)
            assert len(fds) == 3
            os.write(fds[1], b"early\n")
            time.sleep(0.3)  # the client relays it
            conn.sendall(b"4242\0")
            conn.sendall(b"7\0")
            started = time.monotonic()
            client.wait(RUN_TIMEOUT)
            quick = time.monotonic() - started
            # Still open on our side (a draining client would wait for EOF): written after the
            # exit, it must not show (the client's end is closed: EPIPE is fine).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                os.write(fds[1], b"late\n")
        out, _ = client.communicate(timeout=RUN_TIMEOUT)
    finally:
        for fd in fds:
            os.close(fd)
        if client.poll() is None:
            client.kill()
            client.wait(RUN_TIMEOUT)
        listener.close()
    assert client.returncode == 7
    assert out == b"early\n"
    assert quick < 1.0, quick


def _loop(tail: str, runs: int = RUNS) -> str:
    return f"for i in $(seq {runs}); do $PY last.py $i; done{tail}"


def test_no_output_lost_through_pipes(zeus_project: PyProject) -> None:
    python, legacy = run_both(zeus_project, _loop(" 2>&1 | cat"), sides=("python", "legacy"),
                              timeout=60.0)
    assert python.stdout.count(b"\n") == 2 * RUNS, python
    lost = [line for line in python.stdout.splitlines() if line not in legacy.stdout.splitlines()]
    assert not lost, f"{len(lost)} of {2 * RUNS} lines lost: {lost[:10]}"
    # The legacy protocol gives stdout and stderr a pair each, relayed apart: within a run
    # their lines may swap places, but each stream keeps its own order and nothing else moves.
    for stream in (b"out ", b"err "):
        def lines(record: Record, stream: bytes = stream) -> list[bytes]:
            return [line for line in record.stdout.splitlines() if line.startswith(stream)]

        assert lines(legacy) == lines(python)
    assert (legacy.status, legacy.stderr) == (python.status, python.stderr)


def test_no_output_lost_into_files(zeus_project: PyProject) -> None:
    python, legacy = run_both(zeus_project, _loop(' > "$OUT/out" 2> "$OUT/err"', 100),
                              sides=("python", "legacy"), timeout=60.0)
    assert python.files["out"].count(b"\n") == 100, python
    assert legacy.files == python.files
