"""Fixtures of the stress suite: a temp project checked for leaks (tests/harness: processes; here,
zombies), the serial marker (every stress test is serial), and the table of figures printed at
the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import conftest as tests_conftest
from tests.harness import parallel
from tests.harness.master import Master
from tests.harness.project import Project

from stress.support import FAST, FULL, MODE, TABLE, Resting, zombies_of

#: Per test, at full size (pyproject's 60 s stays the reduced run's bound).
FULL_TIMEOUT = 300


def pytest_configure(config: pytest.Config) -> None:
    tests_conftest.pytest_configure(config)  # the serial marker, default signal dispositions
    if MODE not in ("full", "reduced"):
        raise pytest.UsageError(f"ZEUSPY_STRESS must be full or reduced, not {MODE!r}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    parallel.mark(items)  # every stress test is serial (tests/harness/parallel.py)
    if FULL:
        here = Path(__file__).parent
        for item in items:
            if here in item.path.parents:
                item.add_marker(pytest.mark.timeout(FULL_TIMEOUT))


#: The suite's temp project fixture, leak-checked (tests/conftest.py).
project = tests_conftest.project


@pytest.fixture
def master(project: Project) -> Iterator[Master]:
    """A running master, boot and app ready; stopped (and checked to stop cleanly) after."""
    running = Master(project, FAST)
    try:
        running.wait_ready("boot", "app")
        yield running
    finally:
        pid = running.proc.pid
        code = running.stop()
        assert not zombies_of({pid}), "zombies left"
    assert code == 0, running.output[-3000:]


@pytest.fixture
def resting(master: Master) -> Resting:
    return Resting(master)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TABLE or not FULL:  # the reduced run's figures say little
        return
    write = terminalreporter.write_line
    write("")
    write(f"stress figures ({'full' if FULL else 'reduced'} run)")
    header = (f"{'test':<34} {'count':>7} {'secs':>7} {'per s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'fds':>9} {'RSS MB':>9}  notes")
    write(header)
    write("-" * len(header))
    for row in TABLE:
        rate = f"{row.count / row.seconds:.0f}" if row.seconds and row.count else "-"
        write(f"{row.name:<34} {row.count:>7} {row.seconds:>7.1f} {rate:>7} "
              f"{row.percentile(0.5):>7} {row.percentile(0.99):>7} {row.fds or '-':>9} "
              f"{row.rss or '-':>9}  {row.notes}")
