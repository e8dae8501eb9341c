"""Suites benchmark (`make bench` runs it after bench/heavy.py): whole test suites, side by side,
through five runners.

A benchmark, not a test: it prints a table, and fails only when something does not work (a
runner's counts or exit status differ from plain pytest's, a master does not boot, the phases keep
restarting, a process is left behind).

The suites, each a project in a temp dir (PYTHONDONTWRITEBYTECODE is dropped, as in heavy.py: the
first runs write the .pyc files and pytest's rewritten-assertion caches; each project is compiled
before its master starts, so that no .pyc written later counts as a change to a file a phase
loaded):
  churn  generated: CHURN_MODULES modules of pure-Python tests that allocate and drop many small
         objects (dicts, lists, strings, slotted instances), keep a little of each across tests,
         walk recursive call chains, and use function, module and session fixtures; the project's
         own package ``churnapp`` (what the built-in plan's boot imports).
  heavy  generated: heavy.py's fixture (numpy, pandas, scipy, sympy and Django preloaded by
         ``[tool.zeus] preload``) plus HEAVY_MODULES test modules of small computations with
         each library.
  attrs  the whole test suite of attrs ATTRS_VERSION, downloaded as an sdist with the venv's pip
         (cached in ``~/.cache/zeuspy-bench``) and unpacked; its ``src/`` made importable by
         adding ``pythonpath = ["src"]`` to its ``[tool.pytest.ini_options]`` (the ini file, not
         ``-o``: pytest-fast's daemon collects with the ini file and its own arguments only), and
         one test file of our own, ``tests/test_zeuspy_bench_source.py``, which fails unless
         ``attr`` and ``attrs`` come from that ``src/`` (the venv may have attrs installed). One
         test that fails in plain pytest too here is deselected (ATTRS_DESELECT), and the
         Hypothesis deadline of its conftest is turned off (ATTRS_DEADLINE).

The runners (columns), each named by its exact path, all with the same arguments (``-q``, and
the deselection for attrs):
  pytest             the venv's pytest script
  zeus pytest        through a master started in the project (the built-in plan)
  pytest -n 2        pytest-xdist, two workers
  zeus pytest -n 2   the same through zeus: two workers forked from the command after it
                     collected the suite once in the warm test phase (not xdist's, which start
                     cold: docs/plans.md, "zeus pytest -n N")
  pytest --fast      pytest-fast, as its documentation has users run it: ``pytest --fast`` starts
                     a resident daemon at the first run (here at PYTEST_FAST_ADDRESS, in the work
                     dir), which collects the suite once in a forkserver and lives ttl 600 s; each
                     later ``pytest --fast`` is a fresh pytest process that collects the suite
                     itself (so it imports what the tests import), sends the selection to the
                     daemon, which forks its workers (``os.cpu_count()`` by default) from the warm
                     forkserver and streams the reports back. The first run, which boots the
                     daemon, falls in the discarded warm-up round; the daemon is shut down after
                     the suite (its control socket's ``shutdown``).

Measured per suite, in one run: WARMUP discarded rounds then ROUNDS (attrs: ATTRS_ROUNDS; any suite:
``--rounds N``) timed rounds, each round running every column once (attrs's warm-up: only the
columns with a warm state, WARM_COLUMNS_LONG), its order rotated by one column each round; wall
clock from spawning the process to its exit, stdout and stderr read from pipes. Each run's counts
(from pytest's summary line: passed, failed, skipped, xfailed, xpassed, errors; not
``deselected``, which xdist does not report) and exit status must equal plain pytest's. A round
during which a zeus phase restarted (a file it loaded changed: zeuspy's own sources being edited)
or pytest-fast's daemon was booted again (it found its sources or environment changed) is run
again, up to ATTEMPTS times. The table shows each column's median seconds and its speed-up, plain
pytest's median / this median (above 1: faster than plain pytest).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import heavy  # bench/ is on sys.path: run as a script
from projects import BenchError, bench_env, ensure_nothing_left, run_guarded, table

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(os.environ.get("ZEUSPY_VENV", REPO / ".venv")) / "bin"
PYTHON = str(VENV_BIN / "python")
PYTEST = str(VENV_BIN / "pytest")
ZEUS = str(VENV_BIN / "zeus")

# The whole script takes about 4-5 minutes on 2 cores (`make bench` runs three more); `--rounds N`
# asks for N timed rounds of every suite, for a longer run on a quiet machine.
WARMUP = 1  # discarded rounds (pytest-fast's daemon boot, the rewritten-assertion caches, ...)
ROUNDS = 3  # timed rounds of churn and heavy (a round: 5-15 s)
ATTRS_ROUNDS = 2  # timed rounds of attrs (a round: about 45 s, five runs of a 6-12 s suite)
ATTEMPTS = 3  # runs of a round during which a phase restarted or pytest-fast's daemon rebooted
RUN_TIMEOUT = 300.0  # one run of one suite
DOWNLOAD_TIMEOUT = 300.0
SHUTDOWN_TIMEOUT = 10.0  # pytest-fast's daemon, after its control socket's shutdown
WORKERS = "2"  # -n

CHURN_MODULES = 20  # 10 tests each (a plain run: about 2 s)
HEAVY_MODULES = 8  # 8 tests each, plus heavy.py's tests/test_one.py (imports dominate: ~3 s)

ATTRS_VERSION = "26.1.0"
#: Fails in plain pytest too on this stack (Python 3.11): deselected for every runner.
ATTRS_DESELECT = "tests/test_converters.py::TestPipe::test_wrapped_annotation"
#: attrs's tests/conftest.py gives each Hypothesis example this wall-clock deadline: on a loaded
#: machine an example can overrun it, whichever runner (seen once in 32 runs of `zeus pytest -n`
#: on 2 cores, in a run with 6 workers: DeadlineExceeded in
#: tests/test_make.py::TestConverter::test_convert_property), and the counts would no longer
#: match plain pytest's. The bench turns it off (deadline=None).
ATTRS_DEADLINE = "deadline=timedelta(milliseconds=400)"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zeuspy-bench"

SUITES = ("churn", "heavy", "attrs")
PLAIN = "pytest"
COLUMNS = (PLAIN, "zeus pytest", f"pytest -n {WORKERS}", f"zeus pytest -n {WORKERS}",
           "pytest --fast")
#: The columns a warm-up round runs for a suite whose rounds are long (attrs): those with state
#: to warm (pytest-fast's daemon, which boots at its first run; zeus's phases). Plain pytest and
#: xdist have none but the .pyc and rewritten-assertion caches, which these runs write too.
WARM_COLUMNS_LONG = (COLUMNS[1], COLUMNS[3], COLUMNS[4])
#: What pytest-fast's client prints on stderr when it starts a daemon (first run, or stale).
FAST_DAEMON_STARTED = "[pytest-fast] starting resident daemon"
COUNTED = ("passed", "failed", "skipped", "xfailed", "xpassed", "errors")
SUMMARY = re.compile(r"^=*\s*(\d+ \w+(, \d+ \w+)*) in [\d.]+s")


# -- the suites -----------------------------------------------------------------------------------
@dataclass
class Suite:
    name: str
    root: Path
    args: list[str]  # after the runner's own, the same for every column
    what: str  # one line for the table's notes
    rounds: int = ROUNDS
    warm_columns: tuple[str, ...] = COLUMNS  # those the warm-up rounds run


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


CHURN_FILES = {
    "pyproject.toml": """
        [project]
        name = "churnapp"
        version = "0.1.0"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        pythonpath = ["."]
        """,
    "churnapp/__init__.py": '''
        """Pure-Python helpers that allocate: records, trees, slotted nodes, recursive walks."""
        ''',
    "churnapp/build.py": """
        def records(n, seed):
            return [{"id": i, "name": f"r{seed}-{i}", "tags": [i % 3, i % 5, seed],
                     "attrs": {"a": i, "b": str(i), "c": (i, seed)}} for i in range(n)]


        def index(rows, key):
            out = {}
            for row in rows:
                out.setdefault(row[key] if key != "tag" else row["tags"][0], []).append(row)
            return out


        def words(n, seed):
            return [f"{'abcdefgh'[i % 8]}{seed}{i:05d}" for i in range(n)]
        """,
    "churnapp/chain.py": """
        class Node:
            __slots__ = ("value", "children")

            def __init__(self, value, children=()):
                self.value = value
                self.children = list(children)


        def nested(depth, width, seed=0):
            if depth == 0:
                return {"leaf": seed, "items": [seed] * width}
            return {f"k{i}": nested(depth - 1, width, seed + i) for i in range(width)}


        def count(tree):
            if "leaf" in tree:
                return 1
            return sum(count(child) for child in tree.values())


        def descend(n, acc=None):
            # A call chain n frames deep, each frame allocating on the way down.
            acc = [] if acc is None else acc
            if n == 0:
                return acc
            acc.append({"depth": n, "pair": (n, -n)})
            return descend(n - 1, acc)


        def nodes(depth, width, value=0):
            if depth == 0:
                return Node(value)
            return Node(value, [nodes(depth - 1, width, value * width + i) for i in range(width)])


        def total(node):
            return node.value + sum(total(child) for child in node.children)
        """,
    "tests/conftest.py": """
        import pytest

        from churnapp import build, chain


        @pytest.fixture(scope="session")
        def registry():
            return {f"key{i}": {"n": i, "words": build.words(20, i)} for i in range(2000)}


        @pytest.fixture(scope="module")
        def tree():
            return chain.nested(4, 5)


        @pytest.fixture
        def records():
            return build.records(3000, 1)
        """,
}

CHURN_MODULE = """
    from collections import Counter

    import pytest

    from churnapp import build, chain

    SEED = {seed}
    KEPT = []  # a little of every test survives, as in a real suite's module state


    @pytest.mark.parametrize("size", [500, 2000, 6000])
    def test_records(size):
        rows = build.records(size, SEED)
        by_id = {{row["id"]: row for row in rows}}
        assert len(by_id) == size
        KEPT.append(rows[:: max(1, size // 50)])


    def test_index(records):
        grouped = build.index(records, "tag")
        assert sum(len(rows) for rows in grouped.values()) == len(records)
        assert sorted(grouped) == [0, 1, 2]


    def test_tree(tree):
        assert chain.count(tree) == 5 ** 4
        copy = {{key: dict(value) for key, value in tree.items()}}
        assert copy.keys() == tree.keys()


    @pytest.mark.parametrize("depth", [150, 400])
    def test_descend(depth):
        frames = chain.descend(depth)
        assert len(frames) == depth
        assert frames[-1]["pair"] == (1, -1)


    def test_nodes():
        root = chain.nodes(6, 4, SEED % 3)
        assert chain.total(root) > 0


    def test_words(registry):
        counts = Counter(word[0] for entry in registry.values() for word in entry["words"])
        assert sum(counts.values()) == 40000
        text = " ".join(build.words(5000, SEED))
        assert len(text.split()) == 5000


    class TestShapes:
        def test_lists(self):
            grid = [[(x * y) % (SEED + 7) for x in range(120)] for y in range(120)]
            flat = [v for row in grid for v in row]
            assert len(flat) == 14400

        def test_sets(self):
            seen = set()
            for i in range(20000):
                seen.add((i % 997, str(i % 101)))
            assert len(seen) <= 20000
"""


def write_churn(root: Path) -> Suite:
    write_files(root, CHURN_FILES)
    for seed in range(CHURN_MODULES):
        write_files(root, {f"tests/test_churn_{seed:02d}.py": CHURN_MODULE.format(seed=seed)})
    return Suite("churn", root, ["-q"], f"{CHURN_MODULES} generated modules of pure-Python "
                 "tests allocating and dropping small objects")


HEAVY_MODULE = """
    import numpy as np
    import pandas as pd
    import pytest
    import sympy
    from django import forms
    from django.template import engines
    from scipy import integrate, interpolate, optimize, signal, sparse, stats
    from scipy.sparse import linalg as splinalg

    from heavyapp import report

    SEED = {seed}


    class Entry(forms.Form):
        name = forms.CharField(max_length=40)
        amount = forms.DecimalField(max_digits=8, decimal_places=2)


    def test_frame(frame):
        table = frame.assign(bucket=frame["value"].round()).pivot_table(
            index="group", columns="bucket", values="value", aggfunc="count", fill_value=0)
        assert int(table.to_numpy().sum()) == len(frame)


    @pytest.mark.parametrize("n", [20, 60])
    def test_linalg(n):
        rng = np.random.default_rng(SEED + n)
        a = rng.normal(size=(n, n)) + n * np.eye(n)
        x = np.linalg.solve(a, np.ones(n))
        assert np.allclose(a @ x, 1.0)


    def test_sparse():
        n = 400
        a = sparse.diags([-1.0, 2.0 + SEED / 100, -1.0], [-1, 0, 1], shape=(n, n), format="csc")
        x = splinalg.spsolve(a, np.ones(n))
        assert np.allclose(a @ x, 1.0)


    def test_stats_and_optimize():
        rng = np.random.default_rng(SEED)
        sample = rng.normal(3.0, 1.0, 500)
        assert stats.ttest_1samp(sample, 3.0).pvalue > 1e-6
        fit = optimize.minimize(lambda p: ((sample - p[0]) ** 2).sum(), [0.0])
        assert abs(fit.x[0] - sample.mean()) < 1e-3


    def test_signal_and_integrate():
        t = np.linspace(0, 1, 2000)
        b, a = signal.butter(3, 0.1)
        smooth = signal.filtfilt(b, a, np.sin(2 * np.pi * 5 * t))
        spline = interpolate.CubicSpline(t, smooth)
        assert abs(integrate.quad(spline, 0, 1)[0]) < 0.05


    def test_sympy():
        x = sympy.symbols("x")
        expr = sympy.expand((x + SEED % 5 + 1) ** 4)
        assert sympy.factor(expr) == (x + SEED % 5 + 1) ** 4


    def test_django(frame):
        form = Entry({{"name": f"entry {{SEED}}", "amount": "12.50"}})
        assert form.is_valid(), form.errors
        result = report.summary(frame)
        text = engines["django"].from_string("{{{{ name }}}}: {{{{ n }}}} groups").render(
            {{"name": form.cleaned_data["name"], "n": len(result["groups"])}})
        assert text == f"entry {{SEED}}: 4 groups"
"""


def write_heavy(root: Path) -> Suite:
    heavy.write_fixture(root)
    for seed in range(HEAVY_MODULES):
        write_files(root, {f"tests/test_stack_{seed:02d}.py": HEAVY_MODULE.format(seed=seed)})
    return Suite("heavy", root, ["-q"], f"heavy.py's fixture (preload: numpy, pandas, scipy, "
                 f"sympy, Django) + {HEAVY_MODULES} generated modules")


ATTRS_SOURCE_TEST = '''
    """Written by zeuspy's suites benchmark: every runner must test this tree's src/, not an
    attrs installed in the venv."""
    from pathlib import Path

    import attr
    import attrs

    SRC = Path(__file__).resolve().parent.parent / "src"


    def test_tests_this_source():
        for module in (attr, attrs):
            assert Path(module.__file__).resolve().is_relative_to(SRC), module.__file__
'''


def attrs_sdist(env: dict[str, str]) -> Path:
    """The attrs sdist, downloaded with the venv's pip once into CACHE."""
    sdist = CACHE / f"attrs-{ATTRS_VERSION}.tar.gz"
    if sdist.exists():
        return sdist
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"downloading attrs {ATTRS_VERSION} (sdist) into {CACHE} ...", flush=True)
    try:
        done = subprocess.run(
            [PYTHON, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
             "--no-binary", ":all:", f"attrs=={ATTRS_VERSION}", "-d", str(CACHE)],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=DOWNLOAD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"pip download attrs=={ATTRS_VERSION} did not finish in "
                         f"{DOWNLOAD_TIMEOUT:.0f} s") from None
    if done.returncode != 0 or not sdist.exists():
        raise BenchError(f"pip download attrs=={ATTRS_VERSION} failed (exit {done.returncode}):"
                         f"\n{done.stdout}{done.stderr}")
    return sdist


def write_attrs(work: Path, env: dict[str, str]) -> Suite:
    with tarfile.open(attrs_sdist(env)) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(work, filter="data")
        else:  # Python < 3.11.4 (the archive is one from PyPI that pip checked)
            archive.extractall(work)
    root = work / f"attrs-{ATTRS_VERSION}"
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    section = "[tool.pytest.ini_options]\n"
    if text.count(section) != 1 or "pythonpath" in text:
        raise BenchError(f"{pyproject}: expected one {section.strip()} and no pythonpath")
    pyproject.write_text(text.replace(section, f'{section}pythonpath = ["src"]\n'))
    conftest = root / "tests" / "conftest.py"
    text = conftest.read_text()
    if text.count(ATTRS_DEADLINE) != 1:
        raise BenchError(f"{conftest}: expected one {ATTRS_DEADLINE!r}")
    conftest.write_text(text.replace(ATTRS_DEADLINE, "deadline=None"))
    write_files(root, {"tests/test_zeuspy_bench_source.py": ATTRS_SOURCE_TEST})
    return Suite("attrs", root, ["-q", "--deselect", ATTRS_DESELECT],
                 f"attrs {ATTRS_VERSION}'s whole suite from its sdist, + 1 test of ours, "
                 "- 1 deselected", ATTRS_ROUNDS, WARM_COLUMNS_LONG)


# -- running --------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    status: int
    counts: dict[str, int]
    output: str


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """``argv`` in ``cwd``, stdin /dev/null, stdout and stderr pipes read to EOF: wall-clock
    seconds, exit status, the counts of its last pytest summary line, and its output."""
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv)} did not finish in {RUN_TIMEOUT:.0f} s") from None
    elapsed = time.perf_counter() - start
    output = (done.stdout + done.stderr).decode(errors="replace")
    return Run(elapsed, done.returncode, summary_counts(output), output)


def summary_counts(output: str) -> dict[str, int]:
    """The counts of the last ``N passed, M skipped ... in S s`` line (``error`` as
    ``errors``; ``deselected`` and ``warnings`` left out)."""
    lines = [m.group(1) for line in output.splitlines() if (m := SUMMARY.match(line.strip()))]
    if not lines:
        return {}
    counts = {}
    for part in lines[-1].split(", "):
        number, word = part.split(" ", 1)
        word = {"error": "errors"}.get(word, word)
        if word in COUNTED:
            counts[word] = int(number)
    return counts


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts[word]} {word}" for word in COUNTED if counts.get(word)) or "none"


def argv_for(column: str, suite: Suite) -> list[str]:
    runner = {
        PLAIN: [PYTEST],
        "zeus pytest": [ZEUS, "pytest"],
        f"pytest -n {WORKERS}": [PYTEST, "-n", WORKERS],
        f"zeus pytest -n {WORKERS}": [ZEUS, "pytest", "-n", WORKERS],
        "pytest --fast": [PYTEST, "--fast"],
    }[column]
    return [*runner, *suite.args]


def fast_address(suite: Suite) -> str:
    # In the work dir, short enough for a unix socket's path; removed with it.
    return str(suite.root.parent / f"pf-{suite.name}.sock")


def stop_fast_daemon(address: str, env: dict[str, str]) -> None:
    """Ask pytest-fast's daemon at ``address`` to exit (its control socket's ``shutdown``, which
    pytest-fast's own watcher uses), then SIGTERM it if it is still there after
    SHUTDOWN_TIMEOUT. Its forkserver exits with it."""
    pid_file = Path(f"{address}.pid")
    pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
    if Path(address).exists():
        subprocess.run([PYTHON, "-c", "import sys, pytest_fast; "
                        "pytest_fast._shutdown_daemon(sys.argv[1])", address],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=SHUTDOWN_TIMEOUT)
    deadline = time.monotonic() + SHUTDOWN_TIMEOUT
    while Path(address).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if Path(address).exists() and pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


@dataclass
class Measured:
    suite: Suite
    samples: dict[str, list[float]] = field(default_factory=dict)
    warmup: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    master_ready: float = 0.0
    repeated: int = 0  # rounds run again


def check(suite: Suite, column: str, result: Run, reference: Run) -> None:
    if not result.counts:
        raise BenchError(f"{suite.name}: `{column}` printed no pytest summary line "
                         f"(exit {result.status}):\n{result.output[-3000:]}")
    if result.counts != reference.counts or result.status != reference.status:
        raise BenchError(
            f"{suite.name}: `{column}` ran {describe(result.counts)} (exit {result.status}), "
            f"plain pytest {describe(reference.counts)} (exit {reference.status}); "
            f"`{column}` printed:\n{result.output[-3000:]}")


def measure(suite: Suite, env: dict[str, str]) -> Measured:
    """Start a master in the suite's project, run the rounds, stop the master and pytest-fast's
    daemon."""
    fast_env = {**env, "PYTEST_FAST_ADDRESS": fast_address(suite)}
    found = Measured(suite, {c: [] for c in COLUMNS}, {c: [] for c in COLUMNS})
    # Compile the project as its first runs would: a .pyc written while a phase boots counts as
    # a change to a file it loaded. Not checked: attrs has test files for newer Pythons (which
    # its conftest leaves out).
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(suite.root)], env=env,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
    began = time.monotonic()
    master = heavy.HeavyMaster(suite.root, env)
    try:
        found.master_ready = master.ready_after
        print(f"  master ready after {master.ready_after:.2f} s; {WARMUP} warm-up "
              f"({len(suite.warm_columns)} runs) + {suite.rounds} timed rounds of "
              f"{len(COLUMNS)} runs", flush=True)
        reference: Run | None = None
        unchecked: list[tuple[str, Run]] = []  # until plain pytest has run
        index = 0
        attempts = 0
        while index < WARMUP + suite.rounds:
            columns = suite.warm_columns if index < WARMUP else COLUMNS
            shift = index % len(columns)
            order = columns[shift:] + columns[:shift]
            before = master.pids()
            results: dict[str, Run] = {}
            for column in order:
                results[column] = run(argv_for(column, suite), suite.root,
                                      fast_env if column == "pytest --fast" else env)
            reference = reference or results.get(PLAIN)
            unchecked += results.items()
            if reference is not None:
                for column, result in unchecked:
                    check(suite, column, result, reference)
                unchecked.clear()
            code, answer = heavy.status(suite.root, env)
            restarted = code != 0 or {p["name"]: p["pid"] for p in answer["phases"]} != before
            rebooted = index >= WARMUP and FAST_DAEMON_STARTED in results["pytest --fast"].output
            line = "  ".join(f"{c} {results[c].seconds:.2f}" for c in COLUMNS if c in results)
            print(f"  {'warm-up' if index < WARMUP else 'round'} {index + 1}: {line}", flush=True)
            if (restarted or rebooted) and index >= WARMUP:
                attempts += 1
                found.repeated += 1
                why = "a zeus phase restarted" if restarted else "pytest-fast's daemon rebooted"
                if attempts >= ATTEMPTS:
                    raise BenchError(f"{suite.name}: {why} in {ATTEMPTS} runs of one round"
                                     f"\n{master.master.details()}")
                print(f"  {why} during the round; running it again", flush=True)
                if restarted:
                    master.wait_steady()
                continue
            attempts = 0
            target = found.warmup if index < WARMUP else found.samples
            for column, result in results.items():
                target[column].append(result.seconds)
            index += 1
        assert reference is not None
        found.counts = reference.counts
    finally:
        try:
            master.stop()
        finally:
            stop_fast_daemon(fast_address(suite), env)
    print(f"  took {time.monotonic() - began:.0f} s", flush=True)
    return found


# -- output ---------------------------------------------------------------------------------------
def versions(env: dict[str, str]) -> str:
    return subprocess.run(
        [PYTHON, "-c", "import importlib.metadata as m, sys; print(sys.version.split()[0], "
         "*(d + ' ' + m.version(d) for d in ('pytest', 'pytest-xdist', 'pytest-fast', "
         "'hypothesis')), sep=', ')"],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True,
    ).stdout.strip()


def fast_workers(env: dict[str, str]) -> str:
    return subprocess.run(
        [PYTHON, "-c", "import pytest_fast; print(pytest_fast.resolve_workers())"],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=True,
    ).stdout.strip()


def report(measured: list[Measured], workers: str) -> None:
    rows = []
    for found in measured:
        base = statistics.median(found.samples[PLAIN])
        cells = [f"{base:.2f}"]
        for column in COLUMNS[1:]:
            median = statistics.median(found.samples[column])
            cells.append(f"{median:.2f} {base / median:.2f}x")
        rows.append((found.suite.name, str(sum(found.counts.values())),
                     str(len(found.samples[PLAIN])), *cells))
    table("suites: wall-clock seconds, median of the timed rounds, and speed-up (plain pytest's "
          "median / this median)", ("suite", "tests", "rounds", *COLUMNS), rows)
    print("\n  counts (every column ran the same, with the same exit status):")
    for found in measured:
        print(f"    {found.suite.name}: {describe(found.counts)}; {found.suite.what}")
    print(f"  pytest --fast: {workers} workers (its default, os.cpu_count()); its daemon booted "
          "in the discarded warm-up round and stayed resident for the timed rounds; each timed "
          "run still collects the suite in a fresh pytest process")

    samples = []
    for found in measured:
        for column in COLUMNS:
            samples.append((found.suite.name, column,
                            " ".join(f"{s:.2f}" for s in found.warmup[column]) or "-",
                            " ".join(f"{s:.2f}" for s in found.samples[column]),
                            f"{min(found.samples[column]):.2f}",
                            f"{max(found.samples[column]):.2f}"))
    table("every run (seconds; warm-up discarded)",
          ("suite", "column", "warm-up", "timed rounds", "min", "max"), samples)

    print()
    for found in measured:
        pairs = [p / z for p, z in zip(found.samples[PLAIN], found.samples["zeus pytest"],
                                       strict=True)]
        ratio = statistics.median(found.samples[PLAIN]) / statistics.median(
            found.samples["zeus pytest"])
        verdict = "yes" if ratio >= 1.0 else "no"
        print(f"zeus pytest no later than pytest on {found.suite.name}: {verdict} "
              f"(median ratio {ratio:.2f}; per round {' '.join(f'{p:.2f}' for p in pairs)})")
    extra = [f"{f.suite.name} {f.repeated}" for f in measured if f.repeated]
    if extra:
        print(f"rounds run again (a phase restarted or pytest-fast's daemon rebooted): "
              f"{', '.join(extra)}")


def bench(work: Path, mark: str, names: list[str], rounds: int | None) -> None:
    env = bench_env(mark)
    env.pop(heavy.GC_FREEZE_ENV, None)
    for name in [n for n in env if n == "PYTEST_ADDOPTS" or n.startswith("PYTEST_FAST_")]:
        env.pop(name)  # the same pytest for every column, whatever the caller's environment
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("zeuspy suites benchmark")
    print(f"python:   {PYTHON} -> {os.path.realpath(PYTHON)}")
    print(f"          {versions(env)}")
    print(f"pytest:   {PYTEST}\nzeus:     {ZEUS}")
    print(f"machine:  {platform.platform()}, {platform.machine()}, nproc {cpus}")
    print(f"load:     {heavy.load()} (1, 5, 15 min)")
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        print("note:     PYTHONDONTWRITEBYTECODE dropped for the benchmark: .pyc files and "
              "pytest's rewritten-assertion caches are written, as on a developer's machine")
    workers = fast_workers(env)
    writers: dict[str, Callable[[], Suite]] = {
        "churn": lambda: write_churn(work / "churn"),
        "heavy": lambda: write_heavy(work / "heavy"),
        "attrs": lambda: write_attrs(work, env),
    }
    measured: list[Measured] = []
    try:
        for name in names:
            suite = writers[name]()
            suite.rounds = rounds or suite.rounds
            print(f"\n{name}: {suite.root}", flush=True)
            measured.append(measure(suite, env))
            ensure_nothing_left(mark)
    finally:
        # A suite that fails does not take the tables of those measured before it along.
        if measured:
            report(measured, workers)
        print(f"\nload at the end: {heavy.load()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"the suites to measure, of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help=f"timed rounds of every suite (default: {ROUNDS}, attrs "
                             f"{ATTRS_ROUNDS}); more for a longer run on a quiet machine")
    options = parser.parse_args()
    names = options.suites or list(SUITES)
    if options.rounds is not None and options.rounds < 1:
        parser.error("--rounds: give 1 or more")
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; the suites: {', '.join(SUITES)}")
    for tool in (PYTHON, PYTEST, ZEUS, str(VENV_BIN / "pytest-fast")):
        if not os.access(tool, os.X_OK):
            print(f"suites bench: {tool} not found; run `make bench` (it installs the project "
                  "and the bench extra)", file=sys.stderr)
            return 2
    return run_guarded("suites bench", "zeuspy-suites-", "the suites",
                       lambda work, mark: bench(work, mark, names, options.rounds))


if __name__ == "__main__":
    sys.exit(main())
