"""Reload benchmark (`make bench` runs it after bench/run.py): what a file change costs.

A benchmark, not a test: it prints tables, and fails only when something does not work (a master
does not boot, a change is not noticed, a process is left behind).

Measured in temp projects with real masters (the `zeus` beside this interpreter):
  a) save-to-ready: from writing a file to the master printing the restarted phase ready (its
     output polled every 2 ms), for a leaf's file (``mypkg/leaf.py``, loaded by ``app``) and a
     root file (``mypkg/__init__.py``, loaded by ``boot``: the whole tree reboots), with the default
     delay (0.3 s) and with ``--file-change-delay 0.05``; against the phases' own boot time as the
     master reports it (``ready in X s``). ``overhead`` = save-to-ready - delay - own boot time.
     ``boot`` imports a chunk of the standard library, ``app`` more of it.
  b) the master's idle CPU (utime+stime from /proc/<pid>/stat over 5 s of idling) and RSS with
     10,000 tracked files in 500 folders (the plan's boot calls ``zeuspy.track`` on each), for the
     events backend and ``--poll 1``, and with no extra tracked files for comparison;
  c) detection latency: from a write to the master's ``changed: restarting`` line, with events,
     ``--poll 0.1`` and ``--poll 1``.
Medians of ``RUNS`` runs each.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from projects import MARK_ENV, leftovers, table  # bench/ is on sys.path: run as a script

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
ZEUS = str(VENV_BIN / "zeus")

RUNS = 5
BOOT_TIMEOUT = 30.0
CHANGE_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IDLE_SECONDS = 5.0
#: Wait after the phases are ready before measuring idle: the master hashes the 10,000 reported
#: files and the watcher rechecks them once after opening their folders.
SETTLE_SECONDS = 3.0
#: Pause after a master is up before the first change, and between runs: the event watcher opens
#: newly reported folders a little late, and the previous restart must be over.
SETTLE = 0.5
POLL_OUTPUT = 0.002

TREE = {"boot": {"app": {"noop": None}}}
PHASES = ("boot", "app")

BOOT_MODULES = (
    "asyncio", "email.message", "email.parser", "http.server", "http.client", "xml.dom.minidom",
    "logging.handlers", "decimal", "json", "urllib.request", "unittest", "inspect", "dataclasses",
)
APP_MODULES = (
    "sqlite3", "argparse", "csv", "zipfile", "tarfile", "difflib", "pydoc", "statistics",
    "fractions", "configparser", "xml.etree.ElementTree", "tempfile",
)

PLAN = f"""
import importlib, os
import zeuspy

class ReloadBenchPlan(zeuspy.Plan):
    def boot(self):
        for name in {BOOT_MODULES!r}:
            importlib.import_module(name)
        import mypkg
        many = os.environ.get("BENCH_TRACK_DIR")
        if many:
            for folder in sorted(os.listdir(many)):
                for name in sorted(os.listdir(os.path.join(many, folder))):
                    zeuspy.track(os.path.join(many, folder, name))

    def app(self):
        for name in {APP_MODULES!r}:
            importlib.import_module(name)
        import mypkg.leaf

    def noop(self, argv):
        return None
"""


class BenchError(Exception):
    pass


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.mark = uuid.uuid4().hex
        (root / "mypkg").mkdir(parents=True)
        (root / "zeus.json").write_text(json.dumps({"plan": TREE}, indent=2))
        (root / "zeus_plan.py").write_text(textwrap.dedent(PLAN))
        (root / "mypkg" / "__init__.py").write_text("VALUE = 0\n")
        (root / "mypkg" / "leaf.py").write_text("LEAF = 0\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env[MARK_ENV] = self.mark
        env.pop("ZEUSSOCK", None)
        env.update(extra)
        return env


class Master:
    """A real `zeus start`, its output in a file."""

    def __init__(self, project: Project, args: tuple[str, ...], **env: str) -> None:
        self.project = project
        self.args = args
        self.out_path = project.root / f"master-{uuid.uuid4().hex[:6]}.out"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([ZEUS, "start", *args], cwd=project.root, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=project.env(**env))

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait(self, predicate: Callable[[str], object], timeout: float, what: str,
             interval: float = POLL_OUTPUT) -> object:
        deadline = time.perf_counter() + timeout
        while True:
            value = predicate(self.output)
            if value:
                return value
            if self.proc.poll() is not None:
                raise BenchError(f"the master exited while waiting for {what}:\n{self.output}")
            if time.perf_counter() > deadline:
                raise BenchError(f"timed out after {timeout} s waiting for {what}:\n"
                                 f"{self.output[-2000:]}")
            time.sleep(interval)

    def wait_ready(self) -> None:
        self.wait(lambda out: all(f"{p}: ready" in out for p in PHASES), BOOT_TIMEOUT,
                  "the phases to boot", 0.01)

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                raise BenchError("the master did not stop on SIGTERM") from None
        finally:
            self._out.close()


@contextmanager
def running(project: Project, *args: str, **env: str) -> Iterator[Master]:
    master = Master(project, args, **env)
    try:
        master.wait_ready()
        time.sleep(SETTLE)
        yield master
    finally:
        master.stop()


def ready_lines(output: str, phase: str) -> list[float]:
    """The ``ready in X s`` times printed for ``phase``, in order."""
    return [float(x) for x in re.findall(rf"^\S+ {re.escape(phase)}: ready in ([\d.]+) s$",
                                         output, re.MULTILINE)]


# -- a) save-to-ready -----------------------------------------------------------------------------


def save_to_ready(master: Master, rel: str, phases: tuple[str, ...], run: int
                  ) -> tuple[float, float]:
    """Write ``rel``; wait until each of ``phases`` printed one more ready line. (seconds from
    the write to the last of them, their own boot times summed)."""
    before = {p: len(ready_lines(master.output, p)) for p in phases}
    path = master.project.root / rel
    text = path.read_text().split("\n")[0] + f"\n# run {run} {time.time_ns()}\n"
    began = time.perf_counter()
    path.write_text(text)
    master.wait(lambda out: all(len(ready_lines(out, p)) > before[p] for p in phases),
                CHANGE_TIMEOUT, f"{rel} to restart {phases}")
    took = time.perf_counter() - began
    out = master.output
    own = sum(ready_lines(out, p)[before[p]] for p in phases)
    if any(len(ready_lines(out, p)) != before[p] + 1 for p in phases):
        raise BenchError(f"{rel}: a phase restarted more than once:\n{out[-2000:]}")
    return took, own


def bench_save_to_ready(workdir: Path) -> list[tuple[str, ...]]:
    rows = []
    for delay in (None, 0.05):
        project = Project(workdir / f"s2r-{delay}")
        args = () if delay is None else ("--file-change-delay", str(delay))
        effective = 0.3 if delay is None else delay
        with running(project, *args) as master:
            for label, rel, phases in (("leaf (app)", "mypkg/leaf.py", ("app",)),
                                       ("root (boot+app)", "mypkg/__init__.py", PHASES)):
                took, own = [], []
                for run in range(RUNS):
                    t, o = save_to_ready(master, rel, phases, run)
                    took.append(t)
                    own.append(o)
                    time.sleep(SETTLE)
                med, own_med = statistics.median(took), statistics.median(own)
                rows.append((label, f"{effective:g}", ms(med), ms(own_med),
                             ms(med - effective - own_med), ms(min(took)), ms(max(took))))
    return rows


# -- b) idle CPU and memory -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # After the command name: state is fields[0]; utime and stime are stat fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_many(folder: Path, dirs: int = 500, per_dir: int = 20) -> list[Path]:
    files = []
    for d in range(dirs):
        sub = folder / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(per_dir):
            path = sub / f"f{f:02}.txt"
            path.write_bytes(b"x\n")
            files.append(path)
    return files


def bench_idle(workdir: Path) -> list[tuple[str, ...]]:
    rows = []
    many = workdir / "many"
    files = make_many(many)
    for label, args, tracked in (("events, plan only", (), False),
                                 ("events, 10,000 files", (), True),
                                 ("--poll 1, 10,000 files", ("--poll", "1"), True)):
        project = Project(workdir / f"idle-{len(rows)}")
        env = {"BENCH_TRACK_DIR": str(many)} if tracked else {}
        with running(project, *args, **env) as master:
            time.sleep(SETTLE_SECONDS)  # hashing of the reported files, the watcher's set-up
            pid = master.proc.pid
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            rss = rss_mb(pid)
            seen = "-"
            if tracked:  # prove the files are watched: a change to one restarts boot
                before = len(ready_lines(master.output, "boot"))
                began = time.perf_counter()
                files[7777].write_text("changed\n")
                master.wait(lambda out, n=before: len(ready_lines(out, "boot")) > n,
                            CHANGE_TIMEOUT, "a tracked file's change to restart boot")
                seen = ms(time.perf_counter() - began)
        rows.append((label, f"{cpu * 100:.2f} %", f"{rss:.1f}", seen))
        for path in files[7777:7778]:
            path.write_bytes(b"x\n")
    return rows


# -- c) detection latency -------------------------------------------------------------------------


def bench_detection(workdir: Path) -> list[tuple[str, ...]]:
    rows = []
    for label, args in (("events", ()), ("--poll 0.1", ("--poll", "0.1")),
                        ("--poll 1", ("--poll", "1"))):
        project = Project(workdir / f"detect-{len(rows)}")
        delay = 0.05
        marker = "mypkg/leaf.py changed: restarting app"
        with running(project, *args, "--file-change-delay", str(delay)) as master:
            lat = []
            for run in range(RUNS):
                before = master.output.count(marker)
                readies = len(ready_lines(master.output, "app"))
                path = project.root / "mypkg" / "leaf.py"
                began = time.perf_counter()
                path.write_text(f"LEAF = {run + 1}  # {label}\n")  # never the same content
                master.wait(lambda out, n=before, m=marker: out.count(m) > n, CHANGE_TIMEOUT,
                            f"the change to be noticed ({label})")
                lat.append(time.perf_counter() - began - delay)
                master.wait(lambda out, n=readies: len(ready_lines(out, "app")) > n,
                            CHANGE_TIMEOUT, "app to boot again")
                time.sleep(SETTLE / 2 + (run % 3) * 0.13)  # vary the phase against the poll
        rows.append((label, ms(statistics.median(lat)), ms(min(lat)), ms(max(lat))))
    return rows


# -- output ---------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main() -> int:
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="zeuspy-reload-bench-")).resolve()
    marks: list[str] = []
    real_init = Project.__init__

    def remember(self: Project, root: Path) -> None:
        real_init(self, root)
        marks.append(self.mark)

    Project.__init__ = remember  # type: ignore[method-assign]
    status = 0
    try:
        print(f"zeuspy reload benchmark: {sys.executable} ({sys.version.split()[0]}), "
              f"{os.cpu_count()} CPUs, medians of {RUNS} runs")
        table("save-to-ready (write a file -> the restarted phases print ready)",
              ("file changed", "delay s", "save-to-ready", "own boot", "overhead", "min", "max"),
              bench_save_to_ready(workdir))
        table("master idle with tracked files (5 s idle; a change to one file restarts boot)",
              ("backend", "CPU", "RSS MB", "change -> boot ready"), bench_idle(workdir))
        table("detection latency (write -> 'changed: restarting' line, minus the 0.05 s delay)",
              ("backend", "median", "min", "max"), bench_detection(workdir))
    except BenchError as exc:
        print(f"\nreload bench FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        time.sleep(0.2)
        left = [pid for mark in marks for pid, _ in leftovers(mark, workdir)]
        for pid in set(left):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if left:
            print(f"reload bench FAILED: processes left behind: {sorted(set(left))}",
                  file=sys.stderr)
            status = 1
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(reload bench took {time.perf_counter() - began:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
