"""The stress suite's machinery: the size knob, what a process holds (from /proc), an in-process
client, and the figures the full run prints.

``ZEUSPY_STRESS=full`` (``make stress``) runs every test at its full count; ``reduced`` (the
default, part of ``make test``) runs the same tests with small counts, under a minute in all.
"""

from __future__ import annotations

import array
import contextlib
import os
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import EXIT_TIMEOUT, Master, leftover_processes, wait_for

MODE = os.environ.get("ZEUSPY_STRESS", "reduced")
FULL = MODE == "full"
#: What the master may grow by over a test (RSS), whatever the count: a bounded master does not
#: grow with the number of commands or the bytes a hostile peer sends.
RSS_SLACK_KB = 32 * 1024
#: How long a death (of a master, phase, command or client) may take to be acted on.
DEATH_SEEN = 1.5
#: `zeus start` options of every master here: reloads without the default 0.3 s debounce.
FAST = ("--file-change-delay", "0.05")
#: How long a master may take to get back to its resting fd count after a test's last connection.
SETTLE = 6.0


def count(reduced: int, full: int) -> int:
    """``full`` under ``make stress``, else ``reduced``."""
    return full if FULL else reduced


# -- what a process holds -------------------------------------------------------------------------
def stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fds(pid: int) -> list[str]:
    """What each open fd of ``pid`` points to."""
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/{pid}/fd/{name}"))
    return found


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def zombies_of(parents: set[int]) -> list[int]:
    """Zombie children of any of ``parents``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = stat(int(entry))
            if info is not None and info[0] == "Z" and info[1] in parents:
                found.append(int(entry))
    return found


def titled(mark: str, prefix: str) -> list[int]:
    """Live processes of the test (``mark``) whose title starts with ``prefix``."""
    return [pid for pid, cmdline in leftover_processes(mark) if cmdline.startswith(prefix)]


@dataclass
class Figures:
    """One row of the table the full run prints."""

    name: str
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    fds: str = ""
    rss: str = ""
    notes: str = ""
    #: When the row began: :meth:`Resting.check` sets ``seconds`` from it when a test did not.
    started: float = field(default_factory=time.monotonic)

    def percentile(self, p: float) -> str:
        if not self.latencies:
            return "-"
        ordered = sorted(self.latencies)
        return f"{ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000:.1f}"


#: Every row recorded in this session, printed by conftest.py's terminal summary.
TABLE: list[Figures] = []


class Resting:
    """The master's resources at rest (fds, RSS), and the check that a test gave them back: the
    fd count returns to its resting value, RSS stays within :data:`RSS_SLACK_KB`, no child stays
    a zombie, and a client is still served."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.pid = master.proc.pid
        self.sock = master.project.root / ".zeus.sock"
        # A first command forks the spare and its guards: rest is after it.
        assert run_raw(self.sock, "hello", ["warm"]).stdout == b"hello warm\n"
        time.sleep(0.3)
        self.fds = len(fds(self.pid))
        self.rss = rss_kb(self.pid)
        self.peak = self.rss

    def sample(self) -> int:
        """The master's RSS now (and the peak so far)."""
        rss = rss_kb(self.pid)
        self.peak = max(self.peak, rss)
        return rss

    def check(self, figures: Figures | None = None) -> None:
        assert self.master.proc.poll() is None, f"the master died:\n{self.master.output[-3000:]}"
        served = run_raw(self.sock, "hello", ["still"])
        assert (served.status, served.stdout) == (0, b"hello still\n"), served

        def at_rest() -> list[str] | None:
            held = fds(self.pid)
            return held if len(held) <= self.fds else None

        try:
            now = wait_for(at_rest, SETTLE, what="the master's fds to come back to rest")
        except AssertionError:
            held = sorted(fds(self.pid))
            raise AssertionError(f"the master holds {len(held)} fds, {self.fds} at rest: "
                                 f"{held}") from None
        self.sample()
        assert self.peak - self.rss <= RSS_SLACK_KB, (
            f"the master grew from {self.rss} to {self.peak} kB")
        wait_for(lambda: not zombies_of({self.pid}), 2.0, what="the master to reap its children")
        if figures is not None:
            figures.seconds = figures.seconds or time.monotonic() - figures.started
            figures.fds = f"{self.fds}->{len(now)}"
            figures.rss = f"{self.rss // 1024}->{self.peak // 1024}"


# -- an in-process client: the Go client's order (tests/differential/harness.py) ----------------
@dataclass
class Result:
    pid: int | None
    status: int | None
    stdout: bytes
    stderr: bytes
    raw: bytes


def _send_fd(sock: socket.socket, fd: int) -> None:
    sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def run_raw(path: Path, command: str, args: list[str], stdin: bytes = b"",
            timeout: float = EXIT_TIMEOUT) -> Result:
    """Run ``command`` as the legacy Go client does with sockets for stdio, in its order; the
    master's answer ``<pid>\\0<status>\\0`` is parsed (None when missing). Never hangs beyond
    ``timeout``."""
    master = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pairs = [socket.socketpair() for _ in range(3)]
    (args_local, args_remote), (out_local, out_remote), (err_local, err_remote) = pairs
    try:
        master.settimeout(timeout)
        _connect(master, path, timeout)
        master.sendall(f"T:{len(args)}:{os.getpid()}:{command}".encode() + b"\0")
        _send_fd(master, args_remote.fileno())
        args_remote.close()
        with contextlib.suppress(OSError):
            args_local.sendall(b"".join(a.encode() + b"\0" for a in args))
        args_local.close()
        for remote in (out_remote, err_remote):
            _send_fd(master, remote.fileno())
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


@contextlib.contextmanager
def connections(path: Path, n: int) -> Iterator[list[socket.socket]]:
    """``n`` connections to the master, closed on exit."""
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            opened.append(sock)
            sock.settimeout(5.0)
            _connect(sock, path)
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _connect(sock: socket.socket, path: Path, timeout: float = 5.0) -> None:
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


def dropped(sock: socket.socket, timeout: float) -> bool:
    """True when the master closes ``sock`` within ``timeout`` (EOF or reset); what it says
    before is read and ignored."""
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                continue
            try:
                if not sock.recv(65536):
                    return True
            except BlockingIOError:
                continue
            except OSError:
                return True
    return False
