"""The stress suite's machinery: the size knob, the master's resources at rest (:class:`Resting`),
raw connections, and the figures the full run prints. Processes, the leak check and the legacy
client come from tests/harness/.

``ZEUSPY_STRESS=full`` (``make stress``) runs every test at its full count; ``reduced`` (the
default, part of ``make test``) runs the same tests with small counts, under a minute in all.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness.legacy_client import connect, run_raw
from tests.harness.master import Master
from tests.harness.processes import children_of, fd_count, fd_targets, memory_kb, proc_state
from tests.harness.waits import wait_for

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


def zombies_of(parents: set[int]) -> list[int]:
    """Zombie children of any of ``parents``."""
    return [pid for parent in parents for pid in children_of(parent) if proc_state(pid) == "Z"]


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
        self.fds = fd_count(self.pid)
        self.rss = memory_kb(self.pid)
        self.peak = self.rss

    def sample(self) -> int:
        """The master's RSS now (and the peak so far)."""
        rss = memory_kb(self.pid)
        self.peak = max(self.peak, rss)
        return rss

    def check(self, figures: Figures | None = None) -> None:
        assert self.master.proc.poll() is None, f"the master died:\n{self.master.output[-3000:]}"
        served = run_raw(self.sock, "hello", ["still"])
        assert (served.status, served.stdout) == (0, b"hello still\n"), served

        def at_rest() -> list[str] | None:
            held = fd_targets(self.pid)
            return held if len(held) <= self.fds else None

        try:
            now = wait_for(at_rest, SETTLE, what="the master's fds to come back to rest")
        except AssertionError:
            held = sorted(fd_targets(self.pid))
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


@contextlib.contextmanager
def connections(path: Path, n: int) -> Iterator[list[socket.socket]]:
    """``n`` connections to the master, closed on exit."""
    opened: list[socket.socket] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            opened.append(sock)
            sock.settimeout(5.0)
            connect(sock, path)
        yield opened
    finally:
        for sock in opened:
            sock.close()


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
