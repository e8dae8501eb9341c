"""Shared plan and helpers for the client end-to-end tests (test_client_pipe/pty.py)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pexpect

from tests.helpers import ZEUS, Master, Project, leftover_processes, running_master, wait_for

#: What the `colors` command writes: escape sequences, a bell, an OSC title, UTF-8, DEL, backspace.
COLOR_BYTES = (b"\x1b[1;31mRED\x1b[0m|\x1b]0;a title\x07|\xe2\x9c\x93 \xc3\xa9|\x08\x7f\x1b[2J"
               b"\x1b[?25l\x1b[?25h|END")
#: What the `big` command writes (1 MB and a marker), then it returns at once.
BIG_BYTES = b"0123456789abcdef" * 65536 + b"<END>"

CLIENT_PLAN = r"""
import json, os, signal, sys, time
import zeuspy

COLOR_BYTES = %(colors)r
BIG_BYTES = b"0123456789abcdef" * 65536 + b"<END>"


def _ready(what="ready"):
    print(what, os.getpid(), flush=True)


class ClientPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        pass

    def hello(self, argv):
        print("hello", *argv)

    def exit_with(self, argv):
        return int(argv[0])

    def say_exit(self, argv):
        print("n=" + argv[0])
        print("e=" + argv[0], file=sys.stderr)
        return int(argv[0])

    def exit_code(self, argv):
        print("before exit", flush=True)
        sys.exit(int(argv[0]))

    def exit_text(self, argv):
        sys.exit("fatal: " + argv[0])

    def exit_none(self, argv):
        print("bye")
        sys.exit(None)

    def returns_none(self, argv):
        print("nothing to return")

    def boom(self, argv):
        def inner():
            raise ValueError("kaboom " + argv[0])
        inner()

    def suicide(self, argv):
        print("dying", flush=True)
        os.kill(os.getpid(), int(argv[0]))
        time.sleep(5)
        return 99

    def args_json(self, argv):
        print(json.dumps({"argv": argv, "sys_argv": sys.argv}))

    def both(self, argv):
        for i in range(50):
            print("out", i)
            print("err", i, file=sys.stderr)

    def cat(self, argv):
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        print("EOF after", len(data), file=sys.stderr)

    def lines(self, argv):
        got = []
        for line in sys.stdin:
            got.append(line.rstrip("\r\n"))
        print("LINES", json.dumps(got))
        return len(got)

    def ttys(self, argv):
        print("TTYS", json.dumps([os.isatty(0), os.isatty(1), os.isatty(2)]))

    def winsize(self, argv):
        size = os.get_terminal_size(1)
        print("SIZE=%%dx%%d" %% (size.columns, size.lines))

    def winch(self, argv):
        got = []

        def handler(signum, frame):
            size = os.get_terminal_size(1)
            got.append(size)
            os.write(1, b"WINCH=%%dx%%d\n" %% (size.columns, size.lines))

        signal.signal(signal.SIGWINCH, handler)
        _ready()
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        return 0 if got else 3

    def ask(self, argv):
        name = input("name? ")
        print("got", repr(name))
        return 0

    def colors(self, argv):
        sys.stdout.buffer.write(COLOR_BYTES)
        sys.stdout.flush()

    def interrupt(self, argv):
        _ready()
        try:
            time.sleep(10)
        except KeyboardInterrupt:
            print("caught ^C", flush=True)
            return 42
        return 0

    def sleep(self, argv):
        _ready("sleeping")
        time.sleep(float(argv[0]) if argv else 30)

    def stubborn(self, argv):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _ready("sleeping")
        time.sleep(30)

    def term(self, argv):
        def handler(signum, frame):
            os.write(1, b"got TERM\n")  # not print: it may interrupt a print (reentrant call)
            raise SystemExit(7)

        signal.signal(signal.SIGTERM, handler)
        _ready()
        time.sleep(10)
        return 0

    def resume(self, argv):
        _ready("pid")
        line = input()
        print("resumed", line, flush=True)
        return 5

    def big(self, argv):
        sys.stdout.buffer.write(BIG_BYTES)

    def session(self, argv):
        info = {"pid": os.getpid(), "sid": os.getsid(0), "pgrp": os.getpgrp()}
        try:
            info["tcpgrp"] = os.tcgetpgrp(0)
        except OSError:
            info["tcpgrp"] = None
        try:
            os.close(os.open("/dev/tty", os.O_RDWR))
            info["devtty"] = True
        except OSError:
            info["devtty"] = False
        print("SESSION", json.dumps(info), flush=True)
"""

COMMANDS = ("hello", "exit_with", "say_exit", "exit_code", "exit_text", "exit_none", "returns_none",
            "boom", "suicide", "args_json", "both", "cat", "lines", "ttys", "winsize", "winch",
            "ask", "colors", "interrupt", "sleep", "stubborn", "term", "resume", "big", "session")
CLIENT_TREE: dict[str, Any] = {
    "boot": {"app": {name: (["hi"] if name == "hello" else None) for name in COMMANDS}}
}


def plan_source() -> str:
    return CLIENT_PLAN % {"colors": COLOR_BYTES}


@contextmanager
def client_master(project: Project) -> Iterator[Master]:
    """A master for the client plan, with every phase ready."""
    project.write(tree=CLIENT_TREE, plan=plan_source())
    with running_master(project, "boot", "app") as master:
        yield master


def spawn(project: Project, *args: str, timeout: float = 10,
          dimensions: tuple[int, int] = (24, 80)) -> pexpect.spawn:
    """``zeus ARGS`` on a fresh PTY (bytes mode)."""
    return pexpect.spawn(ZEUS, list(args), cwd=str(project.root), env=project.env(),
                         timeout=timeout, dimensions=dimensions)


def spawn_sh(project: Project, script: str, timeout: float = 10) -> pexpect.spawn:
    return pexpect.spawn("sh", ["-c", script], cwd=str(project.root), env=project.env(),
                         timeout=timeout, dimensions=(24, 80))


def finish(child: pexpect.spawn, timeout: float = 10) -> bytes:
    """Everything the child still writes, then its exit status is set; returns the output."""
    child.expect(pexpect.EOF, timeout=timeout)
    out = child.before
    child.close()
    return out


def exit_code(child: pexpect.spawn) -> int:
    if child.signalstatus is not None:
        return 128 + child.signalstatus
    return child.exitstatus


def read_until(fd: int, pattern: bytes, timeout: float = 10) -> bytes:
    """Read ``fd`` until the regex ``pattern`` matches what was read; bounded."""
    data = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {pattern!r}; got {data[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"EOF before {pattern!r}; got {data[-500:]!r}")
            data += chunk
    return data


def proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, T, Z, ...), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return None


def is_dead(pid: int) -> bool:
    return proc_state(pid) in (None, "Z", "X")


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            found.append(int(entry))
    return found


def command_children(pid: int) -> list[int]:
    """The children of a command process other than its guard (shim/guard.py)."""
    found = []
    for child in children_of(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if f.read().startswith(b"zeus guard: "):
                    continue
        except OSError:
            continue
        found.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def client_pid_under(shell_pid: int, timeout: float = 5) -> int:
    """The pid of the zeus client a shell started (its child running the launcher)."""
    from tests.helpers import wait_for

    def find() -> int | None:
        for pid in children_of(shell_pid):
            if "zeus" in cmdline(pid) and not is_dead(pid):
                return pid
        return None

    return int(wait_for(find, timeout, what="the zeus client under the shell"))


def kill_quietly(pid: int, signum: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


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


def processes_in(root: os.PathLike[str] | str) -> list[tuple[int, str]]:
    """Live processes whose working directory is ``root``: the master, its phases, commands and
    clients of a test project. (The environment mark of tests/helpers.py cannot see phases and
    commands: setting their process title wipes /proc/PID/environ.)"""
    target = os.path.realpath(root)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != target:
                continue
        except OSError:
            continue
        if is_dead(int(entry)):
            continue
        found.append((int(entry), cmdline(int(entry))))
    return found


def check_no_leftovers(root: os.PathLike[str] | str, grace: float = 5.0) -> None:
    """Fail (after killing them) if processes of the project outlive the test by ``grace``."""
    deadline = time.monotonic() + grace
    left = processes_in(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = processes_in(root)
    for pid, _ in left:
        kill_quietly(pid)
    assert not left, f"processes left behind: {left}"


@contextmanager
def sleeping_client(project: Project, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``zeus ARGS`` (a command that prints ``sleeping PID``) on pipes: the client and the pid of
    its command; the client is killed and reaped on the way out."""
    # A process group of its own, as a shell gives each job: in the test runner's group, which
    # may be orphaned, the kernel would discard the client's SIGTSTP (as it would python's).
    proc = subprocess.Popen([ZEUS, *args], cwd=project.root, env=project.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=os.setpgrp)
    try:
        assert proc.stdout is not None
        yield proc, int(read_until(proc.stdout.fileno(), rb"sleeping \d+\n").split()[1])
    finally:
        proc.kill()
        proc.communicate(timeout=5)


def suspend_and_resume(shell: pexpect.spawn, pid: int, client: int) -> None:
    """In an interactive bash (prompt ``ZP> ``) running ``zeus resume`` as its foreground job:
    ^Z stops the command and the client, ``fg`` resumes both, the command reads a line and
    exits 5; then the shell exits."""
    shell.sendcontrol("z")
    shell.expect(rb"Stopped", timeout=5)
    shell.expect_exact(b"ZP> ")
    wait_for(lambda: proc_state(pid) == "T", timeout=3, what="the command to stop")
    wait_for(lambda: proc_state(client) == "T", timeout=3, what="the client to stop")
    time.sleep(0.3)  # still stopped a moment later
    assert (proc_state(pid), proc_state(client)) == ("T", "T")

    shell.sendline("fg")
    wait_for(lambda: proc_state(pid) not in ("T", None), timeout=3,
             what="the command to continue")
    wait_for(lambda: proc_state(client) not in ("T", None), timeout=3,
             what="the client to continue")
    time.sleep(0.2)
    shell.sendline("again")
    shell.expect_exact(b"resumed again\r\n")
    shell.expect_exact(b"ZP> ")
    shell.sendline("echo rc=$?")
    shell.expect_exact(b"rc=5")
    shell.sendline("exit")
    shell.expect(pexpect.EOF, timeout=5)


def titled(project: Project, prefix: str) -> list[int]:
    """This test's live processes whose title starts with ``prefix``."""
    return [pid for pid, title in leftover_processes(project.mark) if title.startswith(prefix)]


def warm_spare(project: Project) -> int:
    """Run a first command (a phase's first request forks a runner; it keeps a spare from then
    on), then wait for the spare it leaves behind; its pid."""
    assert project.run("hello").returncode == 0
    # Exactly one: the guard's keeper, forked from the spare, shows its title for an instant.
    found = wait_for(lambda: len(ready := titled(project, "zeus command: (ready)")) == 1 and ready,
                     timeout=5, what="the spare command")
    return int(found[0])
