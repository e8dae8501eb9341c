"""`zeus pytest -n N`: the suite on N workers forked from the command after collection
(src/zeuspy/plans/pytest_workers.py), against serial runs of the same project.

The project is tests/e2e/_pytest_fixture.py's (its ``tests/`` folder, whose full run has
``FULL_COUNTS``) plus a ``workers/`` folder of tests made for this file: they log which process
ran them and set up a session fixture (to a file named by ``ZW_LOG``), crash their worker, or are
slow enough to be interrupted. One master serves the module; every run is bounded, and after each
test no worker of the project may be left.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.e2e._client_support import exit_code, kill_quietly, processes_in
from tests.e2e._pytest_fixture import FULL_COUNTS, write_project
from tests.e2e.test_pytest_plan import (
    PHASES,
    RUN_TIMEOUT,
    PytestProject,
    Run,
    assert_same,
    check_no_leaks,
    normalize,
    on_terminal,
    plain,
    reset_cache,
    summary,
    zeus,
)
from tests.helpers import ZEUS, new_mark, running_master
from zeuspy.plans.pytest_workers import Mode, Queue

#: How long workers may take to be gone once their run ended (the run reaps them: ~instant).
WORKER_GRACE = 3.0
#: Tests of the ^C case: enough of them, slow enough, that ^C lands mid-run.
SLOW_TESTS = 40

WORKER_FILES = {
    "workers/zwlog.py": """
import os


def log(what):
    with open(os.environ["ZW_LOG"], "a") as f:
        f.write(f"{what} {os.environ.get('PYTEST_XDIST_WORKER', '-')} {os.getpid()}\\n")
""",
    "workers/conftest.py": """
import pytest

from zwlog import log


@pytest.fixture(scope="session")
def session_log():
    log("setup")
    yield
    log("teardown")
""",
    "workers/test_spread.py": """
import time

import pytest

from zwlog import log


@pytest.mark.parametrize("n", range(20))
def test_spread(n, session_log):
    time.sleep(0.01)
    log("test")
""",
    "workers/test_crash.py": """
import os

import pytest


@pytest.mark.parametrize("n", range(6))
def test_before(n):
    pass


def test_exit():
    os._exit(3)


@pytest.mark.parametrize("n", range(6))
def test_after(n):
    pass
""",
    "workers/test_slow.py": f"""
import time

import pytest


@pytest.mark.parametrize("n", range({SLOW_TESTS}))
def test_slow(n, session_log):
    time.sleep(0.25)
""",
}


def worker_processes(root: Path) -> list[tuple[int, str]]:
    return [(pid, args) for pid, args in processes_in(root) if "zeus pytest worker" in args]


def assert_no_workers(root: Path) -> None:
    """No worker of the project outlives its run (they are killed if one does)."""
    deadline = time.monotonic() + WORKER_GRACE
    left = worker_processes(root)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = worker_processes(root)
    for pid, _ in left:
        kill_quietly(pid)
    assert not left, f"workers left behind: {left}"


@pytest.fixture(scope="module")
def wx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PytestProject]:
    """The fixture project (plus ``workers/``) with a ready test_environment phase."""
    root = write_project(tmp_path_factory.mktemp("pytest_workers") / "proj")
    for rel, text in WORKER_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.lstrip())
    proj = PytestProject(root, new_mark())
    try:
        with running_master(proj, *PHASES):
            yield proj
    finally:
        check_no_leaks(proj)


@pytest.fixture
def fx(wx: PytestProject) -> Iterator[PytestProject]:
    reset_cache(wx.root)
    yield wx
    assert_no_workers(wx.root)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "zw.log"


def log_lines(log: Path) -> list[tuple[str, str, int]]:
    """(event, worker id, pid) of each line the workers' tests logged."""
    if not log.exists():
        return []
    return [(event, worker, int(pid)) for event, worker, pid in
            (line.split() for line in log.read_text().splitlines())]


def report_tail(run: Run) -> str:
    """Everything after the progress lines (errors, failures, warnings, short summary, the
    final line), normalized: it must not depend on which worker ran what."""
    start = run.out.index("= ERRORS =")
    return normalize(run.out[run.out.rindex("\n", 0, start) + 1:])


def one_error_line(run: Run) -> str:
    """pytest's one usage-error line (zeus's note that a phase was rebooting aside)."""
    lines = [line for line in run.err.splitlines()
             if line.strip() and not line.startswith("zeus: waiting for phase")]
    assert len(lines) == 1, run.err
    return lines[0]


# -- one report, as a serial run's ----------------------------------------------------------------
def test_counts_and_tracebacks_match_serial(fx: PytestProject) -> None:
    """``--dist loadfile`` (each test file on one worker, as the fixture project's
    module-scoped state needs): the serial counts, and the same errors, failures, tracebacks,
    warnings and short summary, in the serial order."""
    serial = zeus(fx, "-p", "no:cacheprovider")
    got = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile")
    assert (got.code, got.counts) == (1, FULL_COUNTS), got.out + got.err
    assert serial.counts == FULL_COUNTS
    assert report_tail(got) == report_tail(serial)
    assert "At index 2 diff: 3 != 4" in got.out


def test_load_distribution_matches_serial(fx: PytestProject) -> None:
    """The default ``-n 2`` (``--dist load``, one test at a time from the queue), ``-v``: every
    test reported once with its serial outcome. (test_module_second needs test_module_first's
    module state on the same worker, which ``load`` does not promise: left out.)"""
    args = ("-p", "no:cacheprovider", "-v", "--deselect",
            "tests/test_fixtures.py::test_module_second")
    serial = zeus(fx, *args)
    got = zeus(fx, *args, "-n", "2")
    assert got.code == serial.code == 1
    assert got.counts == serial.counts, got.out
    outcome = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)", re.M)
    assert sorted(outcome.findall(got.out)) == sorted(outcome.findall(serial.out))
    assert report_tail(got) == report_tail(serial)


def test_n0_is_plain_pytest(fx: PytestProject) -> None:
    """``-n 0``: a serial run, output for output what plain pytest (with xdist) prints."""
    expected = plain(fx, "-n", "0")
    reset_cache(fx.root)
    assert_same(expected, zeus(fx, "-n", "0"))


# -- workers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("disable", [(), ("-p", "no:xdist")], ids=["xdist", "no-xdist"])
def test_session_fixture_once_per_worker(fx: PytestProject, log: Path,
                                         disable: tuple[str, ...]) -> None:
    """Two workers share the tests (whether xdist is loaded or not); each sets the session
    fixture up and tears it down once, and the controller runs none."""
    got = zeus(fx, "-p", "no:cacheprovider", *disable, "-n", "2", "workers/test_spread.py",
               env=fx.env(ZW_LOG=str(log)))
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    lines = log_lines(log)
    ran = {(worker, pid) for event, worker, pid in lines if event == "test"}
    setups = [(worker, pid) for event, worker, pid in lines if event == "setup"]
    teardowns = [(worker, pid) for event, worker, pid in lines if event == "teardown"]
    assert {worker for worker, _ in ran} == {"gw0", "gw1"}, lines
    assert sorted(setups) == sorted(teardowns) == sorted(ran), lines
    assert len({pid for _, pid in ran}) == 2


def test_auto_from_environment(fx: PytestProject, log: Path) -> None:
    """``-n auto`` through ``PYTEST_ADDOPTS``, its count from ``PYTEST_XDIST_AUTO_NUM_WORKERS``."""
    env = fx.env(ZW_LOG=str(log), PYTEST_ADDOPTS="-n auto", PYTEST_XDIST_AUTO_NUM_WORKERS="3")
    got = zeus(fx, "-p", "no:cacheprovider", "workers/test_spread.py", env=env)
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    setups = {worker for event, worker, _ in log_lines(log) if event == "setup"}
    assert setups == {"gw0", "gw1", "gw2"}


def test_exitfirst_stops_every_worker(fx: PytestProject) -> None:
    got = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "-x")
    assert got.code == 1, got.out
    counts = got.counts or {}
    assert counts.get("failed", 0) >= 1
    ran = sum(n for kind, n in counts.items() if kind != "warnings")
    assert ran < sum(n for kind, n in FULL_COUNTS.items() if kind != "warnings"), got.out
    assert "stopping after" in got.out


def test_worker_crash_is_a_failure_and_the_rest_runs(fx: PytestProject) -> None:
    got = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "workers/test_crash.py")
    assert (got.code, got.counts) == (1, {"failed": 1, "passed": 12}), got.out + got.err
    assert re.search(r"worker gw\d exited 3 while running workers/test_crash.py::test_exit",
                     got.out), got.out


# -- refused --------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [("-n", "2", "--pdb"), ("-n2", "--trace")], ids=["pdb", "trace"])
def test_debugger_refused(fx: PytestProject, args: tuple[str, ...]) -> None:
    got = zeus(fx, *args)
    assert got.code == 4, got.out + got.err
    line = one_error_line(got)
    assert "cannot be used with -n 2" in line and "use -n 0" in line, line


@pytest.mark.parametrize("args", [("-n", "2", "--dist", "each"), ("--tx", "popen"),
                                  ("-n", "2", "-p", "no:xdist", "--dist", "each")],
                         ids=["dist-each", "tx", "dist-each-no-xdist"])
def test_xdist_only_options_refused(fx: PytestProject, args: tuple[str, ...]) -> None:
    got = zeus(fx, *args)
    assert got.code == 4, got.out + got.err
    assert "is not supported" in one_error_line(got)


# -- ^C -------------------------------------------------------------------------------------------
def test_interrupt_on_terminal(fx: PytestProject, log: Path) -> None:
    """^C on the terminal: pytest's partial report and status 2; each worker tore its session
    fixture down, and none is left."""
    child = pexpect.spawn(ZEUS, ["pytest", "-p", "no:cacheprovider", "-n", "2",
                                 "workers/test_slow.py"],
                          cwd=str(fx.root), env=fx.env(TERM="xterm", ZW_LOG=str(log)),
                          timeout=RUN_TIMEOUT, dimensions=(24, 80))
    try:
        child.expect(rb"collected \d+ items")
        child.expect(rb"\.")  # a test passed: both workers are in the middle of their runs
        assert len(worker_processes(fx.root)) == 2
        started = time.monotonic()
        child.sendintr()
        child.expect(pexpect.EOF, timeout=20)
        stopped = time.monotonic() - started
        output = child.before
        child.close()
    finally:
        if child.isalive():
            child.close(force=True)
    text = on_terminal(output)
    assert exit_code(child) == 2, text
    assert "KeyboardInterrupt" in text, text
    counts = summary(text)
    assert counts is not None and 0 < counts.get("passed", 0) < SLOW_TESTS, text
    assert stopped < 5, stopped
    lines = log_lines(log)
    assert sorted(w for e, w, _ in lines if e == "teardown") == ["gw0", "gw1"], lines


def test_plain_pytest_is_untouched(fx: PytestProject) -> None:
    """The plugin is zeus's only: ``PYTEST_PLUGINS`` does not leak into the tests' environment
    (plain pytest runs them as before)."""
    script = fx.root / "workers" / "test_env.py"
    script.write_text("import os\n\n\ndef test_env():\n"
                      "    assert 'zeuspy' not in os.environ.get('PYTEST_PLUGINS', '')\n")
    try:
        for run in (zeus(fx, "-p", "no:cacheprovider", "-n", "2", str(script)),
                    zeus(fx, "-p", "no:cacheprovider", str(script)),
                    plain(fx, "-p", "no:cacheprovider", str(script))):
            assert (run.code, run.counts) == (0, {"passed": 1}), run.out + run.err
    finally:
        script.unlink()


# -- the queue (no processes) ---------------------------------------------------------------------
class FakeItem:
    """What the queue reads of an item: its node id and its xdist_group mark."""

    def __init__(self, nodeid: str, group: str | None = None) -> None:
        self.nodeid = nodeid
        self.group = group

    def get_closest_marker(self, name: str) -> object:
        return pytest.mark.xdist_group(self.group).mark if self.group else None


FAKE_ITEMS = [FakeItem("a.py::t1"), FakeItem("a.py::T::t2[x::y]"), FakeItem("a.py::T::t3"),
              FakeItem("b.py::t4", "g"), FakeItem("c.py::t5", "g"), FakeItem("c.py::t6")]


def drain(queue: Queue, order: list[str]) -> dict[str, list[int]]:
    """Hand out everything, asking in ``order`` (cycled); each worker's indices."""
    got: dict[str, list[int]] = {name: [] for name in order}
    while len(queue):
        for name in order:
            index = queue.take(name)
            if index is not None:
                got[name].append(index)
    return got


@pytest.mark.parametrize(("mode", "expected"), [
    ("load", {"gw0": [0, 2, 4], "gw1": [1, 3, 5]}),
    ("loadfile", {"gw0": [0, 1, 2], "gw1": [3, 4, 5]}),
    ("loadscope", {"gw0": [0, 3, 4, 5], "gw1": [1, 2]}),  # a.py | a.py::T | b.py | c.py
    ("loadgroup", {"gw0": [0, 2, 5], "gw1": [1, 3, 4]}),
])
def test_queue_modes(mode: Mode, expected: dict[str, list[int]]) -> None:
    got = drain(Queue(FAKE_ITEMS, mode), ["gw0", "gw1"])  # type: ignore[arg-type]
    assert got == expected
    for indices in got.values():
        assert indices == sorted(indices)


def test_queue_gives_back_first() -> None:
    """A crashed worker's handed-out items (and the rest of its group) go to the next asker."""
    queue = Queue(FAKE_ITEMS, "loadfile")  # type: ignore[arg-type]
    assert [queue.take("gw0"), queue.take("gw0")] == [0, 1]
    queue.give_back("gw0", [1])
    assert [queue.take("gw1"), queue.take("gw1"), queue.take("gw1")] == [1, 2, 3]
