"""Temp projects, real masters and leak checks for the benchmark (bench/*.py) and the demo
(examples/demo.py).

Every process the benchmark or the demo starts carries ``ZEUSPY_BENCH_MARK=<unique id>`` in its
environment (phases, runners and commands inherit it), so :func:`leftovers` finds anything left
behind by reading ``/proc/*/environ`` (and, given a folder, the working directories).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

MARK_ENV = "ZEUSPY_BENCH_MARK"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

#: boot -> app -> noop: the no-op command forks from ``app``.
TREE = {"boot": {"app": {"noop": None}}}
PHASES = ("boot", "app")

#: The light plan: nothing to preload; measures zeuspy's own overhead.
LIGHT_PLAN = """
import zeuspy

class BenchPlan(zeuspy.Plan):
    def boot(self):
        pass

    def app(self):
        pass

    def noop(self, argv):
        return None
"""

#: Standard-library modules the heavy plan's boot imports (a stand-in for a real app's framework).
HEAVY_MODULES = (
    "asyncio", "email.message", "email.parser", "email.policy", "http.server", "http.client",
    "xml.dom.minidom", "xml.etree.ElementTree", "sqlite3", "argparse", "logging.handlers",
    "decimal", "json", "csv", "urllib.request", "zipfile", "tarfile", "difflib", "pydoc",
    "unittest", "statistics", "fractions", "configparser", "tempfile", "inspect", "dataclasses",
)

HEAVY_PLAN = f"""
import importlib
import zeuspy

MODULES = {HEAVY_MODULES!r}

class BenchPlan(zeuspy.Plan):
    def boot(self):
        for name in MODULES:
            importlib.import_module(name)

    def app(self):
        pass

    def noop(self, argv):
        return None
"""

#: The cold equivalent of `zeus COMMAND ARGS`, as `python -c COLD PLAN_FILE PHASES METHOD ARGS...`:
#: import the plan file, run the command's phase actions in order, then the command.
COLD = """\
import importlib.util, sys
plan_file, phases, method, argv = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4:]
spec = importlib.util.spec_from_file_location("zeus_plan", plan_file)
module = importlib.util.module_from_spec(spec)
sys.modules["zeus_plan"] = module
spec.loader.exec_module(module)
import zeuspy
plans = [v for v in vars(module).values()
         if isinstance(v, type) and issubclass(v, zeuspy.Plan) and v is not zeuspy.Plan]
plan = [c for c in plans if not any(o is not c and issubclass(o, c) for o in plans)][0]()
for phase in phases:
    getattr(plan, phase.replace("-", "_"))()
sys.argv = [method, *argv]
sys.exit(getattr(plan, method.replace("-", "_"))(argv))
"""


class BenchError(Exception):
    """A failure that ends the benchmark with one message."""


def write_project(root: Path, plan: str) -> Path:
    root.mkdir(parents=True)
    (root / "zeus.json").write_text(json.dumps({"plan": TREE}, indent=2) + "\n")
    (root / "zeus_plan.py").write_text(textwrap.dedent(plan).lstrip())
    return root


def cold_argv(python: str, root: Path, command: str = "noop") -> list[str]:
    return [python, "-c", COLD, str(root / "zeus_plan.py"), ",".join(PHASES), command]


def bench_env(mark: str) -> dict[str, str]:
    env = dict(os.environ)
    env[MARK_ENV] = mark
    # setproctitle would reuse the environment's memory for long titles, and the leak check
    # reads the mark from /proc/PID/environ.
    env["SPT_NOENV"] = "1"
    env.pop("ZEUSSOCK", None)
    return env


class Master:
    """`zeus start` in a project, its output captured to a file next to the project."""

    def __init__(self, zeus: str, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.output_path = root.parent / f"{root.name}.master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([zeus, "start"], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def details(self) -> str:
        log = self.root / ".zeus" / "master.log"
        text = log.read_text(errors="replace") if log.exists() else "(no master.log)"
        tail = "\n".join(text.splitlines()[-30:])
        return f"--- master output ---\n{self.output}--- .zeus/master.log (end) ---\n{tail}"

    def wait_ready(self, phases: tuple[str, ...] = PHASES, timeout: float = BOOT_TIMEOUT) -> float:
        """Seconds until every phase printed `NAME: ready`; BenchError on crash, exit or timeout."""
        start = time.monotonic()
        while True:
            output = self.output
            if all(f" {name}: ready" in output for name in phases):
                return time.monotonic() - start
            if any(f" {name}: crashed" in output for name in phases):
                raise BenchError(f"a phase crashed\n{self.details()}")
            if self.proc.poll() is not None:
                raise BenchError(f"the master exited early ({self.proc.returncode})\n"
                                 f"{self.details()}")
            if time.monotonic() - start > timeout:
                raise BenchError(f"phases not ready after {timeout:.0f} s\n{self.details()}")
            time.sleep(0.02)

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status (None if it had to be killed)."""
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                return None
        finally:
            self._out.close()


def leftovers(mark: str, root: Path | None = None) -> list[tuple[int, str]]:
    """(pid, cmdline) of live, non-zombie processes whose environment carries ``mark`` or, with
    ``root``, whose working directory is inside it (setproctitle may reuse the environment's
    memory for long process titles)."""
    found = []
    needle = f"{MARK_ENV}={mark}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                marked = needle in f.read().split(b"\0")
            if not marked and root is not None:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                marked = cwd == str(root) or cwd.startswith(f"{root}/")
            if not marked:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry), cmdline))
    return found


def ensure_nothing_left(mark: str, grace: float = 3.0, root: Path | None = None) -> None:
    """Wait up to ``grace`` s for the processes :func:`leftovers` finds to go; kill and report
    any that stay."""
    deadline = time.monotonic() + grace
    left = leftovers(mark, root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = leftovers(mark, root)
    if left:
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        listing = "\n".join(f"  pid {pid}: {cmdline}" for pid, cmdline in left)
        raise BenchError(f"processes left running after the masters stopped (now killed):\n"
                         f"{listing}")


def table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print ``rows`` under ``title`` as aligned columns (first left, others right)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for i, row in enumerate([header, *rows]):
        print("  " + "  ".join(str(c).rjust(w) if j else str(c).ljust(w)
                               for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def run_guarded(name: str, prefix: str, where: str, bench: Callable[[Path, str], None]) -> int:
    """``bench(work, mark)`` in a fresh temp folder, then the leak checks on every path: what is
    left carrying ``mark`` (or running in ``work``: the phases' titles overwrite their
    environment in /proc) is killed and reported. 0 when it ran and left nothing, else 1, with
    each failure on stderr as ``NAME FAILED: ...``."""
    started = time.monotonic()
    mark = uuid.uuid4().hex
    work = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    failures = []
    try:
        bench(work, mark)
    except BenchError as exc:
        failures.append(str(exc))
    except subprocess.SubprocessError as exc:  # version checks, compileall
        failures.append(str(exc))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        try:
            ensure_nothing_left(mark)
        except BenchError as exc:
            failures.append(str(exc))
        stray = leftovers(mark, work)
        for pid, _ in stray:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if stray:
            failures.append(f"processes left running in {where} (now killed):\n" +
                            "\n".join(f"  pid {pid}: {cmdline}" for pid, cmdline in stray))
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        for failure in failures:
            print(f"\n{name} FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"\n{name} done in {time.monotonic() - started:.0f} s; no process left running")
    return 0
