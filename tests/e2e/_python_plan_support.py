"""Helpers for test_python_plan.py: projects without zeus.json (the built-in Python plan), `python`
versus `zeus run` runs compared after explicit normalisation, PTY runs, and a legacy client run in
a process of its own (so that its cwd and environment are its own, as the shim reads them from
/proc)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pexpect

from tests.e2e._master_support import check_no_strays
from tests.helpers import ZEUS, Master, Project, new_mark, wait_for

#: Bound of every single `python` / `zeus` run of these tests.
RUN_TIMEOUT = 15.0
#: Variables the tests control themselves: a value inherited from the shell running the tests
#: must not leak into the master or the clients (PYTHONPATH and DJANGO_SETTINGS_MODULE shape the
#: boot; PYTHONSTARTUP would run in the console; ZEUS_AUTOSTART would start masters).
SCRUBBED = ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP", "ZEUS_AUTOSTART",
            "ZEUSPY_NO_IPYTHON", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS")


class PyProject(Project):
    """A project folder without zeus.json (unless a test writes one). ``base_env`` is added to
    the environment of the master and of every client (a client test removes or changes entries
    of it to make its environment differ from the master's)."""

    def __init__(self, root: Path, mark: str, base_env: dict[str, str] | None = None) -> None:
        super().__init__(root, mark)
        self.base_env = dict(base_env or {})

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env()
        for name in SCRUBBED:
            env.pop(name, None)
        env.update(self.base_env)
        env.update(extra)
        return env

    def files(self, files: dict[str, str]) -> PyProject:
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return self

    def zeus(self, *args: str, cwd: str = "", stdin: bytes = b"",
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """``zeus ARGS`` in ``cwd`` (relative to the root) with pipes on all three streams (stdin
        always a pipe, never the terminal the tests may run in)."""
        return subprocess.run([ZEUS, *args], cwd=self.root / cwd, input=stdin,
                              capture_output=True, timeout=RUN_TIMEOUT,
                              env=self.env() if env is None else env)

    def python(self, *args: str, cwd: str = "", stdin: bytes = b"",
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """The venv's ``python ARGS``, run exactly like :meth:`zeus` runs the client."""
        return subprocess.run([sys.executable, *args], cwd=self.root / cwd, input=stdin,
                              capture_output=True, timeout=RUN_TIMEOUT,
                              env=self.env() if env is None else env)


@contextmanager
def python_project(folder: Path, files: dict[str, str],
                   base_env: dict[str, str] | None = None) -> Iterator[PyProject]:
    """A project in ``folder`` holding ``files``; fails if any of its processes outlives it (by
    environment mark or by working directory in the project: commands run in the client's)."""
    folder.mkdir(parents=True, exist_ok=True)
    project = PyProject(folder, new_mark(), base_env).files(files)
    try:
        yield project
    finally:
        check_no_strays(project)


@contextmanager
def master_for(project: Project, *phases: str) -> Iterator[Master]:
    """``zeus start`` in the project until the named phases (default boot) are ready, or, for
    ``crashed:NAME``, until phase NAME crashed; stopped (and its exit status checked) after."""
    master = Master(project, ("--simple-status",))
    try:
        for phase in phases or ("boot",):
            state = "crashed" if phase.startswith("crashed:") else "ready"
            name = phase.removeprefix("crashed:")
            wait_for(lambda name=name, state=state: f"{name}: {state}" in master.output
                     or master.proc.poll() is not None, what=f"phase {name} {state}")
            assert master.proc.poll() is None, f"master exited early:\n{master.output}"
        yield master
    finally:
        code = master.stop()
    assert code == 0, f"the master exited with {code}:\n{master.output}"


# -- python versus zeus run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a run showed: exit status, stdout, stderr (bytes, after normalisation)."""

    status: int
    stdout: bytes
    stderr: bytes


#: ``python: can't open file …`` and runpy's ``<sys.executable>: No module named …`` start with
#: the interpreter as it was invoked (the test runs the venv's python by its full path; zeus run
#: prints its interpreter's name or path): the same program, so the name is not compared.
_PROGRAM = re.compile(rb"^\S*python[0-9.]*(?=: )", re.MULTILINE)


def outcome(result: subprocess.CompletedProcess[bytes]) -> Outcome:
    status = result.returncode
    if status < 0:
        # python dies of an uncaught KeyboardInterrupt by SIGINT (what a shell shows as 130);
        # a zeus client always exits with the status the master reports (130): the same to a
        # caller that looks at $?.
        status = 128 - status
    return Outcome(status, result.stdout, _PROGRAM.sub(b"python", result.stderr))


# -- terminals ----------------------------------------------------------------------------------


def spawn(project: PyProject, *args: str, cwd: str = "", timeout: float = RUN_TIMEOUT,
          **env: str) -> pexpect.spawn:
    """``zeus ARGS`` on a fresh PTY (bytes mode), in ``cwd``, with ``env`` added."""
    return pexpect.spawn(ZEUS, list(args), cwd=str(project.root / cwd),
                         env=project.env(**env), timeout=timeout, dimensions=(24, 80))


def finish(child: pexpect.spawn, timeout: float = RUN_TIMEOUT) -> tuple[bytes, int]:
    """The rest of the child's output and its exit status (128+N when killed by signal N)."""
    child.expect(pexpect.EOF, timeout=timeout)
    out = child.before
    child.close()
    status = 128 + child.signalstatus if child.signalstatus is not None else child.exitstatus
    return out, status


# -- a legacy client ----------------------------------------------------------------------------

#: The original Go client's pipe mode (protocol.md, "Client <-> master <-> command", no
#: extension, so no world), as tests/e2e/test_protocol.py drives it, but run in a process of its
#: own: ``python -c LEGACY_CLIENT SOCKET COMMAND ARGS...``. It sends its own pid, which the master
#: can vouch for (it is the peer of the connection), and prints {"raw", "stdout", "stderr"} as JSON.
LEGACY_CLIENT = r"""
import array, json, os, selectors, socket, sys, time

path, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
master = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
master.connect(path)
args_local, args_remote = socket.socketpair()
out_local, out_remote = socket.socketpair()
err_local, err_remote = socket.socketpair()
master.sendall(f"T:{len(args)}:{os.getpid()}:{command}".encode() + b"\0")
for remote in (args_remote, out_remote, err_remote):
    rights = array.array("i", [remote.fileno()]).tobytes()
    master.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    remote.close()
args_local.sendall(b"".join(a.encode() + b"\0" for a in args))
args_local.close()
out_local.shutdown(socket.SHUT_WR)
chunks = {master: b"", out_local: b"", err_local: b""}
selector = selectors.DefaultSelector()
for sock in chunks:
    selector.register(sock, selectors.EVENT_READ)
deadline = time.monotonic() + 10
while selector.get_map():
    left = deadline - time.monotonic()
    if left <= 0:
        sys.exit("legacy client: timed out; got %r" % chunks)
    for key, _ in selector.select(left):
        try:
            data = key.fileobj.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            chunks[key.fileobj] += data
        else:
            selector.unregister(key.fileobj)
print(json.dumps({"raw": chunks[master].decode(), "stdout": chunks[out_local].decode(),
                  "stderr": chunks[err_local].decode()}))
"""


@dataclass(frozen=True)
class LegacyResult:
    status: int
    stdout: str
    stderr: str


def legacy_run(project: PyProject, command: str, *args: str, cwd: str = "",
               env: dict[str, str] | None = None) -> LegacyResult:
    """Run ``command ARGS`` through the master as a legacy client in ``cwd`` with ``env``."""
    result = subprocess.run(
        [sys.executable, "-c", LEGACY_CLIENT, str(project.root / ".zeus.sock"), command, *args],
        cwd=project.root / cwd, capture_output=True, timeout=RUN_TIMEOUT,
        env=project.env() if env is None else env)
    assert result.returncode == 0, result
    answer = json.loads(result.stdout)
    match = re.fullmatch(r"(\d+)\0(\d+)\0", answer["raw"])
    assert match, f"the master's answer is not <pid>\\0<status>\\0: {answer['raw']!r}"
    return LegacyResult(int(match[2]), answer["stdout"], answer["stderr"])


def pid_of_phase(project: Project, name: str) -> int:
    """The last pid phase ``name`` registered with, per the master's log."""
    pids = [int(line.rsplit("pid ", 1)[1].split()[0].rstrip(")"))
            for line in project.log.splitlines() if f"phase {name} registered: pid" in line]
    assert pids, f"phase {name} never registered:\n{project.log}"
    return pids[-1]


def line_of(path: Path, marker: str) -> int:
    """The 1-based number of the line of ``path`` that contains ``marker``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


def realpath(path: Path) -> str:
    return os.path.realpath(path)
