"""Temp projects: a folder with zeus.json and a plan (:class:`Project`), or a zero-config one
for the built-in plans (:class:`PyProject`), whose processes carry the test's mark."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.plans import DEFAULT_PLAN, DEFAULT_TREE
from tests.harness.processes import MARK_ENV, new_mark, project_leftovers
from tests.harness.waits import EXIT_TIMEOUT

VENV_BIN = Path(sys.executable).parent
#: The ``zeus`` script of the venv running the tests.
ZEUS = str(VENV_BIN / "zeus")
#: Bound of every single ``python`` / ``zeus`` run of a :class:`PyProject`.
RUN_TIMEOUT = 15.0
#: Variables a :class:`PyProject` controls itself: a value inherited from the shell running the
#: tests must not leak into the master or the clients (PYTHONPATH and DJANGO_SETTINGS_MODULE
#: shape the boot; PYTHONSTARTUP would run in the console; ZEUS_AUTOSTART would start masters).
SCRUBBED = ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "PYTHONSTARTUP", "ZEUS_AUTOSTART",
            "ZEUSPY_NO_IPYTHON", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS")


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write each ``files`` entry (a path under ``root``: its text, dedented, leading blank
    lines dropped), making the folders it needs."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def atomic_save(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step, as editors save: a new file renamed over it,
    so that a phase booting meanwhile never reads it half written."""
    fresh = path.with_name(f".{path.name}.swp-new")
    fresh.write_text(text)
    os.replace(fresh, path)


class Project:
    """A temp project folder (``root``) whose processes carry ``mark`` (see
    tests.harness.processes)."""

    def __init__(self, root: Path, mark: str) -> None:
        self.root = root
        self.mark = mark

    def write(self, tree: dict[str, Any] | None = None, plan: str | None = None,
              extra: dict[str, Any] | None = None, methods: str = "") -> Project:
        """zeus.json (``tree``, default :data:`DEFAULT_TREE`, plus the ``extra`` keys) and
        zeus_plan.py (``plan``, default :data:`DEFAULT_PLAN`, with ``methods`` appended to its
        plan class)."""
        config: dict[str, Any] = {"plan": tree or DEFAULT_TREE}
        config.update(extra or {})
        (self.root / "zeus.json").write_text(json.dumps(config, indent=2))
        source = textwrap.dedent(plan or DEFAULT_PLAN) + methods
        (self.root / "zeus_plan.py").write_text(source)
        return self

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every process the test starts: the mark added, ``extra`` on top."""
        env = dict(os.environ)
        env[MARK_ENV] = self.mark
        # setproctitle would reuse the environment's memory for long titles, and the leak check
        # reads the mark from /proc/PID/environ.
        env["SPT_NOENV"] = "1"
        # The test runner's, not the test's: a socket override, colours, the terminal size
        # (pytest-xdist starts its workers with COLUMNS and LINES, which rich in a master would
        # take over the size of the PTY a test gives it), and the xdist worker's identity (a
        # pytest run inside a test is no worker: pytest-cov and pytest-rerunfailures would act
        # as in one).
        for name in ("ZEUSSOCK", "NO_COLOR", "COLUMNS", "LINES", "PYTEST_XDIST_WORKER",
                     "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            env.pop(name, None)
        env.update(extra)
        return env

    @property
    def log(self) -> str:
        """The master's log (.zeus/master.log), "" when there is none or it is not a regular
        file (a test may put a FIFO there: opening one for reading would block)."""
        path = self.root / ".zeus" / "master.log"
        try:
            if not stat.S_ISREG(path.lstat().st_mode):
                return ""
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def run(self, *args: str, input: bytes | None = None, timeout: float = EXIT_TIMEOUT,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """``zeus ARGS`` with pipes (pipe mode), bounded."""
        return subprocess.run([ZEUS, *args], cwd=self.root, input=input, capture_output=True,
                              timeout=timeout, env=env or self.env())


class PyProject(Project):
    """A project folder without zeus.json (unless a test writes one), for the built-in plans.
    ``base_env`` is added to the environment of the master and of every client (a client test
    removes or changes entries of it to make its environment differ from the master's)."""

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
        """Write ``files`` (path relative to the root -> text, dedented)."""
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
    """A :class:`PyProject` in ``folder`` holding ``files``; on the way out, the leak check
    (tests.harness.processes.project_leftovers) fails it if any of its processes outlives it."""
    folder.mkdir(parents=True, exist_ok=True)
    project = PyProject(folder, new_mark(), base_env).files(files)
    try:
        yield project
    finally:
        project_leftovers(project)


def new_project(folder: Path) -> Project:
    """A :class:`Project` in ``folder`` (created) with a fresh mark and the default plan."""
    folder.mkdir(parents=True, exist_ok=True)
    return Project(folder, new_mark()).write()


@contextmanager
def short_folder(prefix: str = "zt-") -> Iterator[Path]:
    """A new private (0700) folder with a short path in the system's temp folder, removed after:
    a runtime folder (``XDG_RUNTIME_DIR``) whose sockets must fit in the 103 bytes a socket path
    may have, whatever the length of pytest's temp folders (pytest-xdist adds one per worker)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
