"""`zeus start` on a terminal: the live status chart, read off a real PTY (pexpect) as phases
boot, crash and recover; its colours (SGR codes), boot times, commands and aliases, legend,
master messages, resize, --no-color / NO_COLOR, ^C. And the plain status lines (--simple-status,
stdout not a terminal) and the --log transition trace."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest

from tests.e2e._cli_support import (
    CHANGE_TIMEOUT,
    LEGEND,
    STATE_SGR,
    Frame,
    chart,
    colour_params,
    plain,
    sgr_parameters,
)
from tests.harness.master import Master
from tests.harness.project import Project
from tests.harness.waits import wait_for

FAST = ("--file-change-delay", "0.05")
#: Pause between "every phase ready" and the first edit (as tests/e2e/test_reload.py does).
WATCH_SETTLE = 0.5

TREE: dict[str, Any] = {
    "boot": {
        "app": {"hello": ["hi", "h"], "other": None, "deep": {"deepcmd": None}},
        "web": {"serve": ["s"]},
    }
}

#: `web` boots until the test creates web.go (so that "booting" stays on screen); `app` imports
#: appmod.py (the test breaks and fixes it) and prints to stdout and stderr (which go to the log,
#: never into the chart).
PLAN = """
import os, sys, time
import zeuspy

class ChartPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        import appmod
        print("PHASE-STDOUT-MARK from app", flush=True)
        print("PHASE-STDERR-MARK from app", file=sys.stderr, flush=True)

    def deep(self):
        pass

    def web(self):
        deadline = time.monotonic() + 20
        while not os.path.exists("web.go") and time.monotonic() < deadline:
            time.sleep(0.02)

    def hello(self, argv):
        print("hello", *argv)

    def other(self, argv):
        pass

    def deepcmd(self, argv):
        pass

    def serve(self, argv):
        pass
"""

GOOD = "VALUE = 1\n"
BROKEN = "VALUE = (\n"  # a syntax error: importing it crashes `app`
FIXED = "VALUE = 2\n"


@pytest.fixture
def proj(project: Project) -> Project:
    project.write(TREE, PLAN)
    (project.root / "appmod.py").write_text(GOOD)
    return project


def assert_phase(frame: Frame, name: str, state: str, booted: bool | None = None) -> None:
    row = frame.phase(name)
    assert row is not None, f"no row for {name}:\n{frame.text}"
    assert row.state == state, f"{name}: {row.state} != {state}\n{frame.text}"
    assert row.name_style == STATE_SGR[state], (name, row.name_style, frame.text)
    assert row.state_style == STATE_SGR[state], (name, row.state_style, frame.text)
    if booted is True:
        assert row.boot is not None and float(row.boot) >= 0, f"{name}: no boot time\n{frame.text}"
    elif booted is False:
        assert row.boot is None, f"{name}: a boot time while {state}\n{frame.text}"


def assert_command(frame: Frame, name: str, state: str, aliases: list[str],
                   traceback: bool) -> None:
    row = frame.command(name)
    assert row is not None, f"no command row for {name}:\n{frame.text}"
    assert row.aliases == aliases, (name, row.aliases)
    assert row.name_style == STATE_SGR[state], (name, row.name_style, frame.text)
    assert row.traceback_note is traceback, f"{name}: traceback note\n{frame.text}"


def states(frame: Frame, **expected: str) -> bool:
    return all(frame.state(name) == state for name, state in expected.items())


def test_state_styles_are_the_documented_colours() -> None:
    from zeuspy.statusview import STATE_STYLE

    assert STATE_STYLE == {"ready": "green", "booting": "yellow", "waiting": "blue",
                           "crashed": "bold red"}


def test_chart_follows_boot_crash_and_recovery(proj: Project) -> None:
    with chart(proj, *FAST, dimensions=(40, 100)) as c:
        # The first frame: nothing booted yet, every phase waiting (blue).
        first = c.wait_frame(lambda f: True, "the first frame")
        for name in ("boot", "app", "deep", "web"):
            assert_phase(first, name, "waiting", booted=False)
        assert c.output.startswith("\x1b[?25l"), "the cursor is hidden while the chart is live"

        # boot, app and deep ready (green, with boot times); web still booting (yellow).
        frame = c.wait_frame(lambda f: states(f, boot="ready", app="ready", deep="ready",
                                              web="booting"), "app ready while web boots")
        for name in ("boot", "app", "deep"):
            assert_phase(frame, name, "ready", booted=True)
        assert_phase(frame, "web", "booting", booted=False)
        assert_command(frame, "hello", "ready", ["hi", "h"], traceback=False)
        assert_command(frame, "other", "ready", [], traceback=False)
        assert_command(frame, "deepcmd", "ready", [], traceback=False)
        assert_command(frame, "serve", "booting", ["s"], traceback=False)
        # The tree is drawn with box characters, the children under their parent.
        lines = frame.text_lines()
        row = {name: next(i for i, line in enumerate(lines) if re.search(rf"\b{name}  ", line))
               for name in ("boot", "app", "deep", "web")}
        assert row["boot"] < row["app"] < row["deep"] < row["web"], frame.text
        assert lines[row["app"]].startswith("├── ")
        assert lines[row["deep"]].startswith("│   └── ")
        assert lines[row["web"]].startswith("└── ")
        assert LEGEND in frame.text
        assert frame.legend_styles() == STATE_SGR
        assert any("listening on" in m for m in frame.messages()), frame.text

        (proj.root / "web.go").write_text("")
        frame = c.wait_frame(lambda f: f.state("web") == "ready", "web ready")
        assert_phase(frame, "web", "ready", booted=True)
        assert_command(frame, "serve", "ready", ["s"], traceback=False)
        time.sleep(WATCH_SETTLE)

        # A syntax error in a module app imported: app crashes (bold red), deep waits for it
        # (blue), every command below app says to run it for the traceback; web is untouched.
        seen = len(c.complete_frames())
        (proj.root / "appmod.py").write_text(BROKEN)
        frame = c.wait_frame(lambda f: f.state("app") == "crashed", "app crashed", after=seen)
        assert_phase(frame, "app", "crashed", booted=False)
        assert_phase(frame, "deep", "waiting", booted=False)
        assert frame.phase("deep").note == "(app crashed)"  # type: ignore[union-attr]
        assert_phase(frame, "boot", "ready", booted=True)
        assert_phase(frame, "web", "ready", booted=True)
        assert_command(frame, "hello", "crashed", ["hi", "h"], traceback=True)
        assert_command(frame, "other", "crashed", [], traceback=True)
        assert_command(frame, "deepcmd", "waiting", [], traceback=True)
        assert_command(frame, "serve", "ready", ["s"], traceback=False)
        assert any(m.endswith("appmod.py changed: restarting app") for m in frame.messages()), \
            frame.text

        # Fixed: app and deep boot again and the traceback notes go. (The pause: under load, a
        # fix saved within ~50 ms of the crash was seen to be missed for good; a race in the
        # events watcher's rebuild, reported separately: this test is about the chart.)
        time.sleep(WATCH_SETTLE)
        seen = len(c.complete_frames())
        (proj.root / "appmod.py").write_text(FIXED)
        frame = c.wait_frame(lambda f: states(f, app="ready", deep="ready"), "app recovered",
                             after=seen)
        for name in ("boot", "app", "deep", "web"):
            assert_phase(frame, name, "ready", booted=True)
        for name in ("hello", "other", "deepcmd", "serve"):
            assert not frame.command(name).traceback_note  # type: ignore[union-attr]
        restarts = [m for m in frame.messages() if m.endswith("appmod.py changed: restarting app")]
        assert len(restarts) == 2, frame.text  # newest last, the older one still shown
        assert frame.messages()[-1].endswith("appmod.py changed: restarting app")

        # A smaller, narrower window: redrawn (a new frame) to fit, and the master lives on.
        seen = len(c.complete_frames())
        c.child.setwinsize(30, 60)
        frame = c.wait_frame(lambda f: states(f, app="ready"), "a redraw after the resize",
                             after=seen)
        assert c.child.isalive()
        too_wide = [line for line in frame.text_lines() if len(line) > 60]
        assert not too_wide, too_wide
        assert len([line for line in frame.text_lines() if line.strip()]) <= 30
        assert_phase(frame, "app", "ready", booted=True)

        # ^C: a clean stop, the cursor shown again as the very last thing written.
        assert c.interrupt() == 0
        assert c.output.endswith("\x1b[?25h"), repr(c.output[-200:])
        assert "stopping" in c.complete_frames()[-1].text
    # What phases print goes to the log, never into the chart.
    assert "PHASE-STDOUT-MARK" not in c.output and "PHASE-STDERR-MARK" not in c.output
    assert "PHASE-STDOUT-MARK from app" in proj.log
    assert "PHASE-STDERR-MARK from app" in proj.log


@pytest.mark.parametrize("how", ["--no-color", "NO_COLOR=1"])
def test_no_colour(proj: Project, how: str) -> None:
    (proj.root / "web.go").write_text("")
    (proj.root / "appmod.py").write_text(BROKEN)  # a crashed phase too: no red either
    args, env = ((how,), {}) if how.startswith("--") else ((), {"NO_COLOR": "1"})
    with chart(proj, *args, *FAST, **env) as c:
        frame = c.wait_frame(lambda f: states(f, boot="ready", app="crashed", web="ready"),
                             "boot ready, app crashed")
        assert frame.command("hello").traceback_note  # type: ignore[union-attr]
        assert re.search(r"boot  ready  \d+\.\d\ds", frame.text), frame.text
        assert LEGEND in frame.text
        assert c.interrupt() == 0
    colours = {p for p in sgr_parameters(c.output) if colour_params(frozenset({p}))}
    assert not colours, f"colour codes with {how}: {sorted(colours)}"


def test_colours_without_no_colour(proj: Project) -> None:
    """The counterpart of test_no_colour: the same project, coloured by default."""
    (proj.root / "web.go").write_text("")
    with chart(proj, *FAST) as c:
        c.wait_frame(lambda f: states(f, boot="ready", app="ready", web="ready"), "all ready")
        assert c.interrupt() == 0
    assert {"32", "34"} <= sgr_parameters(c.output)


# -- plain lines ----------------------------------------------------------------------------------

LINE = re.compile(r"^\d\d:\d\d:\d\d \S.*$")


def plain_lines(text: str) -> list[str]:
    """The non-empty lines of ``text``, without the terminal's echo of ^C."""
    lines = (line.replace("^C", "") for line in text.replace("\r", "").split("\n"))
    return [line for line in lines if line.strip()]


def test_simple_status_on_a_terminal(proj: Project) -> None:
    (proj.root / "web.go").write_text("")
    with chart(proj, "--simple-status", *FAST) as c:
        wait_for(lambda: (c.pump(), "deep: ready" in c.output and "web: ready" in c.output)[1],
                 CHANGE_TIMEOUT, what="deep and web ready")
        assert c.interrupt() == 0
    assert "\x1b" not in c.output, repr(c.output)
    lines = plain_lines(c.output)
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    text = "\n".join(line[9:] for line in lines)
    for name in ("boot", "app", "deep", "web"):
        assert f"{name}: booting" in text
        assert re.search(rf"^{name}: ready in \d+\.\d\d s$", text, re.MULTILINE), text
    assert re.search(r"^zeus master \(pid \d+\) listening on ", text, re.MULTILINE)
    assert text.endswith("stopping")
    assert "PHASE-STDOUT-MARK" not in c.output


def test_plain_lines_when_stdout_is_not_a_terminal(proj: Project) -> None:
    (proj.root / "web.go").write_text("")
    master = Master(proj, FAST)
    try:
        master.wait_ready("boot", "app", "deep", "web")
        time.sleep(WATCH_SETTLE)
        (proj.root / "appmod.py").write_text(BROKEN)
        wait_for(lambda: "app: crashed" in master.output, CHANGE_TIMEOUT, what="app crashed")
        time.sleep(WATCH_SETTLE)  # see the note in test_chart_follows_boot_crash_and_recovery
        (proj.root / "appmod.py").write_text(FIXED)
        wait_for(lambda: master.output.count("deep: ready") >= 2, CHANGE_TIMEOUT,
                 what="deep ready again")
    finally:
        assert master.stop() == 0
    output = master.output
    assert "\x1b" not in output, repr(output)
    lines = plain_lines(output)
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    text = "\n".join(line[9:] for line in lines)
    assert "app: crashed (run hello, other to see the traceback)" in text
    assert text.count("appmod.py changed: restarting app") == 2
    assert len(re.findall(r"^app: ready in \d+\.\d\d s$", text, re.MULTILINE)) == 2
    # One line per change: no line repeated back to back.
    assert all(a != b for a, b in itertools.pairwise(lines)), lines


# -- --log FILE -----------------------------------------------------------------------------------

TRACE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (?P<phase>\w+) (?P<old>\w+) -> "
                   r"(?P<new>\w+)(?: \((?P<took>\d+\.\d{3}) s\))?$")


def test_log_file_traces_every_transition(proj: Project) -> None:
    (proj.root / "web.go").write_text("")
    (proj.root / "appmod.py").write_text(BROKEN)
    trace_path = proj.root / "trace.log"
    master = Master(proj, ("--log", str(trace_path), *FAST))
    try:
        master.wait_ready("boot", "web")
        wait_for(lambda: "app: crashed" in master.output, CHANGE_TIMEOUT, what="app crashed")
        wait_for(lambda: "app booting -> crashed" in trace_path.read_text(), CHANGE_TIMEOUT,
                 what="the crash in the trace")
    finally:
        assert master.stop() == 0
    lines = trace_path.read_text().splitlines()
    matches = [TRACE.match(line) for line in lines]
    assert all(matches), lines
    seen = [(m["phase"], m["old"], m["new"]) for m in matches if m]
    assert seen[0] == ("boot", "unbooted", "booting"), lines
    assert ("boot", "booting", "ready") in seen
    assert ("web", "booting", "ready") in seen
    assert ("app", "booting", "crashed") in seen
    for m in matches:
        assert m is not None
        assert (m["took"] is not None) == (m["new"] == "ready"), m.group(0)
    stamps = [line.split()[0] for line in lines]
    assert stamps == sorted(stamps)
    assert plain(trace_path.read_text()) == trace_path.read_text()  # no escape codes
