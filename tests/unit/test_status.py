"""The master's status lines: describe() for each state, StatusLines on a stream."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from zeuspy import config
from zeuspy.master.display import StatusLines, describe
from zeuspy.master.tree import Phase, PhaseState, ProcessTree


def phase(commands: tuple[str, ...] = (), seconds: float | None = None) -> Phase:
    p = Phase("app", None, commands=commands)
    p.boot_seconds = seconds
    return p


@pytest.mark.parametrize(("p", "state", "line"), [
    (phase(seconds=1.234), PhaseState.READY, "app: ready in 1.23 s"),
    (phase(seconds=0.0), PhaseState.READY, "app: ready in 0.00 s"),
    (phase(seconds=12.345), PhaseState.READY, "app: ready in 12.35 s"),
    (phase(), PhaseState.READY, "app: ready"),
    (phase(("test", "console")), PhaseState.CRASHED,
     "app: crashed (run test, console to see the traceback)"),
    (phase(("test",)), PhaseState.CRASHED, "app: crashed (run test to see the traceback)"),
    (phase(), PhaseState.CRASHED, "app: crashed (run a command below it to see the traceback)"),
    (phase(), PhaseState.BOOTING, "app: booting"),
    (phase(seconds=3.0), PhaseState.BOOTING, "app: booting"),
    (phase(), PhaseState.UNBOOTED, "app: waiting"),
])
def test_describe(p: Phase, state: PhaseState, line: str) -> None:
    assert describe(p, state) == line


def test_every_state_has_a_distinct_line() -> None:
    lines = {describe(phase(), state) for state in PhaseState}
    assert len(lines) == len(PhaseState)
    assert all("\n" not in line for line in lines)


def make_tree(tmp_path: Path) -> ProcessTree:
    (tmp_path / "zeus.json").write_text(
        json.dumps({"command": "true", "plan": {"boot": {"app": {"test": None}}}}))
    return ProcessTree(config.load(tmp_path / "zeus.json"))


def test_status_lines_print_each_transition(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    stream = io.StringIO()
    StatusLines(tree, stream)
    app = tree.phases["app"]
    tree.transition(app, PhaseState.BOOTING)
    tree.transition(app, PhaseState.CRASHED)
    tree.transition(app, PhaseState.UNBOOTED)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d app: .*", line) for line in lines), lines
    assert [line[9:] for line in lines] == [
        "app: booting", "app: crashed (run test to see the traceback)", "app: waiting"]


def test_status_lines_survive_a_closed_stream(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    stream = io.StringIO()
    StatusLines(tree, stream)
    stream.close()
    tree.transition(tree.root, PhaseState.BOOTING)  # must not raise
    assert tree.root.state is PhaseState.BOOTING
