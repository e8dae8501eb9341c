"""zeus.json: found, parsed and validated into a frozen :class:`Config` (the plan tree).

Every problem is a :class:`ConfigError` whose message is one line naming the file (and line and
column for JSON syntax) or the node, and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zeuspy import cli, inputfile, paths, settings
from zeuspy.errors import ConfigError

ROOT_PHASE = "boot"
CONFIG_NAME = "zeus.json"
DEFAULT_PLAN_FILE = "zeus_plan.py"
#: zeus.json's keys: the plan's shape and shim, and the settings (zeuspy/settings.py).
KNOWN_KEYS = frozenset({"command", "plan", "plan_file", *settings.JSON_KEYS})
#: Words `zeus WORD` runs itself; a command or alias with one of these names could never run.
RESERVED_NAMES = frozenset(cli.RESERVED)
#: Characters a node name may not contain: ':' and NUL would break the wire protocol's framing,
#: spaces and ';' the command line, '/' makes a name look like a path (`zeus db/migrate` reads as
#: a file); control characters (any character :meth:`str.isprintable` refuses) would reach the
#: terminal through the chart and the log.
FORBIDDEN_IN_NAMES = frozenset(":\0\n\r\t ;/")
#: Nesting of zeus.json's arrays and objects: a phase per level below "plan", far beyond any real
#: tree, and well below Python's recursion limit, which a deeper file would hit (RecursionError).
MAX_NESTING = 100
#: Characters of a number literal: Python refuses to convert an int of more than 4300 digits, and
#: no setting needs more than a few.
MAX_NUMBER = 100
#: A JSON token that matters for :func:`_first_problem`: a string (skipped), a bracket, a number
#: or a bare word (Python's json accepts NaN and Infinity, which are not JSON).
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]|-?[0-9][0-9.eE+-]*|-?Infinity|NaN')


@dataclass(frozen=True)
class PhaseSpec:
    """One phase of the plan: its parent (None for the root), child phases and commands."""

    name: str
    parent: str | None
    children: tuple[str, ...]
    commands: tuple[str, ...]


@dataclass(frozen=True)
class CommandSpec:
    """One command of the plan: the phase it forks from and its aliases."""

    name: str
    phase: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    """A validated plan. ``phases`` is in pre-order (parents before children)."""

    path: Path
    root: Path
    command: tuple[str, ...]
    uses_python_shim: bool
    plan_file: Path | None
    phases: dict[str, PhaseSpec]
    commands: dict[str, CommandSpec]
    aliases: dict[str, str]
    warnings: tuple[str, ...] = ()
    #: Start a detached master when a client finds none ("autostart": true).
    autostart: bool = False
    #: A detached master stops after this many seconds without a command ("idle_timeout").
    idle_timeout: float | None = None
    #: Every setting zeus.json or [tool.zeus] gives (zeus.json first), validated, by name
    #: (zeuspy/settings.py); the flags and environment variables come on top (`zeus start`).
    settings: dict[str, object] = field(default_factory=dict, compare=False)
    #: The built-in plan in use ("python", "django") when there is no zeus.json, else None.
    builtin: str | None = None

    def resolve(self, name: str) -> CommandSpec | None:
        """The command called ``name`` or aliased by it."""
        return self.commands.get(self.aliases.get(name, name))

    def command_names(self) -> list[str]:
        return list(self.commands)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _BadValue(Exception):
    """A number or constant json would accept but zeus.json may not hold; located afterwards
    by :func:`_first_problem` (json's hooks do not know where they are)."""


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER:
        raise _BadValue
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER or not math.isfinite(value):
        raise _BadValue
    return value


def _parse_constant(text: str) -> object:
    raise _BadValue


def _first_problem(text: str) -> tuple[int, str] | None:
    """The offset and description of the first thing in ``text`` nested deeper than
    :data:`MAX_NESTING`, or a number json may accept but zeus.json may not hold."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        head = token[0]
        if head == '"':
            continue
        if head in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return match.start(), f"nested deeper than {MAX_NESTING} levels"
        elif head in "]}":
            depth -= 1
        elif token.lstrip("-")[:1].isdigit():
            if len(token) > MAX_NUMBER:
                return match.start(), (f"a number of {len(token)} characters "
                                       f"(at most {MAX_NUMBER})")
            try:
                finite = math.isfinite(float(token))
            except ValueError:
                finite = True  # not a number at all: json says where
            if not finite:
                return match.start(), f"the number {token[:20]} is out of range"
        else:
            return match.start(), f"{token} is not a JSON value"
    return None


def _parse(path: Path, text: str) -> object:
    """zeus.json's text as Python values; every failure is a one-line ConfigError with the line
    and column."""
    # Checked before json sees it: a deep enough file makes json raise RecursionError.
    if text.count("[") + text.count("{") > MAX_NESTING:
        problem = _first_problem(text)
        if problem is not None and problem[1].startswith("nested"):
            raise ConfigError(f"{path}:{inputfile.location(text, problem[0])}: invalid JSON: "
                              f"{problem[1]}")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates, parse_int=_parse_int,
                          parse_float=_parse_float, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _Duplicate as dup:
        raise ConfigError(f"{path}: the key {dup.key!r} appears twice in one object") from None
    except (_BadValue, RecursionError, ValueError):
        problem = _first_problem(text)
        where, what = problem if problem is not None else (0, "a value out of range")
        raise ConfigError(f"{path}:{inputfile.location(text, where)}: invalid JSON: "
                          f"{what}") from None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def load(path: Path) -> Config:
    """Read and validate ``path``; the plan file is checked too when the zeuspy shim runs it."""
    path = path.absolute()
    try:
        text = inputfile.read_text(path, CONFIG_NAME, inputfile.CONFIG_LIMIT)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create it or pass --config PATH") from None
    return _with_tool_settings(_from_data(path, _parse(path, text)))


def _with_tool_settings(config: Config) -> Config:
    """``config`` with the settings ``[tool.zeus]`` of its root's pyproject.toml gives, under
    zeus.json's own (which win). Raises :class:`ConfigError` for a wrong ``[tool.zeus]``."""
    from zeuspy.plans import project

    values = {**project.tool_settings(config.root).values, **config.settings}
    idle = values.get("idle_timeout")
    return replace(config, settings=values, autostart=values.get("autostart") is True,
                   idle_timeout=float(idle) if isinstance(idle, (int, float)) else None)


def wants_autostart(root: Path) -> bool:
    """True when the project in ``root`` asks for autostart: ``"autostart"`` of its zeus.json,
    else of ``[tool.zeus]`` in its pyproject.toml. False when neither says true, or a file is
    bad in any way (the client that asks goes on to say there is no master; ``zeus start``
    reports the problem). Never raises and never blocks (a FIFO is refused)."""
    path = root / CONFIG_NAME
    try:
        data = _parse(path, inputfile.read_text(path, CONFIG_NAME, inputfile.CONFIG_LIMIT))
    except FileNotFoundError:
        data = {}
    except (OSError, ConfigError):
        return False
    if isinstance(data, dict) and "autostart" in data:
        return data["autostart"] is True
    from zeuspy.plans import project

    try:
        return project.tool_settings(root).values.get("autostart") is True
    except (OSError, ConfigError):
        return False


def load_builtin(root: Path) -> Config:
    """The built-in plan for the project in ``root`` (no zeus.json): Django's when ``manage.py``
    sets ``DJANGO_SETTINGS_MODULE``, else the Python plan."""
    from zeuspy import plans
    from zeuspy.plans import project

    name = "django" if project.django_settings(root) else "python"
    plan_class = plans.DjangoPlan if name == "django" else plans.PythonPlan
    ref = plans.BUILTIN[name]
    path = (root / CONFIG_NAME).absolute()
    config = _from_data(path, {"plan": plan_class.TREE}, builtin=ref)
    note = (f"{root}: no {CONFIG_NAME}, using the built-in {name} plan "
            f"(`zeus init` writes it out to edit)")
    if name == "python":
        nested = sorted(p.parent.name for p in root.glob("*/manage.py")
                        if project.django_settings(p.parent))
        if nested:
            note += (f"; {nested[0]}/manage.py is a Django project: run zeus in {nested[0]}/ "
                     "for the Django plan")
    # A wrong [tool.zeus] stops `zeus start` here, in one line.
    config = _with_tool_settings(config)
    return replace(config, builtin=name, warnings=(note, *config.warnings))


def discover(start: Path | None = None) -> Config:
    """The plan for the project around ``start`` (default: cwd): the nearest zeus.json, else the
    built-in plan for the project root (:func:`zeuspy.paths.project_root`)."""
    here = os.fsencode(start or Path.cwd())
    found = paths.find_upwards(here, CONFIG_NAME.encode())
    if found is not None:
        return load(Path(os.fsdecode(found)) / CONFIG_NAME)
    return load_builtin(Path(os.fsdecode(paths.project_root(here))))


def reload(config: Config) -> Config:
    """``config`` read again: its zeus.json, or (still none there) the built-in plan again."""
    if config.builtin is not None and not config.path.exists():
        return load_builtin(config.root)
    return load(config.path)


def _from_data(path: Path, data: object, builtin: str | None = None) -> Config:
    """Validate parsed zeus.json content; ``builtin``: the ``module:Class`` plan to run instead
    of a plan file."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be an object, not {_kind(data)}")
    warnings = tuple(
        f"{path}: unknown key {key!r} ignored" for key in data if key not in KNOWN_KEYS
    )
    plan = data.get("plan")
    if not isinstance(plan, dict):
        raise ConfigError(f'{path}: "plan" must be an object whose only key is "{ROOT_PHASE}"')
    if list(plan) != [ROOT_PHASE] or not isinstance(plan[ROOT_PHASE], dict):
        names = ", ".join(repr(k) for k in plan) or "nothing"
        raise ConfigError(
            f'{path}: the root of "plan" must be one phase named "{ROOT_PHASE}" (an object); '
            f"found {names}"
        )
    phases: dict[str, PhaseSpec] = {}
    commands: dict[str, CommandSpec] = {}
    aliases: dict[str, str] = {}
    taken: dict[str, str] = {}

    def claim(name: str, what: str, where: str) -> None:
        if not name or FORBIDDEN_IN_NAMES & set(name) or not name.isprintable():
            raise ConfigError(
                f"{path}: {what} {name!r} in {where}: names must be non-empty and contain no "
                "spaces, ':', ';', '/' or control characters"
            )
        if name in RESERVED_NAMES and what != "phase":
            raise ConfigError(
                f"{path}: {what} {name!r} in {where} has the name of the built-in `zeus {name}`, "
                "which would always run instead; rename it"
            )
        if name in taken:
            raise ConfigError(
                f"{path}: {what} {name!r} in {where} is already used as {taken[name]}"
            )
        taken[name] = f"{what} in {where}"

    def walk(name: str, parent: str | None, body: dict[str, Any]) -> None:
        children: list[str] = []
        leafs: list[str] = []
        phases[name] = PhaseSpec(name, parent, (), ())  # placeholder keeps pre-order
        for key, value in body.items():
            where = f'phase "{name}"'
            if isinstance(value, dict):
                claim(key, "phase", where)
                children.append(key)
                walk(key, name, value)
            elif value is None or isinstance(value, list):
                claim(key, "command", where)
                names = value or []
                if not all(isinstance(a, str) for a in names):
                    raise ConfigError(
                        f'{path}: command "{key}" in {where}: aliases must be a list of strings'
                    )
                for alias in names:
                    claim(alias, f'alias of "{key}"', where)
                    aliases[alias] = key
                leafs.append(key)
                commands[key] = CommandSpec(key, name, tuple(names))
            else:
                raise ConfigError(
                    f"{path}: node {json.dumps(key, ensure_ascii=False)} in {where} is "
                    f"{_kind(value)}; a phase is an object "
                    "and a command is a list of aliases or null"
                )
        phases[name] = PhaseSpec(name, parent, tuple(children), tuple(leafs))

    claim(ROOT_PHASE, "phase", "plan")
    walk(ROOT_PHASE, None, plan[ROOT_PHASE])

    root = path.parent
    raw_command = data.get("command")
    plan_file: Path | None = None
    if builtin is not None:
        command: tuple[str, ...] = (sys.executable, "-m", "zeuspy.shim", builtin)
    elif raw_command is None:
        plan_name = data.get("plan_file", DEFAULT_PLAN_FILE)
        if not isinstance(plan_name, str) or not plan_name:
            raise ConfigError(f'{path}: "plan_file" must be a file name')
        if "\0" in plan_name:  # no file name holds one (Python raises ValueError on it)
            raise ConfigError(f'{path}: "plan_file" contains a NUL character')
        plan_file = (root / plan_name).absolute()
        command = (sys.executable, "-m", "zeuspy.shim", str(plan_file))
    elif isinstance(raw_command, str):
        try:
            command = tuple(shlex.split(raw_command))
        except ValueError as exc:
            raise ConfigError(
                f'{path}: "command" cannot be parsed as a shell line: {exc}'
            ) from None
    elif isinstance(raw_command, list) and all(isinstance(a, str) for a in raw_command):
        command = tuple(raw_command)
    else:
        raise ConfigError(f'{path}: "command" must be a string or a list of strings')
    if not command:
        raise ConfigError(f'{path}: "command" is empty')
    if any("\0" in word for word in command):  # exec would raise ValueError
        raise ConfigError(f'{path}: "command" contains a NUL character')
    values: dict[str, object] = {}
    for key, setting in settings.JSON_KEYS.items():
        if key in data:
            try:
                values[setting.name] = setting.parse(data[key])
            except settings.SettingError as exc:
                raise ConfigError(f'{path}: "{key}" {exc}') from None
    config = Config(
        path=path,
        settings=values,
        root=root,
        command=command,
        uses_python_shim=raw_command is None,
        plan_file=plan_file,
        phases=phases,
        commands=commands,
        aliases=aliases,
        warnings=warnings,
    )
    if plan_file is not None:
        from zeuspy import planfile

        planfile.check(plan_file, config)
    return config
