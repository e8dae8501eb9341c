"""A real ``zeus start`` in a test project, and what the tests wait for in it: phases ready (or
crashed) per its output, phase states per its log, and background masters always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness.processes import kill_left, processes_in
from tests.harness.project import ZEUS, Project
from tests.harness.waits import BOOT_TIMEOUT, EXIT_TIMEOUT, wait_for


class Master:
    """A real ``zeus start ARGS`` in a project (its root as cwd), its output captured to
    ``master.out`` in the project."""

    def __init__(self, project: Project, args: tuple[str, ...] = ()) -> None:
        self.project = project
        self.output_path = project.root / "master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen([ZEUS, "start", *args], cwd=project.root,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=project.env())

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_ready(self, *phases: str, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until the master's output says each named phase (default ``boot``) is ready
        (``NAME: ready``), or for ``crashed:NAME`` crashed; AssertionError if the master exits
        first or after ``timeout``."""
        wanted = [(p.removeprefix("crashed:"), "crashed" if p.startswith("crashed:") else "ready")
                  for p in phases or ("boot",)]
        wait_for(lambda: all(f"{name}: {state}" in self.output for name, state in wanted)
                 or self.proc.poll() is not None, timeout, what=f"phases {phases} ready")
        assert self.proc.poll() is None, f"master exited early:\n{self.output}"

    def phase_pid(self, name: str) -> int:
        """The pid phase ``name`` registered with last, per the master's log."""
        return phase_pid(self.project, name)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        """Signal the master (SIGTERM) and reap it; its exit status. AssertionError (after a
        SIGKILL) when it does not exit within ``timeout``."""
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
def running_master(project: Project, *phases: str, args: tuple[str, ...] = (),
                   check_exit: bool = False) -> Iterator[Master]:
    """A :class:`Master` with ``phases`` (default ``boot``; see :meth:`Master.wait_ready`)
    ready; stopped on the way out, and with ``check_exit`` its exit status checked to be 0."""
    master = Master(project, args)
    try:
        master.wait_ready(*phases)
        yield master
    finally:
        code = master.stop()
    assert not check_exit or code == 0, f"the master exited with {code}:\n{master.output}"


@contextmanager
def master_for(project: Project, *phases: str) -> Iterator[Master]:
    """:func:`running_master` with ``--simple-status`` and its exit status checked: the master of
    the zero-config (built-in plan) tests."""
    with running_master(project, *phases, args=("--simple-status",), check_exit=True) as master:
        yield master


# -- the master's log ----------------------------------------------------------------------------

def phase_pid(project: Project, name: str) -> int:
    """The pid phase ``name`` registered with last, per the master's log."""
    pids = [int(line.rsplit("pid ", 1)[1].split()[0].rstrip(")"))
            for line in project.log.splitlines() if f"phase {name} registered: pid" in line]
    assert pids, f"phase {name} never registered:\n{project.log[-3000:]}"
    return pids[-1]


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


def wait_phases(master: Master, *names: str, timeout: float = BOOT_TIMEOUT,
                since: int = 0) -> None:
    """Wait until the last state of each named phase is ``ready``, per the master's log (from
    offset ``since``: pass the log's length before this master started if another one wrote it
    before); AssertionError if the master exits first."""
    wait_for(lambda: all(last_state(master.project, n, since) == "ready" for n in names)
             or master.proc.poll() is not None, timeout, what=f"phases {names} ready")
    assert master.proc.poll() is None, f"master exited early:\n{master.output}"


# -- background masters (zeus start --background, autostart) -----------------------------------

def pid_file(project: Project) -> str:
    return str(project.root / ".zeus" / "master.pid")


def socket_file(project: Project) -> str:
    return str(project.root / ".zeus.sock")


def stop_everything(project: Project) -> None:
    """After a test with a background master: stop it (``zeus stop``), then make sure nothing of
    the project's is left (kill what is, so that one failure does not leak into the next test;
    the project's leak check still reports it)."""
    if os.path.exists(pid_file(project)) or processes_in(mark=project.mark):
        try:
            subprocess.run([ZEUS, "stop"], cwd=project.root, env=project.env(),
                           capture_output=True, timeout=EXIT_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + EXIT_TIMEOUT
    while processes_in(mark=project.mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_left(mark=project.mark)


@contextmanager
def background(project: Project) -> Iterator[None]:
    """Whatever the test starts in the background is stopped at the end."""
    try:
        yield
    finally:
        stop_everything(project)
