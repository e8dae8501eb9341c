"""Helpers of the command-line end-to-end tests (test_chart, test_cli, test_cli_small,
test_background): reading the live chart off a PTY (frames, text, SGR colours), and
`zeus status --json` checked against its schema. (Background masters, processes and waits are
tests/harness/'s.)"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pexpect

from tests.harness.project import ZEUS, Project
from tests.harness.waits import BOOT_TIMEOUT, EXIT_TIMEOUT, wait_for

#: The SGR parameters of each displayed state (zeuspy.statusview.STATE_STYLE: ready green,
#: booting yellow, waiting blue, crashed bold red).
STATE_SGR = {"ready": frozenset({"32"}), "booting": frozenset({"33"}),
             "waiting": frozenset({"34"}), "crashed": frozenset({"1", "31"})}
STATES = tuple(STATE_SGR)
#: Any escape sequence rich writes: CSI (colours, cursor moves, line erase, cursor show/hide).
CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
#: Where each frame of the chart starts (its title; split on the prefix so that a wrapped title
#: in a narrow window still starts a frame).
TITLE = "zeus · "
LEGEND = "● ready  ● booting  ● waiting  ● crashed"
TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d ")
#: Bound on one chart change showing (a boot here takes ~0.1 s, a file change 0.05 s more).
CHANGE_TIMEOUT = 10.0


def colour_params(codes: frozenset[str]) -> frozenset[str]:
    """The colour-bearing SGR parameters (foreground/background, 8/16/256/true colours)."""
    return frozenset(c for c in codes
                     if c.isdigit() and (30 <= int(c) <= 49 or 90 <= int(c) <= 107))


def sgr_parameters(raw: str) -> set[str]:
    """Every SGR parameter in ``raw``."""
    found: set[str] = set()
    for m in CSI.finditer(raw):
        if m.group(2) == "m":
            found.update(p for p in m.group(1).split(";") if p)
    return found


def plain(raw: str) -> str:
    """``raw`` without escape sequences and carriage returns."""
    return CSI.sub("", raw).replace("\r", "")


@dataclass
class StyledLine:
    """One line of a frame: its text and the SGR parameters in force at each character."""

    text: str
    codes: list[frozenset[str]]

    def style_at(self, index: int) -> frozenset[str]:
        return self.codes[index]


def styled_lines(raw: str) -> list[StyledLine]:
    lines: list[tuple[list[str], list[frozenset[str]]]] = [([], [])]
    current: frozenset[str] = frozenset()

    def add(chunk: str) -> None:
        for ch in chunk:
            if ch == "\n":
                lines.append(([], []))
            elif ch != "\r":
                lines[-1][0].append(ch)
                lines[-1][1].append(current)

    pos = 0
    for m in CSI.finditer(raw):
        add(raw[pos:m.start()])
        if m.group(2) == "m":
            params = [p for p in m.group(1).split(";") if p]
            if not params or params == ["0"]:
                current = frozenset()
            elif params[0] == "0":
                current = frozenset(params[1:])
            else:
                current = current | frozenset(params)
        pos = m.end()
    add(raw[pos:])
    return [StyledLine("".join(chars), codes) for chars, codes in lines]


@dataclass
class PhaseRow:
    name: str
    state: str
    boot: str | None
    note: str
    name_style: frozenset[str]
    state_style: frozenset[str]


@dataclass
class CommandRow:
    name: str
    aliases: list[str]
    traceback_note: bool
    name_style: frozenset[str]


PHASE_ROW = r"^[\s│├└─]*(?P<name>{name})  (?P<state>waiting|booting|ready|crashed)(?P<rest>.*)$"
COMMAND_ROW = (r"^(?P<name>{name})(?: \((?P<aliases>[^)]*)\))?\s*"
               r"(?P<note>run to see the traceback)?\s*$")


class Frame:
    """One drawing of the chart (from its title to the next frame's title)."""

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.lines = styled_lines(raw)
        # Drop the erase sequences' empty tail lines; keep the text lines.
        self.text = plain(raw)

    @property
    def complete(self) -> bool:
        return LEGEND in self.text

    def text_lines(self) -> list[str]:
        return [line.text for line in self.lines]

    def phase(self, name: str) -> PhaseRow | None:
        pattern = re.compile(PHASE_ROW.format(name=re.escape(name)))
        for line in self.lines:
            if line.text.strip() == "Commands":
                return None
            m = pattern.match(line.text)
            if m:
                rest = m.group("rest")
                boot = re.match(r"^  (\d+\.\d\d)s", rest)
                return PhaseRow(name, m.group("state"), boot.group(1) if boot else None,
                                rest.strip(), line.style_at(m.start("name")),
                                line.style_at(m.start("state")))
        return None

    def state(self, name: str) -> str | None:
        row = self.phase(name)
        return row.state if row else None

    def command(self, name: str) -> CommandRow | None:
        pattern = re.compile(COMMAND_ROW.format(name=re.escape(name)))
        seen_header = False
        for line in self.lines:
            if line.text.strip() == "Commands":
                seen_header = True
                continue
            if not seen_header:
                continue
            m = pattern.match(line.text)
            if m:
                aliases = m.group("aliases")
                return CommandRow(name, aliases.split(", ") if aliases else [],
                                  m.group("note") is not None, line.style_at(m.start("name")))
        return None

    def legend_styles(self) -> dict[str, frozenset[str]]:
        """state -> the SGR parameters of its ● in the legend."""
        for line in self.lines:
            index = line.text.find(LEGEND)
            if index < 0:
                continue
            styles = {}
            for state in STATES:
                dot = line.text.index(f"● {state}", index)
                styles[state] = line.style_at(dot)
            return styles
        raise AssertionError(f"no legend in the frame:\n{self.text}")

    def messages(self) -> list[str]:
        """The master's messages under the legend."""
        lines = self.text_lines()
        for index, line in enumerate(lines):
            if LEGEND in line:
                return [m.strip() for m in lines[index + 1:] if TIMESTAMP.match(m.strip())]
        return []


class Chart:
    """``zeus start`` on a real PTY (pexpect), its output gathered and cut into frames."""

    def __init__(self, project: Project, *args: str, dimensions: tuple[int, int] = (40, 100),
                 **env: str) -> None:
        environment = project.env(TERM="xterm-256color", **env)
        for name in ("FORCE_COLOR", "COLORTERM", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
            environment.pop(name, None)
        self.project = project
        self.child = pexpect.spawn(ZEUS, ["start", *args], cwd=str(project.root),
                                   env=environment, dimensions=dimensions, timeout=EXIT_TIMEOUT)
        self.buffer = b""
        self.eof = False

    @property
    def output(self) -> str:
        return self.buffer.decode("utf-8", "replace")

    def pump(self, wait: float = 0.05) -> None:
        if self.eof:
            return
        try:
            self.buffer += self.child.read_nonblocking(1 << 16, timeout=wait)
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            self.eof = True

    def frames(self) -> list[Frame]:
        parts = self.output.split(TITLE)
        return [Frame(TITLE + part) for part in parts[1:]]

    def complete_frames(self) -> list[Frame]:
        return [f for f in self.frames() if f.complete]

    def wait_frame(self, predicate: Callable[[Frame], Any], what: str,
                   timeout: float = CHANGE_TIMEOUT, after: int = 0) -> Frame:
        """The latest complete frame (the ``after``-th or later) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            frames = self.complete_frames()
            if len(frames) > after and predicate(frames[-1]):
                return frames[-1]
            if self.eof or time.monotonic() > deadline:
                last = frames[-1].text if frames else self.output[-3000:]
                raise AssertionError(f"timed out waiting for {what}; eof={self.eof}; last "
                                     f"frame:\n{last}")

    def interrupt(self) -> int:
        """^C, as a user would; the exit status once the master is gone."""
        self.child.sendintr()
        deadline = time.monotonic() + EXIT_TIMEOUT
        while not self.eof:
            if time.monotonic() > deadline:
                raise AssertionError(f"no exit within {EXIT_TIMEOUT} s after ^C")
            self.pump(0.2)
        self.child.close()
        assert self.child.signalstatus is None, f"killed by signal {self.child.signalstatus}"
        return int(self.child.exitstatus)

    def close(self) -> None:
        if self.child.isalive():
            self.child.kill(15)
            deadline = time.monotonic() + EXIT_TIMEOUT
            while self.child.isalive() and time.monotonic() < deadline:
                self.pump(0.1)
                if self.eof:
                    break
        self.child.close(force=True)


@contextmanager
def chart(project: Project, *args: str, **kwargs: Any) -> Iterator[Chart]:
    c = Chart(project, *args, **kwargs)
    try:
        yield c
    finally:
        c.close()


# -- zeus status --json ---------------------------------------------------------------------------

#: The documented schema of `zeus status --json` (schema 1): key -> allowed types.
SCHEMA_TOP = {"schema": (int,), "master": (dict, type(None)), "phases": (list,),
              "commands": (list,)}
SCHEMA_MASTER = {"pid": (int,), "root": (str,), "config": (str, type(None)),
                 "builtin": (str, type(None)), "socket": (str,), "version": (str,),
                 "started": (float, int), "watcher": (str, type(None))}
SCHEMA_PHASE = {"name": (str,), "parent": (str, type(None)), "depth": (int,), "state": (str,),
                "pid": (int, type(None)), "boot_seconds": (float, int, type(None)),
                "error": (str, type(None)), "blocked_by": (str, type(None))}
SCHEMA_COMMAND = {"name": (str,), "aliases": (list,), "phase": (str,), "state": (str,)}


def _check_keys(obj: Any, schema: dict[str, tuple[type, ...]], where: str) -> None:
    assert isinstance(obj, dict), f"{where}: not an object: {obj!r}"
    assert set(obj) == set(schema), f"{where}: keys {sorted(obj)} != {sorted(schema)}"
    for key, types in schema.items():
        value = obj[key]
        assert isinstance(value, types) and not isinstance(value, bool), \
            f"{where}.{key}: {value!r} is not {types}"


def validate_status(data: Any) -> None:
    """Fail unless ``data`` follows the status schema, version 1 (and is consistent)."""
    _check_keys(data, SCHEMA_TOP, "status")
    assert data["schema"] == 1
    if data["master"] is None:
        assert data["phases"] == [] and data["commands"] == []
        return
    _check_keys(data["master"], SCHEMA_MASTER, "master")
    master = data["master"]
    assert master["config"] is None or master["builtin"] is None, master
    assert master["config"] is None or os.path.isfile(master["config"]), \
        f"names a zeus.json that does not exist: {master}"
    seen: dict[str, dict[str, Any]] = {}
    for index, phase in enumerate(data["phases"]):
        _check_keys(phase, SCHEMA_PHASE, f"phases[{index}]")
        assert phase["state"] in STATES, phase
        if phase["parent"] is None:
            assert index == 0 and phase["depth"] == 0, phase
        else:
            assert phase["parent"] in seen, f"not in pre-order: {phase}"
            assert phase["depth"] == seen[phase["parent"]]["depth"] + 1, phase
        if phase["state"] == "ready":
            assert phase["pid"] is not None and phase["boot_seconds"] is not None, phase
            assert phase["boot_seconds"] >= 0
        if phase["state"] == "crashed":
            assert phase["error"], phase
        else:
            assert phase["error"] is None, phase
        if phase["blocked_by"] is not None:
            assert phase["state"] == "waiting", phase
        seen[phase["name"]] = phase
    for index, command in enumerate(data["commands"]):
        _check_keys(command, SCHEMA_COMMAND, f"commands[{index}]")
        assert all(isinstance(a, str) for a in command["aliases"])
        assert command["phase"] in seen, command
        assert command["state"] == seen[command["phase"]]["state"], command


def status_json(project: Project, env: dict[str, str] | None = None) -> tuple[int, Any]:
    """(exit status, parsed JSON) of `zeus status --json`, the JSON checked against the schema."""
    result = project.run("status", "--json", env=env)
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(f"not JSON: {result.stdout!r} {result.stderr!r}") from None
    validate_status(data)
    return result.returncode, data


def phases_by_name(data: Any) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in data["phases"]}


def wait_status(project: Project, predicate: Callable[[int, Any], Any], what: str,
                timeout: float = BOOT_TIMEOUT) -> tuple[int, Any]:
    last: list[Any] = []

    def check() -> Any:
        code, data = status_json(project)
        last[:] = [code, data]
        return (code, data) if predicate(code, data) else None

    try:
        return wait_for(check, timeout, interval=0.05, what=what)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {last}") from None
