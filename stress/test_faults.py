"""Fault injection: kill -9 and SIGSTOP of every role (master, phase, spare, command, client).
A death is seen within :data:`DEATH_SEEN`, what it took with it is cleaned up, a stopped process
only delays what waits on it, and the next command runs; nothing is left running, no zombie
stays, a client's terminal gets its modes back."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.harness.legacy_client import Result, run_raw
from tests.harness.master import Master
from tests.harness.processes import is_dead, processes_in, titled
from tests.harness.project import ZEUS, Project
from tests.harness.waits import wait_for

from stress.support import DEATH_SEEN, FAST, TABLE, Figures, Resting, count, zombies_of

#: How long a SIGSTOP lasts.
STOPPED_FOR = 1.0
#: After SIGCONT, what waited on the stopped process finishes within this.
RESUMED_WITHIN = 5.0


def _timed_gone(pids: list[int], timeout: float, what: str) -> float:
    started = time.monotonic()
    wait_for(lambda: all(is_dead(pid) for pid in pids), timeout, 0.01, what=what)
    return time.monotonic() - started


class Client:
    """A real ``zeus`` client in a thread-free Popen, on pipes or on a fresh PTY."""

    def __init__(self, project: Project, *args: str, terminal: bool = False) -> None:
        self.terminal = terminal
        self.pty_master = self.pty_slave = -1
        if terminal:
            self.pty_master, self.pty_slave = pty.openpty()
            self.modes = termios.tcgetattr(self.pty_slave)
            self.proc = subprocess.Popen([ZEUS, *args], cwd=project.root, env=project.env(),
                                         stdin=self.pty_slave, stdout=self.pty_slave,
                                         stderr=self.pty_slave, start_new_session=True)
        else:
            self.proc = subprocess.Popen([ZEUS, *args], cwd=project.root, env=project.env(),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self.seen = b""

    def wait_output(self, needle: bytes, timeout: float = 10.0) -> bytes:
        """Read until ``needle`` shows (PTY: from the terminal; pipes: stdout)."""
        fd = self.pty_master if self.terminal else self.proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {needle!r}; got {self.seen!r}"
            if select.select([fd], [], [], left)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                assert chunk, f"EOF before {needle!r}; got {self.seen!r}"
                self.seen += chunk
        return self.seen

    def command_pid(self) -> int:
        """The pid the ``sleep`` command printed (``sleeping PID``)."""
        text = self.wait_output(b"sleeping ").split(b"sleeping ", 1)[1]
        while not text.split(b"\n", 1)[0].strip().isdigit() or b"\n" not in text:
            text = self.wait_output(b"\n").split(b"sleeping ", 1)[1]
        return int(text.split(b"\n", 1)[0].strip())

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.terminal:
                self.check_modes()

    def check_modes(self) -> None:
        assert termios.tcgetattr(self.pty_slave) == self.modes, "terminal modes not restored"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for fd in (self.pty_master, self.pty_slave):
            if fd >= 0:
                os.close(fd)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextlib.contextmanager
def client(project: Project, *args: str, terminal: bool = False) -> Iterator[Client]:
    running = Client(project, *args, terminal=terminal)
    try:
        yield running
    finally:
        running.close()


def _in_thread(fn: object, *args: object) -> tuple[threading.Thread, list[Result]]:
    out: list[Result] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)  # type: ignore[operator]
    thread.start()
    return thread, out


# -- the master -------------------------------------------------------------------------------
@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "pty"])
def test_kill_master(project: Project, terminal: bool) -> None:
    """kill -9 of the master: its phases, spare, guards and running command go within
    DEATH_SEEN; the client ends (its terminal restored); a new master starts in the project."""
    figures = Figures(f"fault: kill -9 master ({'pty' if terminal else 'pipes'})")
    rounds = count(1, 3)
    for _ in range(rounds):
        master = Master(project, FAST)
        try:
            master.wait_ready("boot", "app")
            with client(project, "sleep", "30", terminal=terminal) as running:
                command = running.command_pid()
                family = [pid for pid, _ in _marked(project) if pid != running.proc.pid]
                master.proc.kill()
                took = _timed_gone(family, DEATH_SEEN + 1.0, "the master's processes to go")
                figures.latencies.append(took)
                assert is_dead(command)
                running.wait(DEATH_SEEN + 1.0)
        finally:
            master.stop()
    again = Master(project, FAST)
    try:
        again.wait_ready("boot", "app")
        assert project.run("hello", "again").stdout == b"hello again\n"
    finally:
        assert again.stop() == 0
    figures.count = rounds
    figures.seconds = time.monotonic() - figures.started
    figures.notes = "latency: kill -> every process of the tree gone"
    TABLE.append(figures)


def _marked(project: Project) -> list[tuple[int, str]]:
    return processes_in(mark=project.mark)


def test_stop_master(project: Project, resting: Resting) -> None:
    """SIGSTOP of the master: a client waits, and is served once the master continues."""
    figures = Figures("fault: SIGSTOP master", count=count(1, 5))
    for _ in range(figures.count):
        os.kill(resting.pid, signal.SIGSTOP)
        try:
            thread, out = _in_thread(run_raw, resting.sock, "hello", ["later"])
            time.sleep(STOPPED_FOR)
        finally:
            os.kill(resting.pid, signal.SIGCONT)
        started = time.monotonic()
        thread.join(RESUMED_WITHIN)
        figures.latencies.append(time.monotonic() - started)
        assert out and (out[0].status, out[0].stdout) == (0, b"hello later\n"), out
    resting.check(figures)
    TABLE.append(figures)


# -- a phase ----------------------------------------------------------------------------------
def test_kill_phase(project: Project, master: Master, resting: Resting) -> None:
    """kill -9 of a phase: the master sees it within DEATH_SEEN, the phase's spare and guards
    go, the phase boots again and the next command runs."""
    figures = Figures("fault: kill -9 phase", count=count(2, 10))
    for _ in range(figures.count):
        app = master.phase_pid("app")
        spares = titled(project.mark, "zeus command: (ready)") + titled(project.mark, "zeus guard")
        left_ready = project.log.count("phase app: ready ->")
        os.kill(app, signal.SIGKILL)
        started = time.monotonic()

        def seen(app: int = app, before: int = left_ready) -> bool:
            log = project.log
            return f"(pid {app}) died" in log or log.count("phase app: ready ->") > before

        wait_for(seen, DEATH_SEEN, 0.01, what="the master to see the phase die")
        figures.latencies.append(time.monotonic() - started)
        _timed_gone(spares, DEATH_SEEN + 1.0, "the dead phase's spare and guards to go")

        def rebooted(app: int = app) -> bool:
            return master.phase_pid("app") != app

        wait_for(rebooted, what="app to boot again")
        result = run_raw(resting.sock, "hello", ["after"])
        assert (result.status, result.stdout) == (0, b"hello after\n"), result
    figures.notes = "latency: kill -> the master logs the death"
    resting.check(figures)
    TABLE.append(figures)


def test_stop_phase(project: Project, master: Master, resting: Resting) -> None:
    """SIGSTOP of a phase: a command waits at most until it continues."""
    figures = Figures("fault: SIGSTOP phase", count=count(1, 5))
    for _ in range(figures.count):
        app = master.phase_pid("app")
        os.kill(app, signal.SIGSTOP)
        try:
            thread, out = _in_thread(run_raw, resting.sock, "hello", ["x"])
            time.sleep(STOPPED_FOR)
        finally:
            os.kill(app, signal.SIGCONT)
        started = time.monotonic()
        thread.join(RESUMED_WITHIN)
        figures.latencies.append(time.monotonic() - started)
        assert out and (out[0].status, out[0].stdout) == (0, b"hello x\n"), out
    resting.check(figures)
    TABLE.append(figures)


# -- the spare (a command forked in advance) and its guards -------------------------------------
def _signal_one(project: Project, role: str, signum: int) -> int:
    """Send ``signum`` to a process titled ``role``; its pid. One may be gone by the time it is
    signalled (the phase replaces its spare, with its guards, when it imports a module a
    command taught it): then the next one is."""
    def signalled() -> int | None:
        for pid in titled(project.mark, role):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                continue
            return pid
        return None

    return int(wait_for(signalled, what=role))


@pytest.mark.parametrize("role", ["zeus command: (ready)", "zeus guard"])
def test_kill_spare(project: Project, master: Master, resting: Resting, role: str) -> None:
    name = "spare" if role.startswith("zeus command") else "guard"
    figures = Figures(f"fault: kill -9 {name}", count=count(2, 10))
    for _ in range(figures.count):
        victim = _signal_one(project, role, signal.SIGKILL)
        started = time.monotonic()
        # Dead before the request (a request racing the kill itself may find a spare that has
        # taken it and then dies: the request is then placed again).
        _timed_gone([victim], DEATH_SEEN, "the killed process to die")
        result = run_raw(resting.sock, "hello", ["next"])
        figures.latencies.append(time.monotonic() - started)
        assert (result.status, result.stdout) == (0, b"hello next\n"), result
    resting.check(figures)
    TABLE.append(figures)


@pytest.mark.parametrize("role", ["zeus command: (ready)", "zeus guard"])
def test_stop_spare(project: Project, master: Master, resting: Resting, role: str) -> None:
    name = "spare" if role.startswith("zeus command") else "guard"
    figures = Figures(f"fault: SIGSTOP {name}", count=count(1, 5))
    for _ in range(figures.count):
        spare = _signal_one(project, role, signal.SIGSTOP)
        try:
            thread, out = _in_thread(run_raw, resting.sock, "hello", ["x"])
            time.sleep(STOPPED_FOR)
        finally:
            with contextlib.suppress(ProcessLookupError):  # a used spare's guards are killed
                os.kill(spare, signal.SIGCONT)
        started = time.monotonic()
        thread.join(RESUMED_WITHIN)
        figures.latencies.append(time.monotonic() - started)
        assert out and (out[0].status, out[0].stdout) == (0, b"hello x\n"), out
    resting.check(figures)
    TABLE.append(figures)


# -- a command --------------------------------------------------------------------------------
@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "pty"])
def test_kill_command(project: Project, master: Master, resting: Resting, terminal: bool) -> None:
    """kill -9 of a command: its client ends within DEATH_SEEN, dying of the same signal, and a
    client on a terminal gives the terminal its modes back."""
    figures = Figures(f"fault: kill -9 command ({'pty' if terminal else 'pipes'})",
                      count=count(2, 10))
    for _ in range(figures.count):
        with client(project, "sleep", "30", terminal=terminal) as running:
            command = running.command_pid()
            os.kill(command, signal.SIGKILL)
            started = time.monotonic()
            code = running.wait(DEATH_SEEN)
            figures.latencies.append(time.monotonic() - started)
            assert code in (-signal.SIGKILL, 128 + signal.SIGKILL), code
    resting.check(figures)
    TABLE.append(figures)


def test_stop_command(project: Project, master: Master, resting: Resting) -> None:
    """SIGSTOP of a command: once it continues (the client too, if it stopped with it, as it
    does for ^Z), it finishes with its output and status."""
    figures = Figures("fault: SIGSTOP command", count=count(1, 5))
    for _ in range(figures.count):
        with client(project, "sleep", "0.5") as running:
            command = running.command_pid()
            os.kill(command, signal.SIGSTOP)
            time.sleep(STOPPED_FOR)
            os.kill(command, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                os.kill(running.proc.pid, signal.SIGCONT)
            started = time.monotonic()
            assert running.wait(RESUMED_WITHIN) == 0
            figures.latencies.append(time.monotonic() - started)
    resting.check(figures)
    TABLE.append(figures)


# -- a client ---------------------------------------------------------------------------------
@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "pty"])
def test_kill_client(project: Project, master: Master, resting: Resting, terminal: bool) -> None:
    """kill -9 of a client: its command goes within DEATH_SEEN."""
    figures = Figures(f"fault: kill -9 client ({'pty' if terminal else 'pipes'})",
                      count=count(2, 10))
    for _ in range(figures.count):
        with client(project, "sleep", "30", terminal=terminal) as running:
            command = running.command_pid()
            running.proc.kill()
            running.proc.wait()
            figures.latencies.append(_timed_gone([command], DEATH_SEEN,
                                                 "the command of a killed client to go"))
    resting.check(figures)
    TABLE.append(figures)


def test_stop_client(project: Project, master: Master, resting: Resting,
                     tmp_path: Path) -> None:
    """SIGSTOP of a client while its command writes: the command waits on the full pipe, and
    every byte arrives once the client continues."""
    figures = Figures("fault: SIGSTOP client", count=count(1, 5))
    payload = os.urandom(count(1, 4) << 20)
    source = tmp_path / "payload"
    source.write_bytes(payload)
    for _ in range(figures.count):
        with open(source, "rb") as stdin:
            proc = subprocess.Popen([ZEUS, "cat"], cwd=project.root, env=project.env(),
                                    stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.3)
            proc.send_signal(signal.SIGSTOP)
            time.sleep(STOPPED_FOR)
            proc.send_signal(signal.SIGCONT)
            started = time.monotonic()
            out, err = proc.communicate(timeout=RESUMED_WITHIN + 5)
            figures.latencies.append(time.monotonic() - started)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert out == payload, f"{len(out)} of {len(payload)} bytes arrived"
    resting.check(figures)
    TABLE.append(figures)


def test_no_zombies_after_faults(project: Project, master: Master, resting: Resting) -> None:
    """Commands that die in every way leave no zombie behind in the master or the phases."""
    phases = {master.phase_pid("boot"), master.phase_pid("app"), resting.pid}
    for _ in range(count(3, 20)):
        with client(project, "sleep", "30") as running:
            os.kill(running.command_pid(), signal.SIGKILL)
            running.wait(DEATH_SEEN)
        result = run_raw(resting.sock, "exitwith", ["3"])
        assert result.status == 3, result
    wait_for(lambda: not zombies_of(phases), 2.0, what="no zombies in the tree")
    resting.check()
