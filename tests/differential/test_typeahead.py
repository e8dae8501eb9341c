"""Issue 10, item 4: keys typed ahead are not lost.

In an interactive bash on a PTY, a line typed while the command is busy and not reading stdin
is left for whoever reads next: the shell runs it after the command (python), and a command that
reads one line takes only that line, leaving the next for the shell.
"""

from __future__ import annotations

import re

import pytest

from tests.differential.harness import PROMPT, interactive_bash
from tests.harness.project import PyProject

BUSY = """\
import time
print("busy", flush=True)
time.sleep(1)
print("idle", flush=True)
"""
READ_ONE = """\
import time
print("busy", flush=True)
time.sleep(1)
print("got", repr(input()), flush=True)
"""
PROJECT_FILES = {"work.py": BUSY, "read_one.py": READ_ONE}
#: Typed ahead; the shell's output is TYPED_42, which the echo of the typed line does not contain.
TYPED = "echo TYPED_$((40+2))"
MARKS = (rb"busy", rb"idle", rb"got '[^']*'", rb"TYPED_42")


def _events(transcript: bytes) -> list[str]:
    found = [(m.start(), m[0].decode()) for pattern in MARKS
             for m in re.finditer(pattern, transcript)]
    return [label for _, label in sorted(found)]


def _type_ahead(project: PyProject, side: str, script: str, lines: list[str]) -> list[str]:
    with interactive_bash(project, side, timeout=6.0) as (shell, seen):
        shell.sendline(f"$PY {script}")
        shell.expect_exact(b"busy")
        for line in lines:
            shell.sendline(line)
        # The shell runs the typed line once the command is done (bounded: 6 s).
        shell.expect_exact(b"TYPED_42")
        shell.expect_exact(PROMPT)
        return _events(seen.getvalue())


@pytest.mark.parametrize("side", ["python", "zeus"])
def test_a_line_typed_while_busy_runs_afterwards(zeus_project: PyProject, side: str) -> None:
    events = _type_ahead(zeus_project, side, "work.py", [TYPED])
    assert events == ["busy", "idle", "TYPED_42"], events


@pytest.mark.parametrize("side", ["python", "zeus"])
def test_a_command_reading_one_line_leaves_the_next(zeus_project: PyProject, side: str) -> None:
    events = _type_ahead(zeus_project, side, "read_one.py", ["first line", TYPED])
    assert events == ["busy", "got 'first line'", "TYPED_42"], events
