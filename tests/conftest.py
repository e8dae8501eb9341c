"""Fixtures shared by every test: a temp project whose processes are checked for leaks, and a
master running in it. The machinery is tests/harness/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import parallel
from tests.harness.master import Master
from tests.harness.processes import default_signals, project_leftovers
from tests.harness.project import Project, new_project


def pytest_configure(config: pytest.Config) -> None:
    parallel.configure(config)
    # A suite started in the background (`make test &`, nohup) inherits SIGINT, SIGQUIT or SIGHUP
    # ignored, and so would every `python` the differential tests run for reference (an ignored
    # signal stays ignored across exec), where a terminal's user gets the defaults.
    default_signals()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    parallel.mark(items)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A temp project (zeus.json + zeus_plan.py, the default plan); fails the test if any process
    it started outlives it (tests.harness.processes.project_leftovers: they are killed anyway,
    so one leak does not break the next test)."""
    proj = new_project(tmp_path / "proj")
    yield proj
    project_leftovers(proj)


@pytest.fixture
def master(project: Project) -> Iterator[Master]:
    """A running master for the default project, with boot and app ready."""
    m = Master(project)
    try:
        m.wait_ready("boot", "app")
        yield m
    finally:
        m.stop()
