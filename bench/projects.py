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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

MARK_ENV = "ZEUSPY_BENCH_MARK"
BOOT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
STATUS_TIMEOUT = 15.0
#: `zeus stop`'s own bound: it waits 15 s, then sends SIGKILL and gives up 2 s later.
ZEUS_STOP_TIMEOUT = 20.0
T = TypeVar("T")

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
    """`zeus start ARGS` in a project, its output captured to a file next to the project. Every
    wait is bounded and raises :class:`BenchError` with :meth:`details` when it runs out."""

    def __init__(self, zeus: str, root: Path, env: dict[str, str], args: Sequence[str] = (),
                 boot_timeout: float = BOOT_TIMEOUT) -> None:
        self.zeus = zeus
        self.root = root
        self.env = env
        #: How long :meth:`wait_ready` and :meth:`wait_steady` wait unless told.
        self.boot_timeout = boot_timeout
        #: The last answer of `zeus status --json` (:meth:`wait_steady`), else empty.
        self.last_status: dict[str, Any] = {}
        self.output_path = root.parent / f"{root.name}.master.out"
        self._out = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([zeus, "start", *args], cwd=root, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def details(self) -> str:
        log = self.root / ".zeus" / "master.log"
        text = log.read_text(errors="replace") if log.exists() else "(no master.log)"
        tail = "\n".join(text.splitlines()[-30:])
        return f"--- master output ---\n{self.output}--- .zeus/master.log (end) ---\n{tail}"

    def wait(self, predicate: Callable[[str], T], timeout: float, what: str,
             interval: float = 0.02) -> T:
        """The first true value of ``predicate(output)``, polled every ``interval`` s;
        BenchError when the master exits or ``timeout`` runs out first."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.output)
            if value:
                return value
            if self.proc.poll() is not None:
                raise BenchError(f"the master exited ({self.proc.returncode}) while waiting for "
                                 f"{what}\n{self.details()}")
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 f"{self.details()}")
            time.sleep(interval)

    def wait_ready(self, phases: tuple[str, ...] = PHASES, timeout: float | None = None) -> float:
        """Seconds until every phase printed `NAME: ready`; BenchError on crash, exit or timeout
        (:attr:`boot_timeout` unless given)."""
        start = time.monotonic()

        def ready(output: str) -> bool:
            if any(f" {name}: crashed" in output for name in phases):
                raise BenchError(f"a phase crashed\n{self.details()}")
            return all(f" {name}: ready" in output for name in phases)

        self.wait(ready, timeout or self.boot_timeout, "the phases to be ready")
        return time.monotonic() - start

    def query_status(self) -> tuple[int, dict[str, Any]]:
        """(exit status, answer) of `zeus status --json` in the project."""
        return zeus_status(self.zeus, self.root, self.env)

    def wait_steady(self, timeout: float | None = None) -> dict[str, Any]:
        """`zeus status --json` once every phase is ready (polled), kept in
        :attr:`last_status`; BenchError on a crash, the master's exit or ``timeout``
        (:attr:`boot_timeout` unless given)."""
        timeout = timeout or self.boot_timeout
        deadline = time.monotonic() + timeout
        while True:
            code, answer = self.query_status()
            if code == 0:
                self.last_status = answer
                return answer
            if code == 1 or self.proc.poll() is not None:
                raise BenchError(f"a phase crashed or the master exited\n{self.details()}")
            if time.monotonic() > deadline:
                raise BenchError(f"phases not ready after {timeout:.0f} s\n{self.details()}")
            time.sleep(0.1)

    def pids(self) -> dict[str, int]:
        """Each phase's pid in :attr:`last_status`."""
        return {phase["name"]: phase["pid"] for phase in self.last_status["phases"]}

    def steady(self, what: str, measure: Callable[[], T], attempts: int = 3) -> T:
        """``measure()``, again (``attempts`` times at most) if a phase restarted meanwhile (a
        file the phases loaded changed: zeuspy's own sources when someone edits them)."""
        for _ in range(attempts):
            before = self.pids()
            lines = len(self.output.splitlines())
            result = measure()
            code, answer = self.query_status()
            if code == 0 and {p["name"]: p["pid"] for p in answer["phases"]} == before:
                return result
            why = [line for line in self.output.splitlines()[lines:] if "chang" in line]
            print(f"  the phases restarted during {what} ({why[0] if why else 'no reason shown'})"
                  "; measuring again", flush=True)
            self.wait_steady()
        raise BenchError(f"the phases kept restarting during {what}\n{self.details()}")

    def stop(self, ask: bool = False) -> int | None:
        """SIGTERM (after `zeus stop` when ``ask``), a bounded wait, then SIGKILL; the exit
        status (None if it had to be killed)."""
        try:
            if ask and self.proc.poll() is None:
                try:
                    subprocess.run([self.zeus, "stop"], cwd=self.root, env=self.env,
                                   stdin=subprocess.DEVNULL, capture_output=True,
                                   timeout=ZEUS_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
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


def zeus_status(zeus: str, root: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(exit status, answer) of `zeus status --json` in ``root`` (docs/status.md)."""
    try:
        done = subprocess.run([zeus, "status", "--json"], cwd=root, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=STATUS_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError("zeus status --json did not answer") from None
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise BenchError(f"zeus status --json printed no JSON (exit {done.returncode}):\n"
                         f"{done.stdout!r} {done.stderr!r}") from None


def smaps_mb(pid: int) -> dict[str, float]:
    """/proc/PID/smaps_rollup in MB, plus ``Private`` (Private_Clean + Private_Dirty)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    fields["Private"] = fields["Private_Clean"] + fields["Private_Dirty"]
    return fields


def cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds ``pid`` has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # After the command name: state is fields[0]; utime and stime are stat fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
