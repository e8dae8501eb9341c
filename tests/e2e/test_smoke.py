"""The shortest path through everything: start, run, stop."""

from tests.harness.master import Master
from tests.harness.project import Project


def test_hello_through_master(master: Master, project: Project) -> None:
    result = project.run("hello", "world")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello world\n"


def test_status_passes_through(master: Master, project: Project) -> None:
    assert project.run("exitwith", "7").returncode == 7
