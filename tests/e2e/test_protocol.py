"""The master on the wire: legacy shims and clients, hostile connections, other users."""

from __future__ import annotations

import contextlib
import os
import random
import re
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.legacy_client import Result, run_raw, send_fds
from tests.harness.master import Master, last_state, running_master, transitions, wait_phases
from tests.harness.processes import alive, fd_count, project_leftovers, project_pids
from tests.harness.project import Project
from tests.harness.waits import EXIT_TIMEOUT, wait_for
from zeuspy.master.request import COMMAND_START_TIMEOUT

LEGACY_SHIM = Path(__file__).with_name("legacy_shim.py")
LEGACY_TREE = {"boot": {"app": {"hello": ["hi"], "exitwith": None, "echoargs": None,
                                "both": None, "cat": None},
                        "broken": {"doomed": None}}}
VIOLATION = "legacy shim: protocol violation"
NOBODY = 65534


@pytest.fixture(autouse=True)
def _no_strays(project: Project) -> Iterator[None]:
    yield
    project_leftovers(project)


@pytest.fixture
def master(project: Project) -> Iterator[Master]:
    """A running master for the default plan, boot and app ready."""
    with running_master(project.write(), "boot", "app") as running:
        yield running


# -- a legacy client: exactly protocol.md's "Client <-> master <-> command", no extensions -----


def legacy_client(path: Path, command: str, args: list[str], stdin: bytes = b"") -> Result:
    """Run ``command`` the way the original Go client does with pipes (no terminal), in its
    order (tests/harness/legacy_client.py); the master's answer checked to be exactly
    ``<pid>\\0<status>\\0``."""
    return run_raw(path, command, args, stdin).checked()


def sock_path(project: Project) -> Path:
    return project.root / ".zeus.sock"


def legacy_project(project: Project, *options: str) -> Project:
    command = " ".join(shlex.quote(part) for part in
                       (sys.executable, str(LEGACY_SHIM), "zeus_plan.py", *options))
    return project.write(tree=LEGACY_TREE, extra={"command": command})


# -- 5. legacy shim and legacy client ----------------------------------------------------------


def test_legacy_shim_does_not_import_zeuspy() -> None:
    source = LEGACY_SHIM.read_text()
    assert not re.search(r"^\s*(import|from)\s+zeuspy", source, re.M)


def test_legacy_shim_boots_and_runs_commands(project: Project) -> None:
    legacy_project(project)
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        hello = project.run("hello", "a", "b")
        assert (hello.returncode, hello.stdout) == (0, b"legacy hello a b\n"), hello.stderr
        alias = project.run("hi")
        assert (alias.returncode, alias.stdout) == (0, b"legacy hello\n"), alias.stderr
        assert project.run("exitwith", "42").returncode == 42
        both = project.run("both")
        assert (both.returncode, both.stdout, both.stderr) == (3, b"out\n", b"err\n")
        cat = project.run("cat", input=b"piped in\n")
        assert (cat.returncode, cat.stdout) == (0, b"piped in\n"), cat.stderr
        echo = project.run("echoargs", "x y", "")
        assert echo.stdout == b"'x y'\n''\n", echo.stderr
        assert "phase app registered" in project.log
        assert VIOLATION not in project.log, project.log
        assert master.proc.poll() is None
    finally:
        assert master.stop() == 0


def test_legacy_shim_crashed_phase_shows_its_error(project: Project) -> None:
    legacy_project(project)
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        wait_for(lambda: last_state(project, "broken") == "crashed", timeout=10.0,
                 what="the broken phase to crash")
        result = project.run("doomed")
        shown = (result.stdout + result.stderr).decode()
        assert result.returncode == 1, shown
        assert "RuntimeError: legacy phase broken on purpose" in shown, shown
        assert "Traceback" in shown, shown
        legacy = legacy_client(sock_path(project), "doomed", [])
        assert (legacy.pid, legacy.status) == (0, 1)
        assert b"legacy phase broken on purpose" in legacy.stdout + legacy.stderr
        hello = project.run("hello")
        assert hello.returncode == 0, hello.stderr
        assert master.proc.poll() is None
    finally:
        assert master.stop() == 0


def test_legacy_shim_restart_and_master_death(project: Project) -> None:
    legacy_project(project)
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        old = {name: master.phase_pid(name) for name in ("boot", "app")}
        result = project.run("restart")
        assert result.returncode == 0, result.stderr
        wait_for(lambda: transitions(project, "app", "ready") >= 2
                 and master.phase_pid("app") != old["app"], timeout=10.0,
                 what="the legacy phases to boot again")
        assert master.phase_pid("boot") != old["boot"]
        hello = project.run("hello", "again")
        assert (hello.returncode, hello.stdout) == (0, b"legacy hello again\n"), hello.stderr
        # SIGKILL the master: legacy phases see EOF on their sockets and leave.
        master.proc.kill()
        start = time.monotonic()
        master.proc.wait(EXIT_TIMEOUT)
        wait_for(lambda: not project_pids(project), timeout=5.0,
                 what="legacy phases to exit after the master died")
        assert time.monotonic() - start < 2.0
    finally:
        master.stop()


def test_a_phase_that_ends_before_forking_the_runner_is_not_waited_for(
        project: Project) -> None:
    """The app phase hands the master its runner's socket and is restarted before it forks the
    runner: nobody will write on that socket, and a datagram socket has no EOF. The master
    does not wait out COMMAND_START_TIMEOUT: STATUS_GRACE after the phase is gone, the client
    hears that nothing ran (a shim that does not speak zeuspy's extensions is not known to run
    nothing when its registration fails, so the request is not placed again); the restarted
    phases run the next command."""
    legacy_project(project, "--end-before-runner")
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        old = master.phase_pid("app")
        (project.root / "end-before-runner").write_text("")
        started = time.monotonic()
        ended = project.run("hello", "once", timeout=COMMAND_START_TIMEOUT + 5)
        waited = time.monotonic() - started
        assert ended.returncode == 1, ended
        assert b"nothing ran: run it again" in ended.stderr, ended.stderr
        assert not (project.root / "end-before-runner").exists()
        assert waited < COMMAND_START_TIMEOUT, waited
        wait_for(lambda: transitions(project, "app", "ready") >= 2
                 and master.phase_pid("app") != old, timeout=10.0,
                 what="the legacy phases to boot again")
        hello = project.run("hello", "again")
        assert (hello.returncode, hello.stdout) == (0, b"legacy hello again\n"), hello.stderr
    finally:
        assert master.stop() == 0


def test_legacy_client_against_legacy_shim(project: Project) -> None:
    legacy_project(project)
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        result = legacy_client(sock_path(project), "hello", ["one", "two"])
        assert result.pid > 0
        assert result.status == 0
        assert result.stdout == b"legacy hello one two\n"
        failing = legacy_client(sock_path(project), "exitwith", ["9"])
        assert (failing.status, failing.pid > 0) == (9, True)
        assert VIOLATION not in project.log, project.log
        # The master keeps no fd of finished legacy commands.
        time.sleep(0.2)
        before = fd_count(master.proc.pid)
        for i in range(10):
            assert legacy_client(sock_path(project), "hello", [str(i)]).status == 0
        time.sleep(0.2)
        assert fd_count(master.proc.pid) == before
    finally:
        assert master.stop() == 0


def test_legacy_client_against_zeuspy_shim(master: Master, project: Project) -> None:
    result = legacy_client(sock_path(project), "hello", ["legacy", "client"])
    assert result.pid > 0
    assert result.status == 0
    assert result.stdout == b"hello legacy client\n"
    assert result.stderr == b""

    status = legacy_client(sock_path(project), "exitwith", ["5"])
    assert status.pid > 0 and status.status == 5

    both = legacy_client(sock_path(project), "both", [])
    assert (both.status, both.stdout, both.stderr) == (0, b"out\n", b"err\n")

    cat = legacy_client(sock_path(project), "cat", [], stdin=b"abc")
    assert cat.stdout == b"abc" and cat.status == 0

    empty = legacy_client(sock_path(project), "echoargs", ["a", ""])
    assert empty.stdout == b"'a'\n''\n"


def test_legacy_client_unknown_command_gets_pid_0(master: Master, project: Project) -> None:
    result = legacy_client(sock_path(project), "nope", [])
    assert result.pid == 0
    assert result.status != 0
    assert b'Could not find command "nope".' in result.stdout + result.stderr


def test_unknown_identifier_in_registration_does_not_crash_master(project: Project) -> None:
    legacy_project(project, "--bogus-registration")
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        found = wait_for(lambda: re.search(r"\(pid (\d+)\) registered as unknown phase "
                                           r"'no-such-phase'", project.log),
                         timeout=5.0, what="the bogus registration to be logged")
        bogus = int(found[1])
        time.sleep(0.2)
        assert master.proc.poll() is None, master.output
        hello = project.run("hello")
        assert (hello.returncode, hello.stdout) == (0, b"legacy hello\n"), hello.stderr
        # the bogus process was dropped (its socket closed), so it exits on its own
        wait_for(lambda: not alive(bogus), timeout=5.0, what="the bogus phase to be dropped")
    finally:
        assert master.stop() == 0


# -- 6. unknown command ------------------------------------------------------------------------


def test_unknown_command_message_and_status(master: Master, project: Project) -> None:
    result = project.run("x")
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).decode().splitlines()
    assert any(line.startswith('Could not find command "x".') for line in lines), lines


# -- 4. robustness -----------------------------------------------------------------------------


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    sock.connect(str(path))
    return sock


def bad_connection(path: Path, kind: int, rng: random.Random) -> None:
    sock = _connect(path)
    try:
        with contextlib.suppress(OSError):
            if kind == 0:  # random bytes
                sock.sendall(rng.randbytes(rng.randint(1, 4096)))
            elif kind == 1:  # a truncated handshake
                sock.sendall(b"T:")
            elif kind == 2:  # a whole T: message, then vanish
                sock.sendall(f"T:0:{os.getpid()}:hello\0".encode())
            elif kind == 3:  # T: and five fds in one fd message
                sock.sendall(f"T:0:{os.getpid()}:hello\0".encode())
                fds = [os.open(os.devnull, os.O_RDWR) for _ in range(5)]
                try:
                    send_fds(sock, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            elif kind == 4:  # a huge message without NUL
                sock.sendall(b"T" * (1 << 20) + b"x" * 65536)
            elif kind == 5:  # T: and one fd, then vanish
                sock.sendall(f"T:1:{os.getpid()}:hello\0".encode())
                fd = os.open(os.devnull, os.O_RDWR)
                try:
                    send_fds(sock, [fd])
                finally:
                    os.close(fd)
            elif kind == 6:  # twelve fds in one message: more than any reader expects
                sock.sendall(f"T:0:{os.getpid()}:hello\0".encode())
                fds = [os.open(os.devnull, os.O_RDWR) for _ in range(12)]
                try:
                    send_fds(sock, fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            # kind 7: connect and close
    finally:
        sock.close()


def stable_fd_count(pid: int) -> int:
    """The master's fd count once it stopped moving (a finished command's sockets closing, the
    file watcher reopening its watches after phases reported files)."""
    counts = [fd_count(pid)]

    def steady() -> bool:
        time.sleep(0.2)
        counts.append(fd_count(pid))
        return counts[-1] == counts[-2]

    wait_for(steady, timeout=8.0, interval=0.0, what="the master's fd count to settle")
    return counts[-1]


def test_master_survives_bad_connections_without_leaking_fds(master: Master,
                                                             project: Project) -> None:
    pid = master.proc.pid
    assert project.run("hello").returncode == 0
    before = stable_fd_count(pid)
    rng = random.Random(1234)
    kinds = 8
    for i in range(200):
        bad_connection(sock_path(project), i % kinds, rng)
    assert master.proc.poll() is None, master.output
    counts: list[int] = []

    def settled() -> bool:
        counts.append(fd_count(pid))
        return counts[-1] == before

    with contextlib.suppress(AssertionError):
        wait_for(settled, timeout=8.0, interval=0.1, what="the master's fds to settle")
    assert counts[-1] == before, (f"master fds: {before} before, {counts[-1]} after "
                                  f"(samples {counts[:3]}...{counts[-3:]})")
    hello = project.run("hello", "after")
    assert (hello.returncode, hello.stdout) == (0, b"hello after\n"), hello.stderr
    # The master closes the command's sockets just after the client got its status.
    assert stable_fd_count(pid) == before
    assert master.proc.poll() is None


def test_idle_connections_do_not_block_others(master: Master, project: Project) -> None:
    pid = master.proc.pid
    assert project.run("hello").returncode == 0
    time.sleep(0.2)
    before = fd_count(pid)
    idle = [_connect(sock_path(project)) for _ in range(50)]
    half = [_connect(sock_path(project)) for _ in range(10)]
    try:
        for sock in half:
            sock.sendall(b"T:0:1:hel")  # a handshake that never ends
        started_at = time.monotonic()
        hello = project.run("hello", "meanwhile")
        assert (hello.returncode, hello.stdout) == (0, b"hello meanwhile\n"), hello.stderr
        assert time.monotonic() - started_at < 3.0, "idle clients slowed a real one down"
    finally:
        for sock in idle + half:
            sock.close()
    wait_for(lambda: fd_count(pid) <= before, timeout=8.0, interval=0.1,
             what="the master's fds to settle")
    assert fd_count(pid) == before
    assert master.proc.poll() is None


# -- 3. security -------------------------------------------------------------------------------

def _connect_as(uid: int, cwd: Path, message: bytes, argument: str, wait: float) -> int:
    """Fork a child that becomes ``uid``, connects to ``cwd/.zeus.sock`` (a relative path: no
    search permission is needed on the folders above), sends ``message`` and three fds and reads
    the answer. Its exit status: 0 the master closed without a byte, 1 it answered, 2 no answer
    within ``wait``, 3 connect failed."""
    pid = os.fork()
    if pid == 0:
        code = 4
        try:
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(wait)
            try:
                sock.connect(".zeus.sock")
            except OSError:
                os._exit(3)
            pairs = [socket.socketpair() for _ in range(3)]
            try:
                sock.sendall(message)
                for _local, remote in pairs:
                    send_fds(sock, [remote.fileno()])
                pairs[0][0].sendall(argument.encode() + b"\0")
                pairs[0][0].close()
                answer = sock.recv(100)
                code = 1 if answer else 0
            except (ConnectionResetError, BrokenPipeError):
                code = 0
            except TimeoutError:
                code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_connection_from_another_uid_is_refused(project: Project) -> None:
    project.write()
    project.root.chmod(0o755)
    target = project.root / "touched-by-nobody"
    master = Master(project)
    try:
        wait_phases(master, "boot", "app")
        os.chmod(sock_path(project), 0o666)
        message = f"T:1:{os.getpid()}:make_file\0".encode()
        code = _connect_as(NOBODY, project.root, message, str(target), wait=5.0)
        assert code == 0, f"expected the master to close the connection (child status {code})"
        wait_for(lambda: "refused a connection from uid 65534" in project.log, timeout=3.0,
                 what="the refusal in the log")
        time.sleep(0.3)
        assert not target.exists(), "the command of another user ran"
        # The master is unaffected and still serves its owner.
        hello = project.run("hello", "owner")
        assert (hello.returncode, hello.stdout) == (0, b"hello owner\n"), hello.stderr
        assert project.run("make_file", str(target)).returncode == 0
        assert target.exists()
    finally:
        assert master.stop() == 0
