"""Heavy-stack benchmark (`make bench` runs it after bench/reload.py): the built-in Python plan on
a project that preloads numpy, pandas, scipy, sympy and Django.

A benchmark, not a test: it prints tables, and fails only when something does not work (a command
exits non-zero or prints something else than its cold twin, a master does not boot, the phases
keep restarting while measured, a process is left behind).

The fixture, generated in a temp dir, has no zeus.json: `zeus start` runs the built-in plan
(boot -> app -> test_environment). Its pyproject.toml preloads the stack in ``boot``
(``[tool.zeus] preload``) and its own package ``heavyapp`` in ``app``; ``test_environment`` loads
pytest, the installed plugins and the root conftest.py. One test file with one test, a script.py
doing a small computation with every library (its output is checked, cold and warm), and an
imports.py that only needs the stack loaded (the floor of a command on this stack).
PYTHONDONTWRITEBYTECODE is dropped from the environment: the first (discarded) cold runs write
the .pyc files and pytest's rewritten-assertion caches, as on a developer's machine.

Measured in one run, each interpreter and script named by its exact path:
  1) cold ``pytest tests/test_one.py`` (the venv's pytest script) against
     ``zeus pytest tests/test_one.py``, and cold ``python script.py`` (and ``imports.py``)
     against ``zeus run script.py`` (``imports.py``): wall-clock ms (spawn to exit, output read
     from pipes), median and p90 (nearest rank); speed-up = the cold median / this median. The
     cold runs come first, with no master up; then the warm ones against a ready master. Each
     pair is interleaved (order rotating) after discarded warm-up rounds.
  2) each phase's boot time (``boot_seconds`` of ``zeus status --json``), RSS and private memory
     (smaps_rollup), for both masters of (3), and the wall-clock time from `zeus start` to every
     phase ready.
  3) memory: a command's private memory (Private_Clean + Private_Dirty of
     /proc/self/smaps_rollup, read by the command itself while it runs: ``zeus run -c``) against
     the RSS of the phase it forks from (``app``, pid from ``zeus status --json``), with the
     shim's ``gc.freeze()`` before every fork (the default) and without (a second master started
     with ZEUSPY_GC_FREEZE=0; the command checks gc.get_freeze_count()). Three commands: ``idle``
     (reads its smaps, nothing else), ``gc.collect()`` (one full collection, no allocation) and
     ``records + gc`` (100,000 small dicts into a pandas DataFrame, dropped, then gc.collect():
     what a real command does). A full collection writes to every object it traverses (gc_refs in
     the GC header), so without gc.freeze it copies every page of the phase's heap that holds a
     tracked object. ``vs gc.freeze``: private MB against the same command with gc.freeze.

A section during which a phase restarted (a file it loaded changed, e.g. zeuspy's own sources
being edited) is measured again, up to ATTEMPTS times.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from projects import (  # bench/ is on sys.path: run as a script
    BenchError,
    Master,
    bench_env,
    run_guarded,
    smaps_mb,
    table,
    zeus_status,
)

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
PYTHON = str(VENV_BIN / "python")
PYTEST = str(VENV_BIN / "pytest")
ZEUS = str(VENV_BIN / "zeus")

COLD_WARMUP = 1  # discarded cold runs of each kind (they also write the .pyc caches)
COLD_RUNS = 5
WARM_WARMUP = 3
WARM_RUNS = 30
MEMORY_RUNS = 5  # runs of each memory command
ATTEMPTS = 3  # measurements of a section when the phases restart during one
BOOT_TIMEOUT = 120.0
RUN_TIMEOUT = 60.0
PHASES = ("boot", "app", "test_environment")
GC_FREEZE_ENV = "ZEUSPY_GC_FREEZE"
STACK = ("numpy", "pandas", "scipy", "sympy", "django")

# -- the fixture ----------------------------------------------------------------------------------
PRELOAD = (
    "numpy", "pandas", "scipy", "scipy.stats", "scipy.optimize", "scipy.sparse",
    "scipy.sparse.linalg", "scipy.signal", "scipy.interpolate", "scipy.integrate", "sympy",
    "django", "django.conf", "django.db.models", "django.forms", "django.template",
    "django.test",
)

FIXTURE = {
    "pyproject.toml": f"""
        [project]
        name = "heavyapp"
        version = "0.1.0"

        [tool.zeus]
        preload = {json.dumps(list(PRELOAD))}
        app = ["heavyapp", "heavyapp.report"]

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        pythonpath = ["."]
        """,
    "heavyapp/__init__.py": '''
        """A small app on a heavy stack: numbers (numpy, pandas, scipy), symbols (sympy), a web
        layer (Django, configured without a settings module, its ORM on in-memory SQLite)."""
        from heavyapp.settings import configure

        configure()
        ''',
    "heavyapp/settings.py": """
        import django
        from django.conf import settings


        def configure():
            if settings.configured:
                return
            settings.configure(
                DEBUG=False,
                SECRET_KEY="bench",
                USE_TZ=True,
                INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
                DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                                       "NAME": ":memory:"}},
                TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
            )
            django.setup()
        """,
    "heavyapp/report.py": """
        import numpy as np
        import pandas as pd
        import sympy
        from django.template import engines
        from django.utils.text import slugify
        from scipy import optimize, stats

        TEMPLATE = (
            "{% for g in groups %}{{ g.slug }}: mean {{ g.mean|floatformat:3 }} "
            "sd {{ g.std|floatformat:3 }} n {{ g.count }}\\n{% endfor %}"
            "t {{ t|floatformat:4 }} p {{ p|floatformat:4 }}\\n"
            "root of {{ poly }}: {{ root|floatformat:6 }}\\n"
        )


        def sample(n=2000, seed=7):
            rng = np.random.default_rng(seed)
            return pd.DataFrame({"group": rng.integers(0, 4, n),
                                 "value": rng.normal(10.0, 2.0, n)})


        def summary(frame):
            table = frame.groupby("group")["value"].agg(["mean", "std", "count"])
            a = frame.loc[frame.group == 0, "value"]
            b = frame.loc[frame.group == 1, "value"]
            t, p = stats.ttest_ind(a, b)
            x = sympy.symbols("x")
            poly = x**3 - 2 * x - 5
            root = optimize.brentq(sympy.lambdify(x, poly, "numpy"), 0, 3)
            groups = [{"slug": slugify(f"Group {g}"), "mean": row["mean"], "std": row["std"],
                       "count": int(row["count"])} for g, row in table.iterrows()]
            return {"groups": groups, "t": float(t), "p": float(p), "poly": str(poly),
                    "root": float(root)}


        def render(result):
            return engines["django"].from_string(TEMPLATE).render(result)
        """,
    "conftest.py": """
        import pytest

        from heavyapp import report


        @pytest.fixture
        def frame():
            return report.sample()
        """,
    "tests/test_one.py": """
        from heavyapp import report


        def test_summary(frame):
            result = report.summary(frame)
            assert abs(result["root"] - 2.0945514815) < 1e-6
            assert sum(g["count"] for g in result["groups"]) == len(frame)
            assert "group-0: mean" in report.render(result)
        """,
    "script.py": """
        from heavyapp import report

        print(report.render(report.summary(report.sample())), end="")
        """,
    # The floor: a program that only needs the stack loaded.
    "imports.py": """
        import django, numpy, pandas, scipy.stats, sympy  # noqa: F401
        import heavyapp  # noqa: F401

        print("stack loaded")
        """,
}

#: ``zeus run -c MEMORY_CODE WORKLOAD``: do WORKLOAD, then print the command's own memory
#: (smaps_rollup, kB) and its gc state as one JSON line.
MEMORY_CODE = """\
import gc, json, sys
if sys.argv[1] == "gc":
    gc.collect()
elif sys.argv[1] == "records":
    import pandas
    records = [{"id": i, "name": f"item {i}", "tags": [i % 7, i % 11]} for i in range(100_000)]
    frame = pandas.DataFrame.from_records(records)
    assert int(frame["id"].sum()) == 4_999_950_000
    del records, frame
    gc.collect()
fields = {}
with open("/proc/self/smaps_rollup") as rollup:
    for line in rollup:
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            fields[parts[0].rstrip(":")] = int(parts[1])
print(json.dumps({"kb": fields, "frozen": gc.get_freeze_count()}))
"""
MEMORY_WORKLOADS = (("idle", "idle"), ("gc.collect()", "gc"), ("records + gc", "records"))


def write_fixture(root: Path) -> Path:
    for rel, text in FIXTURE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root



# -- processes ------------------------------------------------------------------------------------
def run(argv: list[str], root: Path, env: dict[str, str],
        timeout: float = RUN_TIMEOUT) -> tuple[float, str]:
    """(milliseconds, stdout) of ``argv`` in ``root``, stdin /dev/null, stdout and stderr pipes
    read to EOF; BenchError when it exits non-zero or runs past ``timeout``."""
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=root, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv[:3])} ... did not finish in {timeout:.0f} s") from None
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv[:3])} ... exited {done.returncode}; output:\n"
                         f"{(done.stdout + done.stderr).decode(errors='replace')}")
    return elapsed * 1000, done.stdout.decode(errors="replace")


def status(root: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """(exit status, answer) of `zeus status --json` in ``root``."""
    return zeus_status(ZEUS, root, env)


class HeavyMaster(Master):
    """projects.Master on the fixture, with its phases and bounds: returned once every phase is
    ready and steady (``ready_after``: seconds from `zeus start`); :meth:`stop` asks `zeus stop`
    first, and a master that had to be killed is a BenchError."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        started = time.monotonic()
        super().__init__(ZEUS, root, env, boot_timeout=BOOT_TIMEOUT)
        try:
            self.wait_ready(PHASES)
            self.ready_after = time.monotonic() - started
            self.wait_steady()
        except BaseException:
            self.stop()
            raise

    @property
    def master(self) -> Master:
        """Itself: bench/suites.py reads ``master.master.details()``."""
        return self

    def stop(self, ask: bool = True) -> int | None:
        status = super().stop(ask)
        if status is None:
            raise BenchError(f"the master in {self.root} did not stop; killed\n{self.details()}")
        return status


# -- statistics and output ------------------------------------------------------------------------
def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank


def describe_machine(env: dict[str, str]) -> None:
    versions = subprocess.run(
        [PYTHON, "-c", "import importlib, sys; print(sys.version.split()[0], *(m + ' ' + "
         f"importlib.import_module(m).__version__ for m in {STACK!r}), sep=', ')"],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True,
    ).stdout.strip()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("zeuspy heavy-stack benchmark")
    print(f"python:   {PYTHON} -> {os.path.realpath(PYTHON)}")
    print(f"          {versions}")
    print(f"pytest:   {PYTEST}")
    print(f"zeus:     {ZEUS}")
    print(f"machine:  {platform.platform()}, {platform.machine()}, nproc {cpus}")
    print(f"load:     {load()} (1, 5, 15 min; other work on the machine slows the cold runs most)")


def load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# -- the measurements -----------------------------------------------------------------------------
Kind = tuple[list[str], Callable[[str], bool]]  # argv, check of its stdout


def interleaved(kinds: dict[str, Kind], root: Path, env: dict[str, str], warmup: int,
                runs: int) -> dict[str, list[float]]:
    """``warmup`` discarded then ``runs`` timed rounds, each running every kind once (order
    rotating); each run's stdout must pass its kind's check."""
    names = list(kinds)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + runs):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            argv, check = kinds[name]
            took, out = run(argv, root, env)
            if not check(out):
                raise BenchError(f"{' '.join(argv)}: unexpected output:\n{out}")
            if index >= warmup:
                samples[name].append(took)
    return samples


def latency_rows(cold: dict[str, list[float]], warm: dict[str, list[float]]
                 ) -> list[tuple[str, ...]]:
    rows = []
    for cold_label, warm_label in ((f"cold {PYTEST} tests/test_one.py",
                                    "zeus pytest tests/test_one.py"),
                                   (f"cold {PYTHON} script.py", "zeus run script.py"),
                                   (f"cold {PYTHON} imports.py", "zeus run imports.py")):
        base = statistics.median(cold[cold_label])
        for label, samples in ((cold_label, cold[cold_label]), (warm_label, warm[warm_label])):
            median = statistics.median(samples)
            rows.append((label, str(len(samples)), f"{median:.1f}", f"{p90(samples):.1f}",
                         f"{base / median:.1f}x"))
    return rows


def phase_rows(label: str, master: HeavyMaster) -> list[tuple[str, ...]]:
    rows = []
    for phase in master.last_status["phases"]:
        memory = smaps_mb(phase["pid"])
        rows.append((label, phase["name"], str(phase["pid"]), f"{phase['boot_seconds']:.2f}",
                     f"{memory['Rss']:.0f}", f"{memory['Private']:.0f}"))
    rows.append((label, "(zeus start -> all ready)", "", f"{master.ready_after:.2f}", "", ""))
    return rows


Memory = dict[str, tuple[list[float], float, list[float]]]


def measure_memory(master: HeavyMaster, freeze: bool) -> Memory:
    """For each workload: (the command's private MB per run, its phase's RSS MB, ms per run)."""
    phase = next(c["phase"] for c in master.last_status["commands"] if c["name"] == "run")
    pid = master.pids()[phase]
    found: Memory = {}
    for what, workload in MEMORY_WORKLOADS:
        private, rss, took = [], [], []
        for _ in range(MEMORY_RUNS):
            ms, out = run([ZEUS, "run", "-c", MEMORY_CODE, workload], master.root, master.env)
            took.append(ms)
            report = json.loads(out.strip().splitlines()[-1])
            if (report["frozen"] > 0) != freeze:
                raise BenchError(f"the command saw {report['frozen']} frozen objects "
                                 f"(gc.freeze {'on' if freeze else 'off'} in the master)")
            private.append((report["kb"]["Private_Clean"] + report["kb"]["Private_Dirty"]) / 1024)
            rss.append(smaps_mb(pid)["Rss"])
        found[what] = (private, statistics.median(rss), took)
    return found


def memory_rows(results: dict[str, Memory]) -> list[tuple[str, ...]]:
    rows = []
    base = results["gc.freeze"]
    for label, found in results.items():
        for what, (private, rss, took) in found.items():
            median = statistics.median(private)
            ratio = median / statistics.median(base[what][0])
            rows.append((label, what, f"{median:.1f}", f"{p90(private):.1f}", f"{rss:.0f}",
                         f"{100 * median / rss:.1f} %", f"{ratio:.2f}x",
                         f"{statistics.median(took):.0f}"))
    return rows


def bench(work: Path, mark: str) -> None:
    env = bench_env(mark)
    env.pop(GC_FREEZE_ENV, None)
    describe_machine(env)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("note:     PYTHONDONTWRITEBYTECODE dropped for the benchmark: .pyc files and "
              "pytest's rewritten-assertion caches are written, as on a developer's machine")
    root = write_fixture(work / "heavyproject")
    # Compile the fixture as its first runs would: a .pyc written while a phase boots counts as
    # a change to a file it loaded, and boots that phase again.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(root)], env=env, check=True,
                   timeout=RUN_TIMEOUT)
    print(f"fixture:  {root}\npreload:  {', '.join(PRELOAD)}", flush=True)

    began = time.monotonic()
    _, expected = run([PYTHON, "script.py"], root, env)
    if "root of x**3 - 2*x - 5: 2.094551" not in expected:
        raise BenchError(f"script.py printed:\n{expected}")

    def passed(out: str) -> bool:
        return "1 passed" in out

    def same(out: str) -> bool:
        return out == expected

    def loaded(out: str) -> bool:
        return out == "stack loaded\n"

    print(f"\ncold: {COLD_WARMUP} warm-up + {COLD_RUNS} interleaved runs of each, no master up",
          flush=True)
    cold = interleaved({f"cold {PYTEST} tests/test_one.py": ([PYTEST, "tests/test_one.py"],
                                                             passed),
                        f"cold {PYTHON} script.py": ([PYTHON, "script.py"], same),
                        f"cold {PYTHON} imports.py": ([PYTHON, "imports.py"], loaded)},
                       root, env, COLD_WARMUP, COLD_RUNS)
    print(f"  took {time.monotonic() - began:.0f} s", flush=True)

    phases: list[tuple[str, ...]] = []
    memory: dict[str, Memory] = {}
    print("booting the built-in plan (gc.freeze, the default) ...", flush=True)
    master = HeavyMaster(root, env)
    try:
        print(f"  ready after {master.ready_after:.2f} s; warm: {WARM_WARMUP} warm-up + "
              f"{WARM_RUNS} interleaved runs of each", flush=True)
        began = time.monotonic()
        warm = master.steady("the warm runs", lambda: interleaved(
            {"zeus pytest tests/test_one.py": ([ZEUS, "pytest", "tests/test_one.py"], passed),
             "zeus run script.py": ([ZEUS, "run", "script.py"], same),
             "zeus run imports.py": ([ZEUS, "run", "imports.py"], loaded)},
            root, env, WARM_WARMUP, WARM_RUNS), ATTEMPTS)
        print(f"  took {time.monotonic() - began:.0f} s; memory: {MEMORY_RUNS} runs of each "
              "command", flush=True)
        memory["gc.freeze"] = master.steady("the memory runs",
                                            lambda: measure_memory(master, freeze=True),
                                            ATTEMPTS)
        phases += phase_rows("gc.freeze", master)
    finally:
        master.stop()

    label = f"{GC_FREEZE_ENV}=0"
    print(f"booting the built-in plan again with {label} ...", flush=True)
    no_freeze = HeavyMaster(root, {**env, GC_FREEZE_ENV: "0"})
    try:
        print(f"  ready after {no_freeze.ready_after:.2f} s; memory: {MEMORY_RUNS} runs of each "
              "command", flush=True)
        memory[label] = no_freeze.steady("the memory runs",
                                         lambda: measure_memory(no_freeze, freeze=False),
                                         ATTEMPTS)
        phases += phase_rows(label, no_freeze)
    finally:
        no_freeze.stop()

    table("1) cold process vs the same command through zeus (wall-clock ms, pipes; speed-up = "
          "cold median / median)", ("what", "n", "median ms", "p90 ms", "speed-up"),
          latency_rows(cold, warm))
    table("2) phases of the built-in plan (boot s: boot_seconds of zeus status --json; MB from "
          "smaps_rollup)", ("master", "phase", "pid", "boot s", "RSS MB", "private MB"), phases)
    table(f"3) a `zeus run -c` command's private memory (Private_Clean + Private_Dirty, read by "
          f"itself; median and p90 of {MEMORY_RUNS}) vs the RSS of its phase (app)",
          ("master", "command", "private MB", "p90 MB", "phase RSS MB", "private/RSS",
           "vs gc.freeze", "median ms"), memory_rows(memory))
    print(f"\nload at the end: {load()}")


def main() -> int:
    for tool in (PYTHON, PYTEST, ZEUS):
        if not os.access(tool, os.X_OK):
            print(f"heavy bench: {tool} not found; run `make bench` (it installs the project)",
                  file=sys.stderr)
            return 2
    return run_guarded("heavy bench", "zeuspy-heavy-bench-", "the fixture", bench)


if __name__ == "__main__":
    sys.exit(main())
