"""Bounds (docs/architecture.md, Trust): no flood, fd exhaustion or stuck boot hangs, bloats or
silences the master. Real masters; every wait and every flood is bounded in time and count."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.legacy_client import send_fds
from tests.harness.master import Master, running_master
from tests.harness.processes import alive, cpu_seconds, memory_kb, project_leftovers
from tests.harness.project import ZEUS, Project
from tests.harness.waits import wait_for

#: How long one round of flooding may go on before the master must have dropped it (the
#: master drops a flood within a few of its reads: milliseconds; this is slack for a loaded
#: machine, and what the test measured before the bounds, when nothing was ever dropped).
FLOOD_ROUND_LIMIT = 3.0
#: How long the flooders keep at it while another client runs commands.
FLOOD_SECONDS = 3.0
#: Between two flooders that start a command (each starts a process).
COMMAND_ROUND_GAP = 0.1
#: A command of another client must finish within this during the flood (measured: a median
#: of 30-160 ms and at most 0.7 s, on 2 cores shared with other test runs, against flooders
#: that reconnect 300-600 times a second; before the bounds, 1.3 s after 2 s of flood, and
#: growing, as the master spent its time parsing what one flooder queued).
SERVED_WITHIN = 2.0
#: The master's peak RSS may grow by at most this during the flood (it grew past 1 GB before
#: the bounds; a dropped connection's queue is at most a few MiB).
RSS_GROWTH_LIMIT_KB = 48 * 1024
#: CPU the master may use over EXHAUSTION_WINDOW at the fd limit (it used 4.8 s in 5 s, spinning
#: on accept, before the back-off).
EXHAUSTION_WINDOW = 2.0
EXHAUSTION_CPU_LIMIT = 0.25
CHUNK = 65536
FLOODS = {
    "messages": b"x\0" * (CHUNK // 2),  # an endless stream of (tiny) messages
    "no NUL": b"x" * CHUNK,             # one endless message
}

#: A command that writes nothing (one that could not write to a flooder that left would end by
#: itself, before the master stops it) and runs until stopped (bounded).
HOLD = """
    def hold(self, argv):
        time.sleep(30)
"""


@pytest.fixture(autouse=True)
def _no_strays(project: Project) -> Iterator[None]:
    yield
    project_leftovers(project)


def sock_path(project: Project) -> Path:
    return project.root / ".zeus.sock"


class RawCommand:
    """A legacy client by hand: ``T:`` for ``command``, its three fds, and the pid answer; then
    whatever the test sends on the connection."""

    def __init__(self, project: Project, command: str, args: tuple[str, ...] = ()) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(str(sock_path(project)))
        args_local, args_remote = socket.socketpair()
        self.out, out_remote = socket.socketpair()
        self.err, err_remote = socket.socketpair()
        self.sock.sendall(f"T:{len(args)}:{os.getpid()}:{command}\0".encode())
        for remote in (args_remote, out_remote, err_remote):
            send_fds(self.sock, [remote.fileno()])
            remote.close()
        args_local.sendall(b"".join(a.encode() + b"\0" for a in args))
        args_local.close()
        answer = b""
        while b"\0" not in answer:
            chunk = self.sock.recv(64)
            assert chunk, f"the master closed the connection instead of answering: {answer!r}"
            answer += chunk
        self.pid = int(answer.split(b"\0")[0])
        assert self.pid > 0, f"{command} did not start: {answer!r}"

    def flood(self, chunk: bytes, limit: float) -> float:
        """Send ``chunk`` over and over until the master drops the connection; how long that
        took (the test fails after ``limit`` seconds)."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            try:
                self.sock.send(chunk)
            except TimeoutError:
                continue  # not read any more, not dropped either (yet)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
        raise AssertionError(f"the master did not drop a flooding client within {limit} s")

    def close(self) -> None:
        for sock in (self.sock, self.out, self.err):
            sock.close()


def raw_flood(project: Project, chunk: bytes, limit: float) -> float:
    """A client that never finishes its handshake (``T:`` and no fds), flooding instead; how
    long until the master dropped it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    try:
        sock.connect(str(sock_path(project)))
        sock.sendall(f"T:0:{os.getpid()}:hello\0".encode())
        start = time.monotonic()
        while time.monotonic() - start < limit:
            try:
                sock.send(chunk)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - start
        raise AssertionError(f"the master did not drop a flooding client within {limit} s")
    finally:
        sock.close()


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_flooding_client_is_dropped_and_others_are_served(project: Project, kind: str) -> None:
    """Two flooders for FLOOD_SECONDS: one runs a command and floods after the pid answer (its
    command must get SIGHUP), again every COMMAND_ROUND_GAP; one floods in its handshake, again
    as soon as it is dropped. Meanwhile another client runs commands, one after the other."""
    project.write(methods=HOLD)
    project.write({"boot": {"app": {"hello": None, "hold": None}}},
                  (project.root / "zeus_plan.py").read_text())
    with running_master(project, "boot", "app") as master:
        pid = master.proc.pid
        assert project.run("hello").returncode == 0
        rss_before = max(memory_kb(pid, "VmRSS"), memory_kb(pid, "VmHWM"))
        stop = threading.Event()
        commands: list[tuple[int, float]] = []  # (command pid, seconds until dropped)
        raw: list[float] = []
        errors: list[BaseException] = []

        def command_flooder() -> None:
            try:
                while not stop.is_set():
                    client = RawCommand(project, "hold")
                    try:
                        commands.append((client.pid, client.flood(FLOODS[kind],
                                                                  FLOOD_ROUND_LIMIT)))
                    finally:
                        client.close()
                    stop.wait(COMMAND_ROUND_GAP)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        def raw_flooder() -> None:
            try:
                while not stop.is_set():
                    raw.append(raw_flood(project, FLOODS[kind], FLOOD_ROUND_LIMIT))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=target, daemon=True)
                   for target in (command_flooder, raw_flooder)]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: (commands and raw) or errors, timeout=10.0,
                     what="the first flood rounds")
            served = []
            deadline = time.monotonic() + FLOOD_SECONDS
            while time.monotonic() < deadline and not errors:
                began = time.monotonic()
                hello = project.run("hello", "meanwhile", timeout=SERVED_WITHIN + 5)
                served.append(time.monotonic() - began)
                assert (hello.returncode, hello.stdout) == (0, b"hello meanwhile\n"), \
                    hello.stderr
        finally:
            stop.set()
            for thread in threads:
                thread.join(FLOOD_ROUND_LIMIT + 10)
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        rss_peak = memory_kb(pid, "VmHWM")
        dropped_after = [t for _, t in commands] + raw
        print(f"{kind}: {len(commands)} + {len(raw)} floods, each dropped within "
              f"{max(dropped_after) * 1000:.0f} ms; {len(served)} commands served meanwhile "
              f"in {sorted(served)[len(served) // 2] * 1000:.0f} ms (median), "
              f"{max(served) * 1000:.0f} ms at most; master RSS {rss_before} kB, peak "
              f"{rss_peak} kB")
        assert max(served) < SERVED_WITHIN, served
        assert rss_peak - rss_before < RSS_GROWTH_LIMIT_KB, (rss_before, rss_peak)
        # Dropping the connection is losing the client: each flooder's command got SIGHUP.
        flooded = {command_pid for command_pid, _ in commands}
        wait_for(lambda: not any(alive(command_pid) for command_pid in flooded),
                 timeout=10.0, what="the flooders' commands to end")
        log = project.log
        drops = re.findall(r"dropped the connection of client \(pid \d+\): .*", log)
        assert len(drops) == len(commands) + len(raw), (drops[:3], len(commands), len(raw))
        stopped = {int(found) for found in re.findall(
            r"client of hold \(pid (\d+)\) went away; stopping its command", log)}
        assert stopped == flooded, sorted(flooded - stopped)
        assert master.proc.poll() is None


def test_fd_exhaustion_backs_off_and_recovers(project: Project) -> None:
    with running_master(project.write(), "boot", "app") as master:
        pid = master.proc.pid
        assert project.run("hello").returncode == 0
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        open_fds = [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]
        headroom = 16  # fds above the highest open one: enough for a command once they are free
        limit = max(open_fds) + 1 + headroom
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
        # Free numbers below the limit: the headroom and any gaps among the open fds (a closed
        # one is taken first), so that the connections below surely exhaust them.
        free = limit - len(open_fds)
        idle: list[socket.socket] = []
        try:
            # Accepted connections take the master's free fds (each waits for its handshake,
            # up to 5 s); the rest wait in the listen backlog and make the listener readable
            # (fewer than the headroom: once the fds are free, no second episode starts).
            for _ in range(free + 4):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(5.0)
                sock.connect(str(sock_path(project)))
                idle.append(sock)
            line = "cannot accept connections"
            wait_for(lambda: line in project.log, timeout=3.0, what="the fd-exhaustion line")
            before = cpu_seconds(pid)
            time.sleep(EXHAUSTION_WINDOW)
            used = cpu_seconds(pid) - before
            print(f"master CPU at the fd limit: {used:.3f} s in {EXHAUSTION_WINDOW} s")
            assert used < EXHAUSTION_CPU_LIMIT, f"{used:.2f} s of CPU in {EXHAUSTION_WINDOW} s"
            assert project.log.count(line) == 1, project.log[-3000:]
        finally:
            for sock in idle:  # frees the master's fds (EOF on each accepted connection)
                sock.close()
        began = time.monotonic()
        hello = project.run("hello", "again")
        assert (hello.returncode, hello.stdout) == (0, b"hello again\n"), hello.stderr
        assert time.monotonic() - began < 5.0
        wait_for(lambda: "accepting connections again" in project.log, timeout=5.0,
                 what="the recovery line")
        assert project.log.count(line) == 1
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        assert master.proc.poll() is None


SLOW_BOOT = """
    def slowapp(self):
        # Boots until the test lets it (bounded: a stuck test must not hang).
        deadline = time.monotonic() + 30
        while not os.path.exists("release") and time.monotonic() < deadline:
            time.sleep(0.05)

    def greet(self, argv):
        print("greetings")
"""


def test_client_is_told_a_phase_is_still_booting(project: Project) -> None:
    project.write(methods=SLOW_BOOT)
    project.write({"boot": {"app": {"hello": None}, "slowapp": {"greet": None}}},
                  (project.root / "zeus_plan.py").read_text())
    master = Master(project)
    try:
        wait_for(lambda: "phase slowapp: unbooted -> booting" in project.log
                 or master.proc.poll() is not None, what="slowapp booting")
        client = subprocess.Popen([ZEUS, "greet"], cwd=project.root, env=project.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL)
        try:
            assert client.stderr is not None
            os.set_blocking(client.stderr.fileno(), False)
            seen = b""

            def still_booting() -> bool:
                nonlocal seen
                with contextlib.suppress(BlockingIOError, TypeError):
                    seen += client.stderr.read() or b""  # type: ignore[union-attr]
                return b"still booting after" in seen

            wait_for(still_booting, timeout=12.0, what="the still-booting note")
            (project.root / "release").touch()
            out, rest = client.communicate(timeout=10)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        stderr = (seen + rest).decode()
        assert client.returncode == 0, stderr
        assert out == b"greetings\n"
        lines = stderr.splitlines()
        assert lines[0] == "zeus: waiting for phase slowapp to boot...", stderr
        match = re.fullmatch(r"zeus: phase slowapp still booting after (\d+) s "
                             r"\(its output: \.zeus/master\.log\)", lines[1])
        assert match and 5 <= int(match[1]) <= 12, stderr
        assert len(lines) == 2, stderr
    finally:
        (project.root / "release").touch()
        master.stop()
