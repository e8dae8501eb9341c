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

import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from projects import (  # bench/ is on sys.path: run as a script
    PHASES,
    BenchError,
    Master,
    bench_env,
    cpu_seconds,
    run_guarded,
    smaps_mb,
    table,
    write_project,
)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
ZEUS = str(VENV_BIN / "zeus")

RUNS = 5
CHANGE_TIMEOUT = 10.0
IDLE_SECONDS = 5.0
#: Wait after the phases are ready before measuring idle: the master hashes the 10,000 reported
#: files and the watcher rechecks them once after opening their folders.
SETTLE_SECONDS = 3.0
#: Pause after a master is up before the first change, and between runs: the event watcher opens
#: newly reported folders a little late, and the previous restart must be over.
SETTLE = 0.5
POLL_OUTPUT = 0.002

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


def write_reload_project(root: Path) -> Path:
    """The plan's project, with ``mypkg`` (loaded by ``boot``) and ``mypkg.leaf`` (by ``app``)."""
    write_project(root, PLAN)
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text("VALUE = 0\n")
    (root / "mypkg" / "leaf.py").write_text("LEAF = 0\n")
    return root


@contextmanager
def running(root: Path, mark: str, *args: str, **env: str) -> Iterator[Master]:
    """A master on a new project in ``root`` (`zeus start ARGS`, ``env`` added to the bench's),
    ready and settled; stopped on the way out (BenchError if it had to be killed)."""
    master = Master(ZEUS, write_reload_project(root), {**bench_env(mark), **env}, args)
    try:
        master.wait_ready()
        time.sleep(SETTLE)
        yield master
    finally:
        if master.stop() is None:
            raise BenchError(f"the master in {root} did not stop on SIGTERM")


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
    path = master.root / rel
    text = path.read_text().split("\n")[0] + f"\n# run {run} {time.time_ns()}\n"
    began = time.perf_counter()
    path.write_text(text)
    master.wait(lambda out: all(len(ready_lines(out, p)) > before[p] for p in phases),
                CHANGE_TIMEOUT, f"{rel} to restart {phases}", POLL_OUTPUT)
    took = time.perf_counter() - began
    out = master.output
    own = sum(ready_lines(out, p)[before[p]] for p in phases)
    if any(len(ready_lines(out, p)) != before[p] + 1 for p in phases):
        raise BenchError(f"{rel}: a phase restarted more than once:\n{out[-2000:]}")
    return took, own


def bench_save_to_ready(workdir: Path, mark: str) -> list[tuple[str, ...]]:
    rows = []
    for delay in (None, 0.05):
        args = () if delay is None else ("--file-change-delay", str(delay))
        effective = 0.3 if delay is None else delay
        with running(workdir / f"s2r-{delay}", mark, *args) as master:
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


def bench_idle(workdir: Path, mark: str) -> list[tuple[str, ...]]:
    rows = []
    many = workdir / "many"
    files = make_many(many)
    for label, args, tracked in (("events, plan only", (), False),
                                 ("events, 10,000 files", (), True),
                                 ("--poll 1, 10,000 files", ("--poll", "1"), True)):
        env = {"BENCH_TRACK_DIR": str(many)} if tracked else {}
        with running(workdir / f"idle-{len(rows)}", mark, *args, **env) as master:
            time.sleep(SETTLE_SECONDS)  # hashing of the reported files, the watcher's set-up
            pid = master.proc.pid
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(IDLE_SECONDS)
            cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
            rss = smaps_mb(pid)["Rss"]
            seen = "-"
            if tracked:  # prove the files are watched: a change to one restarts boot
                before = len(ready_lines(master.output, "boot"))
                began = time.perf_counter()
                files[7777].write_text("changed\n")
                master.wait(lambda out, n=before: len(ready_lines(out, "boot")) > n,
                            CHANGE_TIMEOUT, "a tracked file's change to restart boot",
                            POLL_OUTPUT)
                seen = ms(time.perf_counter() - began)
        rows.append((label, f"{cpu * 100:.2f} %", f"{rss:.1f}", seen))
        for path in files[7777:7778]:
            path.write_bytes(b"x\n")
    return rows


# -- c) detection latency -------------------------------------------------------------------------


def bench_detection(workdir: Path, mark: str) -> list[tuple[str, ...]]:
    rows = []
    for label, args in (("events", ()), ("--poll 0.1", ("--poll", "0.1")),
                        ("--poll 1", ("--poll", "1"))):
        root = workdir / f"detect-{len(rows)}"
        delay = 0.05
        marker = "mypkg/leaf.py changed: restarting app"
        with running(root, mark, *args, "--file-change-delay", str(delay)) as master:
            lat = []
            for run in range(RUNS):
                before = master.output.count(marker)
                readies = len(ready_lines(master.output, "app"))
                path = root / "mypkg" / "leaf.py"
                began = time.perf_counter()
                path.write_text(f"LEAF = {run + 1}  # {label}\n")  # never the same content
                master.wait(lambda out, n=before, m=marker: out.count(m) > n, CHANGE_TIMEOUT,
                            f"the change to be noticed ({label})", POLL_OUTPUT)
                lat.append(time.perf_counter() - began - delay)
                master.wait(lambda out, n=readies: len(ready_lines(out, "app")) > n,
                            CHANGE_TIMEOUT, "app to boot again", POLL_OUTPUT)
                time.sleep(SETTLE / 2 + (run % 3) * 0.13)  # vary the phase against the poll
        rows.append((label, ms(statistics.median(lat)), ms(min(lat)), ms(max(lat))))
    return rows


# -- output ---------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def bench(workdir: Path, mark: str) -> None:
    print(f"zeuspy reload benchmark: {sys.executable} ({sys.version.split()[0]}), "
          f"{os.cpu_count()} CPUs, medians of {RUNS} runs")
    table("save-to-ready (write a file -> the restarted phases print ready)",
          ("file changed", "delay s", "save-to-ready", "own boot", "overhead", "min", "max"),
          bench_save_to_ready(workdir, mark))
    table("master idle with tracked files (5 s idle; a change to one file restarts boot)",
          ("backend", "CPU", "RSS MB", "change -> boot ready"), bench_idle(workdir, mark))
    table("detection latency (write -> 'changed: restarting' line, minus the 0.05 s delay)",
          ("backend", "median", "min", "max"), bench_detection(workdir, mark))


def main() -> int:
    return run_guarded("reload bench", "zeuspy-reload-bench-", "the projects", bench)


if __name__ == "__main__":
    sys.exit(main())
