"""Fixtures shared by every test: a temp project whose processes are checked for leaks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Master, Project, kill_marked, leftover_processes, new_mark

#: How long processes of a finished test may take to disappear (escalating kills take ~2 s).
LEAK_GRACE = 5.0


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A temp project (zeus.json + zeus_plan.py); fails the test if any process it started
    outlives it (they are killed anyway, so one leak does not break the next test)."""
    root = tmp_path / "proj"
    root.mkdir()
    proj = Project(root, new_mark()).write()
    yield proj
    deadline = time.monotonic() + LEAK_GRACE
    left = leftover_processes(proj.mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = leftover_processes(proj.mark)
    if left:
        kill_marked(proj.mark)
        pytest.fail(f"processes left behind: {left}\nmaster log:\n{proj.log[-3000:]}")


@pytest.fixture
def master(project: Project) -> Iterator[Master]:
    """A running master for the default project, with boot and app ready."""
    m = Master(project)
    try:
        m.wait_ready("boot", "app")
        yield m
    finally:
        m.stop()
