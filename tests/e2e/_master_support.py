"""Process look-ups for the master tests (test_master.py, test_protocol.py).

``tests.helpers.leftover_processes`` finds processes by the mark in ``/proc/<pid>/environ``, but
the zeuspy shim calls ``setproctitle``, which reuses the environment's memory for the title: phase,
runner and command processes of the zeuspy shim no longer show the mark there. So these tests also
count every live process whose working directory is the project (phases inherit the master's).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import BOOT_TIMEOUT, Master, Project, leftover_processes, wait_for

#: The plan these tests run (their own, so that changes to the shared default cannot break them;
#: no command is named like a possible built-in such as ``status``).
PLAN = """
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

    def sleep(self, argv):
        print("sleeping", os.getpid(), flush=True)
        time.sleep(float(argv[0]) if argv else 30)

    def touch(self, argv):
        open(argv[0], "w").close()
"""

TREE: dict[str, Any] = {
    "boot": {"app": {"hello": ["hi"], "exitwith": None, "echoargs": None, "both": None,
                     "cat": None, "sleep": None, "touch": None}}
}


def write_project(project: Project, plan_extra: str = "", **extra: Any) -> Project:
    """Our plan (plus ``plan_extra``: methods appended to its class) and tree."""
    return project.write(TREE, PLAN + plan_extra, extra or None)


def wait_phases(master: Master, *names: str, timeout: float = BOOT_TIMEOUT,
                since: int = 0) -> None:
    """Wait until each named phase is ready, per the master's log (from offset ``since``: pass
    the log's length before this master started if another one wrote it before); fail if the
    master exits."""
    wait_for(lambda: all(last_state(master.project, n, since) == "ready" for n in names)
             or master.proc.poll() is not None, timeout, what=f"phases {names} ready")
    assert master.proc.poll() is None, f"master exited early:\n{master.output}"


@contextmanager
def started(project: Project, *names: str) -> Iterator[Master]:
    """A master for ``project`` with ``names`` (default boot and app) ready; stopped after."""
    master = Master(project)
    try:
        wait_phases(master, *(names or ("boot", "app")))
        yield master
    finally:
        master.stop()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def processes_in(folder: Path) -> set[int]:
    """Live processes (not this one) whose cwd is ``folder`` or below it."""
    found = set()
    root = os.path.realpath(folder)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + "/")) and alive(int(entry)):
            found.add(int(entry))
    return found


def project_processes(project: Project) -> set[int]:
    """Every live process of this test: marked in its environment, or working in the project."""
    marked = {pid for pid, _ in leftover_processes(project.mark) if alive(pid)}
    return marked | processes_in(project.root)


def spare_processes(pids: set[int]) -> set[int]:
    """The idle spares among ``pids`` (a phase that ran a command keeps a command forked in
    advance, titled "zeus command: (ready)", and its guard, titled with its pid)."""
    spares = set()
    guards: dict[int, int] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read()
        except OSError:
            continue
        if title.startswith(b"zeus command: (ready)"):
            spares.add(pid)
        elif title.startswith(b"zeus guard: "):
            guards[pid] = int(title.split()[2].strip(b"\0"))
    return spares | {pid for pid, leader in guards.items() if leader in spares}


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def transitions(project: Project, name: str, new: str) -> int:
    """How often phase ``name`` entered state ``new`` (``ready``, ``crashed``, ``booting``), as the
    master logs every transition (``phase app: booting -> ready``)."""
    needle = f"phase {name}: "
    return sum(1 for line in project.log.splitlines()
               if needle in line and f" -> {new}" in line.split(needle, 1)[1])


def last_state(project: Project, name: str, since: int = 0) -> str | None:
    """The state phase ``name`` entered last, per the master's log (from offset ``since``)."""
    needle = f"phase {name}: "
    states = [line.split(needle, 1)[1].split(" -> ", 1)[1].split()[0]
              for line in project.log[since:].splitlines()
              if needle in line and " -> " in line.split(needle, 1)[1]]
    return states[-1] if states else None


def check_no_strays(project: Project, grace: float = 5.0) -> None:
    """Fail (after killing them) if processes of this test outlive it by ``grace`` seconds: the
    shared leak check cannot see the zeuspy shim's processes (see the module docstring)."""
    deadline = time.monotonic() + grace
    left = project_processes(project)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = project_processes(project)
    if left:
        described = []
        for pid in sorted(left):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                described.append(f"{pid} {cmdline}")
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        raise AssertionError(f"processes left behind: {described}")
