"""zeus.json: found, parsed and validated into a frozen :class:`Config` (the plan tree).

Every problem is a :class:`ConfigError` whose message is one line naming the file (and line and
column for JSON syntax) or the node, and what is wrong.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zeuspy import paths
from zeuspy.errors import ConfigError

ROOT_PHASE = "boot"
CONFIG_NAME = "zeus.json"
DEFAULT_PLAN_FILE = "zeus_plan.py"
KNOWN_KEYS = frozenset({"command", "plan", "plan_file", "autostart", "idle_timeout"})
#: Words `zeus WORD` runs itself; a command or alias with one of these names could never run.
RESERVED_NAMES = frozenset({"start", "init", "commands", "status", "restart", "stop", "version",
                            "help"})
#: Characters a node name may not contain: they would break the wire protocol's framing.
FORBIDDEN_IN_NAMES = frozenset(":\0\n\r\t ;")


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create it or pass --config PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _Duplicate as dup:
        raise ConfigError(f"{path}: the key {dup.key!r} appears twice in one object") from None
    return _from_data(path, data)


def load_builtin(root: Path) -> Config:
    """The built-in plan for the project in ``root`` (no zeus.json): Django's when ``manage.py``
    sets ``DJANGO_SETTINGS_MODULE``, else the Python plan."""
    from zeuspy import plans
    from zeuspy.plans import project

    project.tool_settings(root)  # a wrong [tool.zeus] stops `zeus start` here, in one line
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
        if not name or FORBIDDEN_IN_NAMES & set(name):
            raise ConfigError(
                f"{path}: {what} {name!r} in {where}: names must be non-empty and contain no "
                "spaces, ':' or ';'"
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
        command: tuple[str, ...] = (sys.executable, "-m", "zeuspy.slave", builtin)
    elif raw_command is None:
        plan_name = data.get("plan_file", DEFAULT_PLAN_FILE)
        if not isinstance(plan_name, str) or not plan_name:
            raise ConfigError(f'{path}: "plan_file" must be a file name')
        plan_file = (root / plan_name).absolute()
        command = (sys.executable, "-m", "zeuspy.slave", str(plan_file))
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
    autostart = data.get("autostart", False)
    if not isinstance(autostart, bool):
        raise ConfigError(f'{path}: "autostart" must be true or false')
    idle = data.get("idle_timeout")
    if idle is not None and (isinstance(idle, bool) or not isinstance(idle, (int, float))
                             or idle <= 0):
        raise ConfigError(f'{path}: "idle_timeout" must be a number of seconds above 0')
    config = Config(
        path=path,
        autostart=autostart,
        idle_timeout=float(idle) if idle is not None else None,
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
