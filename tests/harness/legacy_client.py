"""The legacy (Go) client's pipe mode: ``zeus COMMAND`` with sockets for stdin, stdout and stderr,
in the order burke/zeus's go/zeusclient sends them (protocol.md, "Client <-> master <->
command", no extension, so no world).

:func:`run_raw` runs it in this process (the stress and protocol tests); :func:`run_in_own_process`
runs this file as a script (``python -I legacy_client.py SOCKET COMMAND ARGS...``, printing
``{"raw", "stdout", "stderr"}`` as JSON) so that the client's cwd and environment are its own, as
the master reads them from ``/proc``. The whole Go client (terminals, signals, its exit before
the streams are drained) is emulated by ``go_client.py`` beside this file (:data:`GO_CLIENT`),
for the differential tests.

Standard library only: the script runs with ``-I``, without the tests on its path.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Bound of one run (tests.harness.waits.EXIT_TIMEOUT, repeated: stdlib only).
TIMEOUT = 10.0
#: The Go client emulation, a script: ``python -I GO_CLIENT SOCKET-OR-- COMMAND ARGS``.
GO_CLIENT = Path(__file__).with_name("go_client.py")


@dataclass
class Result:
    """What a legacy client got: the master's answer (``raw``, every byte it sent on the
    connection up to its EOF) and, parsed from it, the command's pid and exit status (None when
    missing); and the bytes the command wrote to stdout and stderr."""

    pid: int | None
    status: int | None
    stdout: bytes
    stderr: bytes
    raw: bytes

    def checked(self) -> Result:
        """This result, once checked that the answer is exactly ``<pid>\\0<status>\\0``."""
        assert re.fullmatch(rb"\d+\0\d+\0", self.raw), \
            f"the master's answer is not <pid>\\0<status>\\0: {self.raw!r}"
        return self


def send_fds(sock: socket.socket, fds: list[int], payload: bytes = b"\0") -> None:
    """One message of ``payload`` with ``fds`` as one SCM_RIGHTS control message (a legacy fd
    message: one NUL and one fd)."""
    sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


def run_raw(path: Path, command: str, args: list[str], stdin: bytes = b"",
            timeout: float = TIMEOUT) -> Result:
    """Run ``command`` as the legacy Go client does with sockets for stdio, in its order; the
    master's answer ``<pid>\\0<status>\\0`` is parsed (None when missing). Never hangs beyond
    ``timeout``."""
    master = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pairs = [socket.socketpair() for _ in range(3)]
    (args_local, args_remote), (out_local, out_remote), (err_local, err_remote) = pairs
    try:
        master.settimeout(timeout)
        connect(master, path, timeout)
        master.sendall(f"T:{len(args)}:{os.getpid()}:{command}".encode() + b"\0")
        send_fds(master, [args_remote.fileno()])
        args_remote.close()
        with contextlib.suppress(OSError):
            args_local.sendall(b"".join(a.encode() + b"\0" for a in args))
        args_local.close()
        for remote in (out_remote, err_remote):
            send_fds(master, [remote.fileno()])
            remote.close()
        with contextlib.suppress(OSError):
            out_local.sendall(stdin)
            out_local.shutdown(socket.SHUT_WR)
        chunks = _read_all([master, out_local, err_local], timeout)
    finally:
        for sock in (master, *(s for pair in pairs for s in pair)):
            sock.close()
    raw = chunks[0]
    parts = raw.split(b"\0")
    pid = int(parts[0]) if len(parts) > 1 and parts[0].isdigit() else None
    status = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
    return Result(pid, status, chunks[1], chunks[2], raw)


def _read_all(socks: list[socket.socket], timeout: float) -> list[bytes]:
    chunks = {sock: b"" for sock in socks}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    chunks[ready] += data
                else:
                    selector.unregister(ready)
    return [chunks[sock] for sock in socks]


def connect(sock: socket.socket, path: Path, timeout: float = 5.0) -> None:
    """Connect as a blocking client would: a Unix socket with a timeout fails at once (EAGAIN)
    while the listen backlog is full, where a blocking connect waits for the master to accept."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(str(path))
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def run_in_own_process(socket_path: Path, command: str, args: list[str], cwd: Path,
                              env: dict[str, str], timeout: float = TIMEOUT) -> Result:
    """:func:`run_raw` in a ``python -I`` process of its own, in ``cwd`` with ``env`` (its pid
    is the one it sends, and the master can vouch for it: it is the connection's peer)."""
    done = subprocess.run([sys.executable, "-I", __file__, str(socket_path), command, *args],
                          cwd=cwd, env=env, capture_output=True, timeout=timeout + 5)
    assert done.returncode == 0, done
    answer = json.loads(done.stdout)
    raw = answer["raw"].encode("latin-1")
    parts = raw.split(b"\0")
    pid = int(parts[0]) if len(parts) > 1 and parts[0].isdigit() else None
    status = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None
    return Result(pid, status, answer["stdout"].encode("latin-1"),
                  answer["stderr"].encode("latin-1"), raw)


def _main(argv: list[str]) -> int:
    result = run_raw(Path(argv[0]), argv[1], argv[2:])
    # latin-1: any bytes, one character each, back to the same bytes.
    print(json.dumps({name: value.decode("latin-1") for name, value in
                      (("raw", result.raw), ("stdout", result.stdout), ("stderr", result.stderr))}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
