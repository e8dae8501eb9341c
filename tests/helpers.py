"""Shared test machinery: temp projects, real masters, clients, and leak checks.

Every process a test starts carries ``ZEUSPY_TEST_MARK=<unique id>`` in its environment (phases,
runners and commands inherit it), so :func:`leftover_processes` finds anything left behind by
reading ``/proc/*/environ``, whatever the process title says.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
ZEUS = str(VENV_BIN / "zeus")
MARK_ENV = "ZEUSPY_TEST_MARK"
#: Every wait in the tests is bounded by one of these.
BOOT_TIMEOUT = 20.0
EXIT_TIMEOUT = 10.0


def wait_for(predicate: Callable[[], Any], timeout: float = BOOT_TIMEOUT, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def leftover_processes(mark: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of live processes whose environment carries ``mark``."""
    found = []
    needle = f"{MARK_ENV}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
            if needle not in environ.split(b"\0"):
                continue
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            if state == b"Z":
                continue  # a zombie is dead; its parent (the test's child) reaps it
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found.append((int(entry), cmdline))
    return found


def kill_marked(mark: str) -> None:
    for pid, _ in leftover_processes(mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


DEFAULT_PLAN = """
import os, sys, time
import zeuspy

class TestPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        import decimal

    def hello(self, argv):
        print("hello", *argv)
        return 0

    def exitwith(self, argv):
        return int(argv[0])

    def echoargs(self, argv):
        for a in argv:
            print(repr(a))

    def both(self, argv):
        print("out")
        print("err", file=sys.stderr)

    def cat(self, argv):
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        print("EOF after", len(data), file=sys.stderr)

    def sleep(self, argv):
        print("sleeping", os.getpid(), flush=True)
        time.sleep(float(argv[0]) if argv else 30)
"""

DEFAULT_TREE: dict[str, Any] = {
    "boot": {"app": {"hello": ["hi"], "exitwith": None, "echoargs": None, "both": None,
                     "cat": None, "sleep": None}}
}


class Project:
    """A temp project folder with zeus.json and zeus_plan.py."""

    def __init__(self, root: Path, mark: str) -> None:
        self.root = root
        self.mark = mark

    def write(self, tree: dict[str, Any] | None = None, plan: str | None = None,
              extra: dict[str, Any] | None = None) -> Project:
        config: dict[str, Any] = {"plan": tree or DEFAULT_TREE}
        config.update(extra or {})
        (self.root / "zeus.json").write_text(json.dumps(config, indent=2))
        (self.root / "zeus_plan.py").write_text(textwrap.dedent(plan or DEFAULT_PLAN))
        return self

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env[MARK_ENV] = self.mark
        # setproctitle would reuse the environment's memory for long titles, and the leak check
        # reads the mark from /proc/PID/environ.
        env["SPT_NOENV"] = "1"
        env.pop("ZEUSSOCK", None)
        env.pop("NO_COLOR", None)
        env.update(extra)
        return env

    @property
    def log(self) -> str:
        try:
            return (self.root / ".zeus" / "master.log").read_text(errors="replace")
        except OSError:
            return ""

    def run(self, *args: str, input: bytes | None = None, timeout: float = EXIT_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """``zeus ARGS`` with pipes (pipe mode), bounded."""
        return subprocess.run([ZEUS, *args], cwd=self.root, input=input, capture_output=True,
                              timeout=timeout, env=env or self.env())


class Master:
    """A real ``zeus start`` in a project, its output captured to a file."""

    def __init__(self, project: Project, args: tuple[str, ...] = ()) -> None:
        self.project = project
        self.output_path = project.root / "master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([ZEUS, "start", *args], cwd=project.root,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=project.env())

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_ready(self, *phases: str, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until each named phase (default: all in the log's tree) reported ready."""
        names = phases or ("boot",)
        wait_for(lambda: all(f"{name}: ready" in self.output for name in names)
                 or self.proc.poll() is not None, timeout, what=f"phases {names} ready")
        assert self.proc.poll() is None, f"master exited early:\n{self.output}"

    def phase_pid(self, name: str) -> int:
        pids = [int(line.rsplit("pid ", 1)[1].split()[0].rstrip(")"))
                for line in self.project.log.splitlines()
                if f"phase {name} registered: pid" in line]
        assert pids, f"phase {name} never registered"
        return pids[-1]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            raise AssertionError(f"master did not exit within {timeout} s") from None
        finally:
            self._out.close()
        return code


@contextmanager
def running_master(project: Project, *phases: str, args: tuple[str, ...] = ()) -> Iterator[Master]:
    master = Master(project, args)
    try:
        master.wait_ready(*(phases or ("boot",)))
        yield master
    finally:
        master.stop()


def new_mark() -> str:
    return uuid.uuid4().hex
