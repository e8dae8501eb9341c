"""The client in pipe mode (no terminal): output, statuses, arguments, stdin, signals, errors."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.harness.clients import client_master, job_client
from tests.harness.master import Master, running_master
from tests.harness.plans import BIG_BYTES
from tests.harness.processes import check_no_leftovers, is_dead, kill_quietly, proc_state
from tests.harness.project import ZEUS, Project
from tests.harness.waits import read_until, wait_for


class HoldingProxy:
    """A relay between one client and the master (the client finds it through ``ZEUSSOCK``) that
    passes everything, fds included, except that it holds the master's replies (the command's pid,
    then its status) until :meth:`release`. Makes "the client has not heard the pid yet" certain."""

    def __init__(self, path: str, master_path: str) -> None:
        import socket
        import threading

        self.path = path
        self.master_path = master_path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.listener.settimeout(10)
        self.released = threading.Event()
        self.stopped = threading.Event()
        self.held = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.stopped.set()
        self.released.set()
        self.thread.join(5)
        self.listener.close()

    def _run(self) -> None:
        import array
        import socket

        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.master_path)
        space = socket.CMSG_SPACE(4 * array.array("i").itemsize)
        try:
            while not self.stopped.is_set():
                if self.released.is_set() and self.held:
                    client.sendall(self.held)
                    self.held = b""
                ready, _, _ = select.select([client, upstream], [], [], 0.02)
                if client in ready:
                    data, ancillary, _, _ = client.recvmsg(65536, space)
                    fds: list[int] = []
                    for level, kind, payload in ancillary:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            usable = len(payload) - len(payload) % array.array("i").itemsize
                            fds.extend(array.array("i", payload[:usable]))
                    if not data and not fds:
                        upstream.shutdown(socket.SHUT_WR)
                        client = None  # type: ignore[assignment]
                        break
                    if fds:
                        upstream.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                   array.array("i", fds).tobytes())])
                        for fd in fds:
                            os.close(fd)
                    else:
                        upstream.sendall(data)
                if upstream in ready:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    self.held += data
            # The master is done (or the client left): pass on what is held once released.
            while client is not None and not self.stopped.is_set():
                if self.released.wait(0.05):
                    if self.held:
                        client.sendall(self.held)
                    break
        except OSError:
            pass
        finally:
            if client is not None:
                client.close()
            upstream.close()



@pytest.fixture(autouse=True)
def no_leftovers(project: Project) -> Iterator[None]:
    yield
    check_no_leftovers(project.root)


def popen(project: Project, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([ZEUS, *args], cwd=project.root, env=project.env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(proc: subprocess.Popen[bytes], timeout: float = 5) -> tuple[bytes, bytes]:
    """Collect what is left; kill the client if it does not finish in time (the test then fails)."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise AssertionError(f"client did not exit within {timeout} s") from None


# -- output and exit status -----------------------------------------------------------------------

def test_output_and_statuses(project: Project) -> None:
    with client_master(project):
        r = project.run("hello", "world")
        assert (r.returncode, r.stdout, r.stderr) == (0, b"hello world\n", b"")
        r = project.run("hi", "alias")  # an alias runs the same command
        assert (r.returncode, r.stdout) == (0, b"hello alias\n")
        for n in (0, 1, 3, 42, 255):
            assert project.run("exit_with", str(n)).returncode == n
        assert project.run("exit_with", "256").returncode == 0  # as the interpreter: & 0xFF
        r = project.run("returns_none")
        assert (r.returncode, r.stdout) == (0, b"nothing to return\n")


def test_system_exit_variants(project: Project) -> None:
    with client_master(project):
        r = project.run("exit_code", "9")
        assert (r.returncode, r.stdout, r.stderr) == (9, b"before exit\n", b"")
        r = project.run("exit_code", "0")
        assert r.returncode == 0
        r = project.run("exit_text", "disk full")
        assert (r.returncode, r.stdout, r.stderr) == (1, b"", b"fatal: disk full\n")
        r = project.run("exit_none")
        assert (r.returncode, r.stdout, r.stderr) == (0, b"bye\n", b"")


def test_uncaught_exception_gives_traceback_and_1(project: Project) -> None:
    with client_master(project):
        r = project.run("boom", "xyz")
        assert r.returncode == 1
        assert r.stdout == b""
        err = r.stderr.decode()
        assert err.startswith("Traceback (most recent call last):"), err
        assert err.rstrip().endswith("ValueError: kaboom xyz"), err
        assert "in inner" in err and "zeus_plan.py" in err, err


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_command_killed_by_signal_kills_the_client_too(project: Project, signum: int) -> None:
    with client_master(project):
        r = project.run("suicide", str(int(signum)))
        assert r.stdout == b"dying\n"
        assert r.returncode == -signum, r.stderr  # as python: the shell sees the signal


# -- arguments ------------------------------------------------------------------------------------

ARG_CASES = [
    pytest.param(["a b", "  c  ", "\td"], id="spaces"),
    pytest.param(["a", ""], id="trailing-empty"),
    pytest.param(["", ""], id="two-empty"),
    pytest.param([""], id="one-empty"),
    pytest.param(["", "x", "", "y", ""], id="empties-between"),
    pytest.param(["héllo wörld", "✓", "日本語", "🐍"], id="unicode"),
    pytest.param(["-x", "--long", "-t", "--tty", "-T", "--no-tty", "--config", "c", "-"],
                 id="dashes"),
    pytest.param(["line1\nline2", "\n", "a\r\nb"], id="newlines"),
    pytest.param(["--", "x", "--"], id="double-dash"),
    pytest.param(["quote'\"", "$HOME", "*", "\\", "a=b"], id="shell-chars"),
    pytest.param([], id="none"),
]


@pytest.mark.parametrize("args", ARG_CASES)
def test_arguments_pass_through_unchanged(project: Project, args: list[str]) -> None:
    with client_master(project):
        r = project.run("args_json", *args)
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got == {"argv": args, "sys_argv": ["args_json", *args]}


def test_undecodable_argument_bytes_pass_through(project: Project) -> None:
    with client_master(project):
        r = subprocess.run([ZEUS.encode(), b"args_json", b"\xffraw\xfe", b"ok"], cwd=project.root,
                           env=project.env(), capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["argv"] == ["\udcffraw\udcfe", "ok"]


def test_many_and_long_arguments(project: Project) -> None:
    args = [f"arg{i}" for i in range(2000)] + ["x" * 100_000]
    with client_master(project):
        r = project.run("args_json", *args)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["argv"] == args


# -- stdin, stdout, stderr ------------------------------------------------------------------------

def test_stdin_reaches_command_and_eof_too(project: Project) -> None:
    data = bytes(range(256)) * 1000  # binary, 256 KB: more than a socket buffer
    with client_master(project):
        r = project.run("cat", input=data)
        assert r.returncode == 0
        assert r.stdout == data
        assert r.stderr == f"EOF after {len(data)}\n".encode()


def test_empty_stdin_is_eof(project: Project) -> None:
    with client_master(project):
        r = project.run("cat", input=b"")
        assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"EOF after 0\n")
        r = subprocess.run([ZEUS, "cat"], cwd=project.root, env=project.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        assert (r.returncode, r.stderr) == (0, b"EOF after 0\n")


def test_stdin_lines_interleaved_with_a_live_command(project: Project) -> None:
    """Input written over time (not all at once) reaches the command; closing it ends the read."""
    with client_master(project):
        proc = popen(project, "lines")
        assert proc.stdin is not None
        for word in ("one", "two", "three"):
            proc.stdin.write(word.encode() + b"\n")
            proc.stdin.flush()
            time.sleep(0.05)
        proc.stdin.close()
        proc.stdin = None
        out, _ = stop(proc)
        assert proc.returncode == 3
        assert out == b'LINES ["one", "two", "three"]\n'


def test_stdout_and_stderr_stay_separate(project: Project) -> None:
    with client_master(project):
        r = project.run("both")
        assert r.returncode == 0
        assert r.stdout == b"".join(b"out %d\n" % i for i in range(50))
        assert r.stderr == b"".join(b"err %d\n" % i for i in range(50))


def test_big_output_is_drained_before_exit(project: Project) -> None:
    with client_master(project):
        for _ in range(3):
            r = project.run("big")
            assert r.returncode == 0, r.stderr
            assert len(r.stdout) == len(BIG_BYTES)
            assert r.stdout == BIG_BYTES


def test_tty_option_forces_a_terminal_with_pipes(project: Project) -> None:
    with client_master(project):
        for option in ("-t", "--tty"):
            r = subprocess.run([ZEUS, option, "ttys"], cwd=project.root, env=project.env(),
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            assert r.returncode == 0, r.stderr
            assert b"TTYS [true, true, true]" in r.stdout, r.stdout
        r = project.run("ttys")
        assert r.stdout == b"TTYS [false, false, false]\n"


# -- concurrency ----------------------------------------------------------------------------------

#: Rounds of 20 simultaneous clients per test (a race that hits one client in a few rounds
#: still shows).
ROUNDS = 3
CONCURRENCY_BUG = ("BUG (regression in 74cb744): with many commands at once a phase can read "
                   "from the status pipe of a command it already reaped, whose fd number was "
                   "reused for another command's args socket: that command gets no arguments "
                   "and its client status 1 with no output")


def test_twenty_clients_at_once(project: Project) -> None:
    wrong = []
    with client_master(project):
        for _ in range(ROUNDS):
            procs = {n: popen(project, "say_exit", str(n)) for n in range(20)}
            try:
                for n, proc in procs.items():
                    out, err = stop(proc, timeout=20)
                    if (out, err, proc.returncode) != (b"n=%d\n" % n, b"e=%d\n" % n, n):
                        wrong.append((n, out, err, proc.returncode))
            finally:
                for proc in procs.values():
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait(5)
    assert not wrong, f"clients with the wrong output or status: {wrong}"


def test_twenty_clients_from_threads(project: Project) -> None:
    wrong = []

    def one(n: int, results: dict[int, subprocess.CompletedProcess[bytes]]) -> None:
        results[n] = project.run("hello", str(n), timeout=20)

    with client_master(project):
        for _ in range(ROUNDS):
            results: dict[int, subprocess.CompletedProcess[bytes]] = {}
            threads = [threading.Thread(target=one, args=(n, results)) for n in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sorted(results) == list(range(20))
            for n, r in results.items():
                if (r.returncode, r.stdout) != (0, b"hello %d\n" % n):
                    wrong.append((n, r.returncode, r.stdout, r.stderr))
    assert not wrong, f"clients with the wrong output or status: {wrong}"


# -- the client's death and signals ---------------------------------------------------------------

def sleeping_pid(proc: subprocess.Popen[bytes]) -> int:
    """The pid a `sleep`-like command prints once it runs (read from the client's stdout)."""
    assert proc.stdout is not None
    return int(read_until(proc.stdout.fileno(), rb"sleeping \d+\n").split()[1])


@pytest.mark.parametrize("command", ["sleep", "stubborn"])
def test_sigkilled_client_takes_its_command_down(project: Project, command: str) -> None:
    with client_master(project):
        proc = popen(project, command, "30")
        try:
            pid = sleeping_pid(proc)
            assert not is_dead(pid)
            start = time.monotonic()
            proc.kill()
            proc.wait(5)
            wait_for(lambda: is_dead(pid), timeout=3, interval=0.01, what="the command to die")
            elapsed = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
            stop(proc)
        assert elapsed < 1.5, f"command outlived its client by {elapsed:.2f} s"


def test_sigterm_to_client_reaches_command_handler(project: Project) -> None:
    with client_master(project):
        proc = popen(project, "term")
        assert proc.stdout is not None
        line = read_until(proc.stdout.fileno(), rb"ready \d+\n")
        pid = int(line.split()[1])
        time.sleep(0.2)  # the client must know the pid (the early case is a test of its own)
        proc.send_signal(signal.SIGTERM)
        out, _ = stop(proc)
        assert out == b"got TERM\n"
        assert proc.returncode == 7
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to finish")


def test_sigterm_to_client_kills_default_command(project: Project) -> None:
    with client_master(project):
        proc = popen(project, "sleep", "30")
        pid = sleeping_pid(proc)
        time.sleep(0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stop(proc)
        assert proc.returncode == -signal.SIGTERM  # the command died of it, and so do we
        assert time.monotonic() - start < 2.0
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to die")


def test_master_killed_mid_command_client_exits(project: Project) -> None:
    """The master dies while a command runs: the client must not hang, it reports the loss."""
    with client_master(project) as master:
        proc = popen(project, "sleep", "30")
        pid = 0
        try:
            pid = sleeping_pid(proc)
            start = time.monotonic()
            master.proc.kill()
            _, err = stop(proc, timeout=4)
            elapsed = time.monotonic() - start
        finally:
            if pid:
                kill_quietly(pid)
        assert proc.returncode != 0
        assert b"master" in err, err
        assert elapsed < 3.0


def test_master_stopping_mid_command_says_so_and_hangs_up(project: Project) -> None:
    """`zeus stop` while a command runs: its client prints one line, then dies of the SIGHUP
    its command got (a shell shows 129), as a closed terminal would end a local one."""
    with client_master(project) as master:
        proc = popen(project, "sleep", "30")
        pid = sleeping_pid(proc)
        master.stop()
        _, err = stop(proc, timeout=5)
        assert proc.returncode == -signal.SIGHUP
        lines = err.decode().splitlines()
        assert lines == ["zeus: the master is stopping; ending the command (SIGHUP)"], err
        wait_for(lambda: is_dead(pid), timeout=3, what="the command to die")


def test_master_killed_before_the_client_learns_the_pid(project: Project) -> None:
    """The master dies while a client that could not react (stopped here; in life, one whose
    pid reply was still on its way) holds a running command: the command's runner ends it."""
    with client_master(project) as master:
        proc = popen(project, "sleep", "30")
        pid = 0
        try:
            pid = sleeping_pid(proc)
            proc.send_signal(signal.SIGSTOP)
            master.proc.kill()
            wait_for(lambda: is_dead(pid), timeout=5, what="the runner to end the command")
        finally:
            proc.kill()
            proc.wait(timeout=5)
            if pid:
                kill_quietly(pid)


# -- errors ---------------------------------------------------------------------------------------

def no_autostart(project: Project) -> dict[str, str]:
    env = project.env()
    env.pop("ZEUS_AUTOSTART", None)
    return env


def test_no_master_message(project: Project) -> None:
    project.write()
    r = project.run("hello", env=no_autostart(project))
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr == b"Can't connect to master. Run zeus start first.\n"


def test_stale_socket_is_no_master(project: Project) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(project.root / ".zeus.sock"))
    sock.close()  # the file stays, nobody listens
    r = project.run("hello", env=no_autostart(project))
    assert (r.returncode, r.stderr) == (1, b"Can't connect to master. Run zeus start first.\n")


def test_unknown_command(master: Master, project: Project) -> None:
    r = project.run("nosuch", "arg")
    assert r.returncode != 0
    assert r.stdout == b""
    err = r.stderr.decode()
    assert err.startswith('Could not find command "nosuch".\n'), err
    for name in ("hello", "echoargs", "both", "cat", "sleep"):
        assert name in err, err
    assert "hi" in err  # the alias is listed too


CRASH_PLAN = """
import zeuspy

class P(zeuspy.Plan):
    def boot(self):
        pass

    def broken(self):
        def deep():
            raise RuntimeError("phase exploded 1234")
        deep()

    def doomed(self, argv):
        print("must not run")

    def fine(self, argv):
        print("fine ran")
"""


def test_crashed_phase_shows_its_traceback(project: Project) -> None:
    project.write(tree={"boot": {"broken": {"doomed": None}, "fine": None}}, plan=CRASH_PLAN)
    with running_master(project, "boot") as master:
        wait_for(lambda: "broken: crashed" in master.output or "phase exploded" in project.log,
                 what="the phase to crash")
        for _ in range(2):  # stays crashed: the same answer again
            r = project.run("doomed")
            assert r.returncode == 1
            assert b"must not run" not in r.stdout + r.stderr
            err = r.stderr.decode()
            assert "Traceback (most recent call last):" in err, err
            assert "RuntimeError: phase exploded 1234" in err, err
            assert "in deep" in err, err
        r = project.run("fine")  # a sibling under a healthy phase still runs
        assert (r.returncode, r.stdout) == (0, b"fine ran\n")


SLOW_PLAN = """
import time
import zeuspy

class P(zeuspy.Plan):
    def boot(self):
        pass

    def slow(self):
        time.sleep(1.5)

    def later(self, argv):
        print("later ran", *argv)
        return 4
"""


def test_command_of_booting_phase_waits_then_runs(project: Project) -> None:
    project.write(tree={"boot": {"slow": {"later": None}}}, plan=SLOW_PLAN)
    master = Master(project)
    try:
        wait_for(lambda: (project.root / ".zeus.sock").exists() or master.proc.poll() is not None,
                 timeout=10, what="the master's socket")
        assert "slow: ready" not in master.output  # the client below really has to wait
        start = time.monotonic()
        r = project.run("later", "x")
        elapsed = time.monotonic() - start
        assert (r.returncode, r.stdout) == (4, b"later ran x\n"), r.stderr
        assert elapsed < 8
        r = project.run("later", "y")  # and once booted, at once
        assert (r.returncode, r.stdout) == (4, b"later ran y\n")
    finally:
        master.stop()



HELD_BOOT_PLAN = """
import os, time
import zeuspy

class P(zeuspy.Plan):
    def boot(self):
        pass

    def slow(self):
        deadline = time.monotonic() + 10
        while os.path.exists("hold-boot") and time.monotonic() < deadline:
            time.sleep(0.02)

    def later(self, argv):
        print("later ran", *argv)
        return 4
"""


def test_sigtstp_while_the_phase_boots_stops_the_client(project: Project) -> None:
    """A SIGTSTP before the command's pid waits for it (the command may run already), but not
    for a phase that is still booting: after PID_GRACE the client stops alone, as python would
    have; continued, it gets its command run."""
    project.write(tree={"boot": {"slow": {"later": None}}}, plan=HELD_BOOT_PLAN)
    marker = project.root / "hold-boot"
    marker.write_text("")
    master = Master(project)
    try:
        wait_for(lambda: (project.root / ".zeus.sock").exists() or master.proc.poll() is not None,
                 timeout=10, what="the master's socket")
        with job_client(project, "later", "x") as proc:
            time.sleep(0.2)  # connected and waiting for the phase
            proc.send_signal(signal.SIGTSTP)
            wait_for(lambda: proc_state(proc.pid) == "T", timeout=5, what="the client to stop")
            marker.unlink()
            proc.send_signal(signal.SIGCONT)
            out, err = proc.communicate(timeout=15)
        assert (proc.returncode, out) == (4, b"later ran x\n"), err
    finally:
        marker.unlink(missing_ok=True)
        master.stop()


def test_sigterm_before_pid_message_still_reaches_command(project: Project) -> None:
    """The command already runs (its output reached the client) but the master's pid message is
    late (a busy master; here a relay holds it): the client must still hand SIGTERM to the
    command and exit with its status."""
    with client_master(project):
        proxy = HoldingProxy(str(project.root / "relay.sock"), str(project.root / ".zeus.sock"))
        proc = subprocess.Popen([ZEUS, "term"], cwd=project.root,
                                env=project.env(ZEUSSOCK=proxy.path), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            read_until(proc.stdout.fileno(), rb"ready \d+\n")
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            proxy.release()
            out, _ = stop(proc)
        finally:
            proxy.close()
        assert (out, proc.returncode) == (b"got TERM\n", 7)
