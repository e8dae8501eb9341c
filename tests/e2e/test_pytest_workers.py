"""`zeus pytest -n N`: the suite on N workers forked from the command after collection
(src/zeuspy/plans/pytest_workers.py), against serial runs of the same project.

The project is tests/e2e/_pytest_fixture.py's (its ``tests/`` folder, whose full run has
``FULL_COUNTS``) plus a ``workers/`` folder of tests made for this file: they log which process
ran them and set up a session fixture (to a file named by ``ZW_LOG``), crash their worker, or are
slow enough to be interrupted. One master serves the module; every run is bounded, and after each
test no worker of the project may be left.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest

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
from tests.harness.master import running_master
from tests.harness.processes import kill_quietly, new_mark, processes_in
from tests.harness.project import ZEUS
from tests.harness.terminal import exit_code
from zeuspy.plans.pytest_workers import Mode, Queue

#: Each test so marked runs with xdist loaded, and with it disabled.
XDIST_OR_NOT = pytest.mark.parametrize("disable", [(), ("-p", "no:xdist")],
                                       ids=["xdist", "no-xdist"])
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
import os
import time

import pytest

from zwlog import log


@pytest.fixture(scope="session")
def session_log():
    log("setup")
    if os.environ.get("ZW_BARRIER"):
        wait_for_every_worker()
    yield
    # Longer than the controller's INTERRUPT_GRACE: ^C must not cut this short.
    time.sleep(float(os.environ.get("ZW_TEARDOWN_SLEEP", "0")))
    log("teardown")


def wait_for_every_worker():
    # Each worker of the run holds its first test here until all have set this fixture up:
    # then every worker runs a share of the tests, however the machine schedules them.
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(os.environ["ZW_LOG"]) as f:
            if len({line.split()[1] for line in f if line.startswith("setup ")}) >= count:
                return
        time.sleep(0.01)


def pytest_runtest_logreport(report):
    # Called where pytest reports (the controller under -n), for the items of this folder only.
    if os.environ.get("ZW_REPORTS"):
        with open(os.environ["ZW_REPORTS"], "a") as f:
            f.write(f"{report.nodeid} {report.when} {report.outcome}\\n")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    return int(os.environ["ZW_AUTO"]) if os.environ.get("ZW_AUTO") else None
""",
    "workers/test_stop.py": """
import os
import time

import pytest


def test_fails_first():
    assert 1 + 1 == 3


@pytest.mark.parametrize("n", range(20))
def test_after(n):
    # Held until the controller has reported the failure (the conftest's logreport hook
    # writes ZW_REPORTS there): the stop then reaches every worker while it still has work.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if " failed" in open(os.environ["ZW_REPORTS"]).read():
            return
        time.sleep(0.01)
""",
    "workers/test_scopes.py": """
import pytest

from zwlog import log


@pytest.fixture(scope="module")
def module_res():
    log("setup-module")
    yield {"calls": 0}
    log("teardown-module")


@pytest.fixture(scope="class")
def class_res(request):
    name = request.cls.__name__
    log(f"setup-class-{name}")
    yield name
    log(f"teardown-class-{name}")


@pytest.mark.parametrize("n", range(6))
def test_module_scope(n, module_res):
    module_res["calls"] += 1
    log("test")


class TestFirst:
    @pytest.mark.parametrize("n", range(4))
    def test_class_scope(self, n, class_res):
        assert class_res == "TestFirst"
        log("test")


class TestSecond:
    @pytest.mark.parametrize("n", range(4))
    def test_class_scope(self, n, class_res):
        assert class_res == "TestSecond"
        log("test")

    def test_fails(self, class_res):
        assert class_res == "TestFirst"
""",
    "workers/zwcov.py": """
def pick(n):
    if n == 0:
        return "a"
    if n == 1:
        return "b"
    if n == 2:
        return "c"
    if n == 3:
        return "d"
    if n == 4:
        return "e"
    return "f"


def never():
    return "never"
""",
    "workers/test_cov.py": """
import pytest

import zwlog
import zwcov


@pytest.mark.parametrize("n", range(5))
def test_pick(n, session_log):
    assert zwcov.pick(n)
    zwlog.log("test")
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


#: The sections that come after the progress lines, in pytest's order.
SECTIONS = ("= ERRORS =", "= FAILURES =", "warnings summary", "short test summary info")


@contextmanager
def suite_folder(fx: PytestProject, name: str, files: dict[str, str]) -> Iterator[None]:
    """``tests/NAME`` in the project, holding ``files`` (their text left-stripped) while the
    block runs; removed on the way out."""
    folder = fx.root / "tests" / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text.lstrip())
    try:
        yield
    finally:
        shutil.rmtree(folder)


def report_tail(run: Run, final_line: bool = True) -> str:
    """Everything after the progress lines (errors, failures, warnings, short summary, and the
    final line unless ``final_line`` is false), normalized: it must not depend on which worker
    ran what."""
    found = [run.out.index(section) for section in SECTIONS if section in run.out]
    end = len(run.out.rstrip())
    if not found:
        return normalize(run.out[run.out.rindex("\n", 0, end) + 1:])
    tail = normalize(run.out[run.out.rindex("\n", 0, min(found)) + 1:])
    return tail if final_line else tail.rsplit("\n", 1)[0]


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


#: Failures pytest draws with a representation of its own, not an exception chain.
OWN_REPRESENTATION = """
import pytest


def test_missing(no_such_fixture):
    pass


class TestMissing:
    def test_method(self, tmp_path, also_missing):
        pass


@pytest.fixture
def broken(undefined_dependency):
    return 1


def test_needs_broken(broken):
    pass
"""


@pytest.mark.parametrize("color", ["no", "yes"])
def test_a_failure_drawn_its_own_way_matches_serial(fx: PytestProject, color: str) -> None:
    """Missing fixtures (pytest's FixtureLookupErrorRepr, which its report serialization turns
    into text, as xdist shows it): the same error sections, colours and short summary lines as
    serially (no ``- file ...`` appended to them)."""
    path = fx.root / "tests" / "test_own_repr.py"
    path.write_text(OWN_REPRESENTATION.lstrip())
    try:
        args = ("-p", "no:cacheprovider", f"--color={color}", "tests/test_own_repr.py")
        serial = zeus(fx, *args)
        got = zeus(fx, *args, "-n", "2")
    finally:
        path.unlink()
    assert got.code == serial.code == 1, got.out
    # The final line holds the duration, which the colours keep normalize() from finding.
    assert report_tail(got, final_line=color == "no") == report_tail(serial,
                                                                     final_line=color == "no")
    if color == "no":
        assert got.counts == serial.counts == {"errors": 3}, got.out
        assert re.search(r"^ERROR \S+::test_missing$", serial.out, re.M), serial.out
    else:
        assert "\x1b[31mE       fixture 'no_such_fixture' not found" in got.out, got.out


SUBTESTS = """
import unittest


def test_fixture_subtests(subtests):
    for i in range(3):
        with subtests.test(msg="part", i=i):
            assert i != 1


def test_passes():
    pass


class TestCase(unittest.TestCase):
    def test_method(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 2)
"""


@pytest.mark.skipif(importlib.util.find_spec("_pytest.subtests") is None,
                    reason="pytest < 9 has no subtests")
def test_subtests_match_serial(fx: PytestProject) -> None:
    """Failing subtests (the ``subtests`` fixture, unittest's ``subTest``): the test that holds
    them fails or passes as serially (pytest counts a fixture subtest's failure in the
    worker's config), and each subtest is named with its parameters as serially (``i=1``)."""
    path = fx.root / "tests" / "test_subtests.py"
    path.write_text(SUBTESTS.lstrip())
    try:
        args = ("-p", "no:cacheprovider", "-v", "tests/test_subtests.py")
        serial = zeus(fx, *args)
        got = zeus(fx, *args, "-n", "2")
    finally:
        path.unlink()
    assert got.code == serial.code == 1, got.out
    assert "FAILED tests/test_subtests.py::test_fixture_subtests - contains 1 failed subtest" \
        in serial.out, serial.out
    assert "SUBFAILED[part] (i=1) tests/test_subtests.py::test_fixture_subtests" in serial.out
    assert got.counts == serial.counts, got.out
    assert report_tail(got) == report_tail(serial)


def test_keyboard_interrupt_in_a_test_matches_serial(fx: PytestProject) -> None:
    """A test that raises KeyboardInterrupt: the run ends as serially (status 2), and pytest's
    closing line names the test's line, not the controller's."""
    path = fx.root / "tests" / "test_raises_interrupt.py"
    path.write_text("def test_interrupts():\n    raise KeyboardInterrupt\n")
    try:
        args = ("-p", "no:cacheprovider", "tests/test_raises_interrupt.py")
        serial = zeus(fx, *args)
        got = zeus(fx, *args, "-n", "2")
    finally:
        path.unlink()
    assert got.code == serial.code == 2, got.out + got.err
    line = "tests/test_raises_interrupt.py:2: KeyboardInterrupt"
    assert line in serial.out, serial.out
    assert line in got.out, got.out
    assert report_tail(got) == report_tail(serial)


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


@pytest.mark.parametrize("args", [("-k", "add or fail"), ("-m", "not slow"), ("-m", "slow")],
                         ids=["k", "m-not-slow", "m-slow"])
def test_selection_matches_serial(fx: PytestProject, args: tuple[str, ...]) -> None:
    """``-k`` and ``-m`` (the ``slow`` mark is added by a conftest hook at collection): the
    same tests, outcomes and report as serially."""
    common = ("-p", "no:cacheprovider", "--deselect",
              "tests/test_fixtures.py::test_module_second", *args)
    serial = zeus(fx, *common)
    got = zeus(fx, *common, "-n", "2")
    assert (got.code, got.counts) == (serial.code, serial.counts), got.out + got.err
    counts = serial.counts or {}
    assert counts.get("deselected", 0) > 1 and counts.get("passed", 0) >= 1, serial.out
    assert report_tail(got) == report_tail(serial)


def test_last_failed_matches_serial(fx: PytestProject) -> None:
    """``--lf`` after a failing run: a ``-n`` run writes the failures a serial run writes (in
    the order they were reported: compared as sets), and ``--lf -n 2`` on them reruns and
    reports what serial ``--lf`` does."""
    cache = fx.root / ".pytest_cache"
    lastfailed = cache / "v" / "cache" / "lastfailed"
    assert zeus(fx).code == 1
    written = json.loads(lastfailed.read_text())
    assert len(written) == 6
    reset_cache(fx.root)
    first = zeus(fx, "-n", "2", "--dist", "loadfile")
    assert (first.code, first.counts) == (1, FULL_COUNTS), first.out + first.err
    assert json.loads(lastfailed.read_text()) == written
    saved = fx.root.parent / "saved_workers_cache"
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(cache, saved)
    serial = zeus(fx, "--lf")
    reset_cache(fx.root)
    shutil.copytree(saved, cache)
    got = zeus(fx, "--lf", "-n", "2")
    assert "run-last-failure: rerun previous 6 failures" in got.out, got.out
    assert (got.code, got.counts) == (serial.code, serial.counts) == (
        1, {"failed": FULL_COUNTS["failed"], "errors": FULL_COUNTS["errors"]})
    assert report_tail(got) == report_tail(serial)


STEPWISE = """
def test_first():
    assert False


def test_second():
    assert False


def test_third():
    pass
"""


@pytest.mark.parametrize("skip", [False, True], ids=["sw", "sw-skip"])
def test_stepwise_restarts_where_serial_does(fx: PytestProject, skip: bool) -> None:
    """``--sw`` (``--sw-skip``): the next run starts at the test a serial run stopped at, the
    first failing one in collection order (the second under ``--sw-skip``), although the worker
    ran, and reported last, the failing test after it (it knew its next test already)."""
    path = fx.root / "tests" / "test_stepwise.py"
    path.write_text(STEPWISE.lstrip())
    stepwise = fx.root / ".pytest_cache" / "v" / "cache" / "stepwise"
    args = ("--sw-skip" if skip else "--sw", "tests/test_stepwise.py")
    try:
        serial = zeus(fx, *args)
        expected = json.loads(stepwise.read_text())["last_failed"]
        reset_cache(fx.root)
        got = zeus(fx, *args, "-n", "1")
        restart = json.loads(stepwise.read_text())["last_failed"]
        again = zeus(fx, *args, "-n", "1")
    finally:
        path.unlink()
    assert serial.code == got.code == 2, got.out  # stepwise stops the run: "Interrupted"
    assert expected == f"tests/test_stepwise.py::{'test_second' if skip else 'test_first'}"
    assert restart == expected, got.out
    assert f"FAILED {expected}" in again.out, again.out


def test_n0_is_plain_pytest(fx: PytestProject) -> None:
    """``-n 0``: a serial run, output for output what plain pytest (with xdist) prints."""
    expected = plain(fx, "-n", "0")
    reset_cache(fx.root)
    assert_same(expected, zeus(fx, "-n", "0"))


# -- workers --------------------------------------------------------------------------------------
@XDIST_OR_NOT
def test_session_fixture_once_per_worker(fx: PytestProject, log: Path,
                                         disable: tuple[str, ...]) -> None:
    """Two workers share the tests (whether xdist is loaded or not); each sets the session
    fixture up and tears it down once, and the controller runs none."""
    got = zeus(fx, "-p", "no:cacheprovider", *disable, "-n", "2", "workers/test_spread.py",
               env=fx.env(ZW_LOG=str(log), ZW_BARRIER="1"))
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    lines = log_lines(log)
    ran = {(worker, pid) for event, worker, pid in lines if event == "test"}
    setups = [(worker, pid) for event, worker, pid in lines if event == "setup"]
    teardowns = [(worker, pid) for event, worker, pid in lines if event == "teardown"]
    assert {worker for worker, _ in ran} == {"gw0", "gw1"}, lines
    assert sorted(setups) == sorted(teardowns) == sorted(ran), lines
    assert len({pid for _, pid in ran}) == 2


def spread_workers(log: Path) -> set[str]:
    """The workers that set the session fixture of workers/test_spread.py up."""
    return {worker for event, worker, _ in log_lines(log) if event == "setup"}


def test_auto_from_environment(fx: PytestProject, log: Path) -> None:
    """``-n auto`` through ``PYTEST_ADDOPTS``, its count from ``PYTEST_XDIST_AUTO_NUM_WORKERS``."""
    env = fx.env(ZW_LOG=str(log), ZW_BARRIER="1", PYTEST_ADDOPTS="-n auto",
                 PYTEST_XDIST_AUTO_NUM_WORKERS="3")
    got = zeus(fx, "-p", "no:cacheprovider", "workers/test_spread.py", env=env)
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    assert spread_workers(log) == {"gw0", "gw1", "gw2"}


def usable_cpus() -> int:
    # The master, its phases and so the command inherit this process's CPU affinity.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@XDIST_OR_NOT
@pytest.mark.parametrize("kind", ["auto", "logical"])
def test_auto_is_the_usable_cpus(fx: PytestProject, log: Path, disable: tuple[str, ...],
                                 kind: str) -> None:
    """``-n auto``: one worker per CPU this process may run on; ``-n logical``: per logical
    CPU (both at most one per test)."""
    expected = min(20, usable_cpus() if kind == "auto" else os.cpu_count() or 1)
    got = zeus(fx, "-p", "no:cacheprovider", *disable, "-n", kind, "workers/test_spread.py",
               env=fx.env(ZW_LOG=str(log), ZW_BARRIER="1"))
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    assert spread_workers(log) == {f"gw{i}" for i in range(expected)}


@XDIST_OR_NOT
def test_auto_asks_the_plugins_hook(fx: PytestProject, log: Path,
                                    disable: tuple[str, ...]) -> None:
    """A conftest's ``pytest_xdist_auto_num_workers`` gives ``-n auto``'s count, before
    ``PYTEST_XDIST_AUTO_NUM_WORKERS``, with xdist installed (which plain ``pytest -n auto``
    agrees with) or not."""
    env = fx.env(ZW_LOG=str(log), ZW_BARRIER="1", ZW_AUTO="3",
                 PYTEST_XDIST_AUTO_NUM_WORKERS="2")
    args = ("-p", "no:cacheprovider", *disable, "-n", "auto", "workers/test_spread.py")
    got = zeus(fx, *args, env=env)
    assert (got.code, got.counts) == (0, {"passed": 20}), got.out + got.err
    assert spread_workers(log) == {"gw0", "gw1", "gw2"}
    if not disable:
        log.unlink()
        expected = plain(fx, *args, env=env)
        assert (expected.code, expected.counts) == (0, {"passed": 20}), expected.out
        assert spread_workers(log) == {"gw0", "gw1", "gw2"}


TAIL = """
import os
import time

import pytest


def ran(n):
    with open(os.environ["ZW_LOG"], "a") as f:
        f.write(f"ran {os.environ['PYTEST_XDIST_WORKER']} {n}\\n")


def quick_ones_done():
    with open(os.environ["ZW_LOG"]) as f:
        return len(f.readlines())


@pytest.mark.parametrize("n", range(6))
def test_tail(n):
    if n == 0:
        # The long test: it ends once the other worker ran three quick ones (bounded).
        deadline = time.monotonic() + 10
        while quick_ones_done() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    ran(n)
"""


def test_no_worker_holds_tests_back_at_the_end(fx: PytestProject, log: Path) -> None:
    """Six tests on two workers, the first one long: the worker that runs it is handed only
    the test after it (which it needs for its fixtures' teardown); the other worker runs the
    other four, instead of idling while the long test's worker holds two more."""
    path = fx.root / "tests" / "test_tail.py"
    path.write_text(TAIL.lstrip())
    log.touch()
    try:
        run = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/test_tail.py",
                   env=fx.env(ZW_LOG=str(log)))
    finally:
        path.unlink()
    assert (run.code, run.counts) == (0, {"passed": 6}), run.out + run.err
    workers = {n: worker for _, worker, n in log_lines(log)}
    long_worker = workers[0]
    assert sum(worker == long_worker for worker in workers.values()) <= 2, workers


CHILDREN = {
    "test_fork.py": """
import os
import sys


def test_before():
    pass


def test_fork_whose_child_goes_on():
    pid = os.fork()
    if pid == 0:
        sys.exit(3)  # the child does not os._exit: it goes on in pytest
    os.waitpid(pid, 0)


def test_after():
    pass
""",
    "test_daemon.py": """
import multiprocessing
import time


def test_leaves_a_daemonic_child():
    multiprocessing.Process(target=time.sleep, args=(600,), daemon=True).start()


def test_other():
    pass
""",
}


def test_children_of_tests_neither_hang_nor_outlive_the_run(fx: PytestProject) -> None:
    """A test's forked child that goes on past its test ends there with a line, instead of
    taking the worker's next test and leaving the worker waiting forever; a daemonic
    multiprocessing child a test left is terminated when its worker ends (as python's exit
    does) and does not hold the run open. Bounded by the run's timeout; the fixture checks
    that no worker-titled process (the children carry the title) is left."""
    with suite_folder(fx, "children", CHILDREN):
        run = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/children")
    assert (run.code, run.counts) == (0, {"passed": 5}), run.out + run.err
    assert "a process forked by a test went on past the end of its test" in run.err, run.err


SESSION_STATE = {
    "conftest.py": """
import os
import threading

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.lock = threading.Lock()  # a plugin's attribute that does not pickle
    return report


def pytest_configure(config):
    config.zw_written = open(os.environ["ZW_LOG"] + ".written", "a")  # buffered


def pytest_unconfigure(config):
    config.zw_written.close()


@pytest.fixture(autouse=True)
def write_each(request):
    yield
    request.config.zw_written.write(request.node.name + "\\n")


@pytest.fixture(scope="session", autouse=True)
def session_state(request, tmp_path_factory):
    yield
    with open(os.environ["ZW_LOG"], "a") as f:
        f.write(f"{request.session.testsfailed} {tmp_path_factory.getbasetemp().name} "
                f"{tmp_path_factory.getbasetemp().parent}\\n")
""",
    "test_state.py": """
import pytest


@pytest.mark.parametrize("n", range(4))
def test_some_fail(n):
    assert n % 2
""",
}


def test_worker_session_state_is_xdists(fx: PytestProject, log: Path) -> None:
    """What a worker's own session holds is what an xdist worker's does: the failures it ran
    (``request.session.testsfailed``), a basetemp ``popen-gwN`` inside the run's own folder
    (xdist's recipe for a fixture run once per run keys a file there), reports whose
    unpicklable attributes are dropped, not fatal to the worker, and a conftest's
    ``pytest_unconfigure`` at its end (it closes, so flushes, a file its tests wrote)."""
    with suite_folder(fx, "state", SESSION_STATE):
        run = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/state",
                   env=fx.env(ZW_LOG=str(log)))
        again = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/state",
                     env=fx.env(ZW_LOG=str(log)))
    assert (run.code, run.counts) == (1, {"failed": 2, "passed": 2}), run.out + run.err
    assert again.counts == run.counts, again.out + again.err
    lines = [line.split() for line in log.read_text().splitlines()]
    runs: dict[str, list[tuple[int, str]]] = {}
    for failed, name, parent in lines:
        runs.setdefault(parent, []).append((int(failed), name))
    assert len(runs) == 2, lines  # one folder per run
    for workers in runs.values():
        # One line per worker that ran a test (a worker slow to start may run none).
        assert sum(failed for failed, _ in workers) == 2, lines
        names = [name for _, name in workers]
        assert len(set(names)) == len(names) and set(names) <= {"popen-gw0", "popen-gw1"}, lines
    written = Path(f"{log}.written").read_text().split()
    assert sorted(written) == sorted([f"test_some_fail[{n}]" for n in range(4)] * 2), written


EXIT_HANDLERS = {
    "conftest.py": """
import atexit
import os
import tempfile

import pytest

# Made (with its cleanup at exit) once, in the process that imports the conftest: under -n the
# command, before the workers are forked; the workers use it until the run ends.
SHARED = tempfile.TemporaryDirectory(prefix="zw-shared-")
atexit.register(lambda: open(os.environ["ZW_LOG"], "a").write("conftest exit\\n"))


@pytest.fixture
def shared():
    return SHARED.name
""",
    "test_exits.py": """
import atexit
import os
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_registers(n, shared):
    time.sleep(0.1 + 0.3 * n)  # the workers finish at different times
    assert os.path.isdir(shared)
    atexit.register(lambda: open(os.environ["ZW_LOG"], "a").write(f"exit {n}\\n"))
""",
}


def test_exit_handlers_run_where_they_were_registered(fx: PytestProject, log: Path) -> None:
    """An ``atexit`` handler a test registers runs when its process exits: serially in pytest's
    process, under ``-n`` in the worker that ran the test (as at an xdist worker's exit), never
    lost to the worker's ``os._exit``. One the command registered before the fork (a conftest's
    temporary folder and its cleanup) runs in the command only, once, after every worker is
    done with it: a worker that finishes first must not remove what the others use."""
    with suite_folder(fx, "exits", EXIT_HANDLERS):
        serial = plain(fx, "-p", "no:cacheprovider", "tests/exits", env=fx.env(ZW_LOG=str(log)))
        expected = sorted(log.read_text().splitlines())
        log.write_text("")
        got = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/exits",
                   env=fx.env(ZW_LOG=str(log)))
    assert (serial.code, serial.counts) == (0, {"passed": 4}), serial.out + serial.err
    assert (got.code, got.counts) == (0, {"passed": 4}), got.out + got.err
    assert expected == ["conftest exit", *[f"exit {n}" for n in range(4)]], expected
    assert sorted(log.read_text().splitlines()) == expected, got.out + got.err


def test_exitfirst_stops_every_worker(fx: PytestProject, tmp_path: Path) -> None:
    """``-x``: the failure (the first test) stops every worker after at most the tests they
    had been handed (the others wait until the failure is reported: 3 at most), and the report
    is serial's but for the count of passed tests."""
    reports = tmp_path / "reports"
    reports.touch()
    args = ("-p", "no:cacheprovider", "-x", "workers/test_stop.py")
    env = fx.env(ZW_REPORTS=str(reports))
    serial = zeus(fx, *args, env=env)
    assert (serial.code, serial.counts) == (1, {"failed": 1}), serial.out + serial.err
    reports.write_text("")
    got = zeus(fx, *args, "-n", "2", env=env)
    assert got.code == 1, got.out + got.err
    counts = dict(got.counts or {})
    assert counts.pop("failed", 0) == 1 and counts.pop("passed", 0) <= 3 and not counts, got.out
    assert "stopping after 1 failures" in got.out
    assert report_tail(got, final_line=False) == report_tail(serial, final_line=False)


@pytest.mark.parametrize("dist", ["load", "loadscope"])
def test_module_and_class_fixtures(fx: PytestProject, log: Path, dist: str) -> None:
    """Module- and class-scoped fixtures: each worker sets each up at most once (a worker's
    tests come in collection order) and tears it down after its tests; with ``loadscope`` each
    is set up once in all. Outcomes and report as serially."""
    args = ("-p", "no:cacheprovider", "workers/test_scopes.py")
    env = fx.env(ZW_LOG=str(log))
    serial = zeus(fx, *args, env=env)
    assert (serial.code, serial.counts) == (1, {"failed": 1, "passed": 14}), serial.out
    keys = {event.split("-", 1)[1] for event, _, _ in log_lines(log) if event != "test"}
    assert keys == {"module", "class-TestFirst", "class-TestSecond"}
    log.unlink()
    got = zeus(fx, *args, "-n", "2", "--dist", dist, env=env)
    assert (got.code, got.counts) == (serial.code, serial.counts), got.out + got.err
    assert report_tail(got) == report_tail(serial)
    lines = log_lines(log)
    assert [e for e, _, _ in lines].count("test") == 14
    for worker in {w for _, w, _ in lines}:
        mine = [event for event, w, _ in lines if w == worker and event != "test"]
        for key in keys:
            events = [event for event in mine if event.endswith(f"-{key}")]
            assert events in ([], [f"setup-{key}", f"teardown-{key}"]), (worker, lines)
    setups = [event for event, _, _ in lines if event.startswith("setup-")]
    if dist == "loadscope":
        assert sorted(setups) == sorted(f"setup-{key}" for key in keys), lines
    else:
        assert set(setups) == {f"setup-{key}" for key in keys}, lines


def test_conftest_hooks_see_their_folders_items(fx: PytestProject, log: Path,
                                                tmp_path: Path) -> None:
    """The controller replays each report through the item's hooks: a conftest's
    ``pytest_runtest_logreport`` sees its folder's items only, as serially."""
    reports = tmp_path / "reports"
    args = ("-p", "no:cacheprovider", "tests/test_basic.py", "workers/test_spread.py")
    env = fx.env(ZW_LOG=str(log), ZW_REPORTS=str(reports))
    serial = zeus(fx, *args, env=env)
    expected = sorted(reports.read_text().splitlines())
    assert len(expected) == 60 and all(line.startswith("workers/") for line in expected)
    reports.unlink()
    got = zeus(fx, *args, "-n", "2", env=env)
    assert (got.code, got.counts) == (serial.code, serial.counts), got.out + got.err
    assert sorted(reports.read_text().splitlines()) == expected


# -- what plugins and conftests see of the workers, as under xdist --------------------------------
#: xdist's recipe for data a worker sends its controller: a conftest's pytest_configure_node adds
#: to a worker's input, its pytest_sessionfinish fills the worker's output, which
#: pytest_testnodedown reads in the controller.
NODE_HOOKS = {
    "conftest.py": """
import pytest

RAN = []
DOWN = []


@pytest.fixture(autouse=True)
def count_test():
    RAN.append(1)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["zw_extra"] = "for-" + node.gateway.id


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput["zw_ran"] = len(RAN)
        session.config.workeroutput["zw_extra"] = session.config.workerinput["zw_extra"]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    DOWN.append((node.gateway.id, node.workeroutput["zw_extra"], node.workeroutput["zw_ran"],
                 error))


def pytest_terminal_summary(terminalreporter):
    down = sorted(DOWN)
    terminalreporter.write_line(f"zw nodes {[node[:2] for node in down]} ran "
                                f"{sum(node[2] for node in down)} {[node[3] for node in down]}")
""",
    "test_nodes.py": """
import pytest


@pytest.mark.parametrize("n", range(6))
def test_sees_its_input(request, n):
    workerinput = request.config.workerinput
    assert workerinput["zw_extra"] == "for-" + workerinput["workerid"]
""",
}


def test_conftest_node_hooks_as_under_xdist(fx: PytestProject) -> None:
    """xdist's recipe for sending data between the controller and its workers works as under
    xdist: what a conftest's ``pytest_configure_node`` adds to ``node.workerinput`` a worker
    reads in ``config.workerinput``, and what its ``pytest_sessionfinish`` puts in
    ``config.workeroutput`` reaches ``pytest_testnodedown`` in the command, once per worker."""
    with suite_folder(fx, "nodes", NODE_HOOKS):
        got = zeus(fx, "-p", "no:cacheprovider", "-n", "2", "tests/nodes")
        expected = plain(fx, "-p", "no:cacheprovider", "-n", "2", "tests/nodes")
    line = "zw nodes [('gw0', 'for-gw0'), ('gw1', 'for-gw1')] ran 6 [None, None]"
    assert (expected.code, expected.counts) == (0, {"passed": 6}), expected.out + expected.err
    assert line in expected.out.splitlines(), expected.out
    assert (got.code, got.counts) == (0, {"passed": 6}), got.out + got.err
    assert line in got.out.splitlines(), got.out + got.err
    assert "Traceback" not in got.err, got.err


#: A conftest that, like pytest-benchmark, reads ``--dist`` at configure time to tell whether
#: the tests run on workers.
DIST_AT_CONFIGURE = {
    "conftest.py": """
def pytest_configure(config):
    config.zw_dist = config.getoption("dist", "absent")


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"zw dist at configure: {terminalreporter.config.zw_dist}")
""",
    "test_dist.py": """
def test_on_a_worker(request):
    assert request.config.workerinput["workerid"].startswith("gw")
""",
}


@XDIST_OR_NOT
def test_plugins_configure_seeing_xdists_dist(fx: PytestProject,
                                             disable: tuple[str, ...]) -> None:
    """``pytest_configure`` sees ``--dist`` as in xdist's controller (``load`` for ``-n 2``),
    so that a plugin that cannot run on workers turns itself off as under xdist; the tests
    still run on zeus's workers (xdist's own session does not start: no "created" line)."""
    with suite_folder(fx, "distmode", DIST_AT_CONFIGURE):
        got = zeus(fx, "-p", "no:cacheprovider", *disable, "-n", "2", "tests/distmode")
        serial = zeus(fx, "-p", "no:cacheprovider", *disable, "tests/distmode")
    assert (got.code, got.counts) == (0, {"passed": 1}), got.out + got.err
    assert "zw dist at configure: load" in got.out.splitlines(), got.out
    assert "created:" not in got.out, got.out
    assert (serial.code, serial.counts) == (1, {"failed": 1}), serial.out + serial.err
    assert "zw dist at configure: no" in serial.out.splitlines(), serial.out


def installed(distribution: str) -> None:
    """Skip unless ``distribution`` is installed (a folder left behind by an uninstall would
    import)."""
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")


BENCHMARKS = """
def test_timed(benchmark):
    benchmark(sum, range(10))


def test_other():
    pass
"""


def test_benchmarks_off_as_under_xdist(fx: PytestProject) -> None:
    """pytest-benchmark turns itself off under ``-n 2``, with its warning, as under xdist
    (benchmarks timed two at a time are not measurements): not silently timed on the
    workers with no table; and ``--benchmark-only`` is refused as under xdist."""
    installed("pytest-benchmark")
    path = fx.root / "tests" / "test_timed.py"
    path.write_text(BENCHMARKS.lstrip())
    env = fx.env()
    # This test's own xdist worker's: pytest-benchmark would take the serial run for a worker.
    env.pop("PYTEST_XDIST_WORKER", None)
    try:
        args = ("-p", "no:cacheprovider", "tests/test_timed.py")
        serial = zeus(fx, *args, env=env)
        got = zeus(fx, *args, "-n", "2", env=env)
        only = zeus(fx, *args, "-n", "2", "--benchmark-only", env=env)
    finally:
        path.unlink()
    assert (serial.code, serial.counts) == (0, {"passed": 2}), serial.out + serial.err
    assert "benchmark: 1 tests" in serial.out, serial.out
    assert (got.code, got.counts) == (0, {"passed": 2}), got.out + got.err
    assert "Benchmarks are automatically disabled" in got.out + got.err, got.out + got.err
    assert "benchmark: 1 tests" not in got.out, got.out
    assert only.code == 4 and "--benchmark-only" in only.err, only.out + only.err


RERUNS = """
import os

import pytest


@pytest.mark.parametrize("n", range(6))
def test_fails(n):
    assert 0


def test_crashes_once():
    with open(os.environ["ZW_LOG"], "a+") as f:
        f.seek(0)
        runs = f.read().count("run")
        f.write("run\\n")
    if not runs:
        os._exit(3)
"""


@XDIST_OR_NOT
def test_rerun_counts_are_the_runs(fx: PytestProject, log: Path,
                                   disable: tuple[str, ...]) -> None:
    """pytest-rerunfailures counts reruns for the whole run, not per worker:
    ``--max-suite-reruns 2`` reruns two tests in all, as serially and under xdist."""
    installed("pytest-rerunfailures")
    path = fx.root / "tests" / "test_reruns.py"
    path.write_text(RERUNS.lstrip())
    try:
        args = ("-p", "no:cacheprovider", *disable, "--reruns", "3", "--max-suite-reruns", "2",
                "tests/test_reruns.py::test_fails")
        serial = zeus(fx, *args)
        got = zeus(fx, *args, "-n", "2")
    finally:
        path.unlink()
    for run in (serial, got):
        assert run.code == 1 and re.search(r"\b6 failed, 2 rerun\b", run.out), run.out + run.err


def test_crashed_test_rerun_as_under_xdist(fx: PytestProject, log: Path) -> None:
    """xdist's ``pytest_handlecrashitem``: pytest-rerunfailures runs a test that killed its
    worker again, on the worker that takes its place, as under xdist (``pytest -n 2``)."""
    installed("pytest-rerunfailures")
    path = fx.root / "tests" / "test_reruns.py"
    path.write_text(RERUNS.lstrip())
    try:
        args = ("-p", "no:cacheprovider", "--reruns", "1", "-rR",
                "tests/test_reruns.py::test_crashes_once")
        got = zeus(fx, *args, "-n", "2", env=fx.env(ZW_LOG=str(log)))
        log.unlink()
        expected = plain(fx, *args, "-n", "2", env=fx.env(ZW_LOG=str(log)))
    finally:
        path.unlink()
    for run in (expected, got):
        assert run.code == 0 and re.search(r"\b1 passed, 1 rerun\b", run.out), \
            run.out + run.err
        assert "RERUN tests/test_reruns.py::test_crashes_once" in run.out, run.out


def test_header_ends_as_serially(fx: PytestProject) -> None:
    """The progress dots come after the blank line that ends pytest's header serially (there,
    the first file name's line starts with it), as under xdist; ``-q`` has none."""
    args = ("-p", "no:cacheprovider", "tests/test_basic.py")
    got = zeus(fx, *args, "-n", "2")
    assert re.search(r"^collected \d+ items\n\n[.FEsx]", got.out, re.M), got.out
    quiet = zeus(fx, *args, "-n", "2", "-q")
    assert re.match(r"[.FEsx]", quiet.out), quiet.out


def coverage_table(run: Run) -> str:
    """pytest-cov's report: from its header to its TOTAL line."""
    start = run.out.index("coverage: platform")
    return run.out[run.out.rindex("\n", 0, start) + 1:run.out.index("\n", run.out.index("TOTAL"))]


def coverage_patches_fork() -> bool:
    """Whether this coverage has ``[run] patch = fork`` (a new ``Coverage`` in each child)."""
    try:
        import coverage.control
    except ImportError:
        return False
    return hasattr(coverage.control, "_after_fork_in_child")


@pytest.mark.parametrize(("patch", "contexts"), [("", ()), ("fork", ()),
                                                 ("fork", ("--cov-context=test",))],
                         ids=["plain", "patch-fork", "patch-fork-contexts"])
def test_coverage_matches_plain_pytest(fx: PytestProject, log: Path, tmp_path: Path,
                                       patch: str, contexts: tuple[str, ...]) -> None:
    """``--cov``: each worker saves what it measured, pytest-cov's combine in the command
    reads it: the report is plain pytest's, lines run by either worker included. Also with
    coverage's ``patch = fork`` (which would stop pytest-cov's measurement in each worker,
    and its context switches with it, for one of its own) and ``--cov-context=test``."""
    if importlib.util.find_spec("pytest_cov") is None:
        pytest.skip("pytest-cov is not installed")
    if patch and not coverage_patches_fork():
        pytest.skip("this coverage has no patch = fork")
    rc = tmp_path / "coveragerc"
    rc.write_text(f"[run]\npatch = {patch}\n" if patch else "[run]\n")
    args = ("-p", "no:cacheprovider", "--cov=zwcov", "--cov-report=term-missing",
            f"--cov-config={rc}", *contexts, "workers/test_cov.py")
    env = fx.env(ZW_LOG=str(log), ZW_BARRIER="1")
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        # This test's own xdist worker's: the serial run's barrier would wait for 2 workers.
        env.pop(name, None)
    try:
        expected = plain(fx, *args, env=env)
        log.unlink()
        got = zeus(fx, *args, "-n", "2", env=env)
    finally:
        for path in fx.root.glob(".coverage*"):
            path.unlink()
    assert (expected.code, expected.counts) == (0, {"passed": 5}), expected.out + expected.err
    assert (got.code, got.counts) == (0, {"passed": 5}), got.out + got.err
    table = coverage_table(expected)
    assert re.search(r"zwcov\.py\s+14\s+2\s+86%\s+12, 16$", table, re.M), table
    assert coverage_table(got) == table
    assert "Warning" not in got.out + got.err
    assert {w for e, w, _ in log_lines(log) if e == "test"} == {"gw0", "gw1"}


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
    fixture down (a teardown slower than the controller's grace runs to its end, as serially),
    and none is left."""
    child = pexpect.spawn(ZEUS, ["pytest", "-p", "no:cacheprovider", "-n", "2",
                                 "workers/test_slow.py"],
                          cwd=str(fx.root),
                          env=fx.env(TERM="xterm", ZW_LOG=str(log), ZW_BARRIER="1",
                                     ZW_TEARDOWN_SLEEP="1.5"),
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
