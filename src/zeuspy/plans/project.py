"""What a project looks like from its files: its own packages, its ``[tool.zeus]`` settings and
whether it is a Django project. Standard library only: the master reads this too."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zeuspy import inputfile
from zeuspy.errors import ConfigError

#: Folders at a project's top that hold no package of its own.
SKIP_DIRS = frozenset({"tests", "test", "docs", "doc", "build", "dist", "examples", "venv",
                       "env", "node_modules", "site-packages"})
#: ``manage.py``'s ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")``.
_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")
_SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"


def source_dirs(root: Path) -> list[Path]:
    """Where the project's own code lives: ``src/`` (when there is one) and the root."""
    return [path for path in (root / "src", root) if path.is_dir()]


def put_on_path(root: Path) -> None:
    """The project root and its ``src/`` folder first on ``sys.path`` (root before ``src``)."""
    for path in source_dirs(root):
        text = str(path)
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)


def own_packages(root: Path) -> list[str]:
    """The project's own top-level packages (folders with ``__init__.py``), ``src/`` first."""
    found: list[str] = []
    for base in source_dirs(root):
        for entry in sorted(base.iterdir()):
            name = entry.name
            if (name.startswith((".", "_")) or name in SKIP_DIRS or not name.isidentifier()
                    or name in found):
                continue
            if entry.is_dir() and (entry / "__init__.py").is_file():
                found.append(name)
    return found


def django_settings(root: Path) -> str | None:
    """The settings module ``manage.py`` in ``root`` sets by default, or None."""
    try:
        raw = inputfile.read_bytes(root / "manage.py", "manage.py", inputfile.SOURCE_LIMIT)
    except (OSError, ConfigError):  # none, or not a file we could read: not a Django project
        return None
    text = raw.decode("utf-8", errors="replace")
    named = list(dict.fromkeys(_SETTINGS.findall(text)))
    if len(named) <= 1:
        return named[0] if named else None
    return _settings_without_command(text) or named[0]


def _settings_without_command(source: str) -> str | None:
    """For a manage.py that names several settings modules: the one it chooses when its
    command line has no command (``python manage.py``), or None when that is not clear.

    Read from its syntax, in the order it runs: a branch of an ``if`` that tests ``sys.argv``
    is taken as not run (such a branch chooses settings for one command, ``test`` say: its
    ``else`` runs), a branch of any other ``if``, a loop or an ``except`` may or may not run;
    the first ``setdefault`` certain to run chooses, an assignment certain to run overrides.
    A guess: a command whose manage.py chooses otherwise is refused when it runs
    (:mod:`zeuspy.plans.django_settings`)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    chosen = None
    for value, certain, overrides in _settings_set(tree.body, True):
        if certain and (chosen is None or overrides):
            chosen = value
    return chosen


def _settings_set(body: list[ast.stmt], certain: bool) -> Iterator[tuple[str, bool, bool]]:
    """(module, certain to run, overrides an earlier choice) for each statement of ``body``
    and the statements in it that sets ``DJANGO_SETTINGS_MODULE`` to a literal."""
    for statement in body:
        if isinstance(statement, ast.If):
            if _tests_argv(statement.test):
                yield from _settings_set(statement.orelse, certain)
            else:
                yield from _settings_set(statement.body + statement.orelse, False)
        elif isinstance(statement, (ast.FunctionDef, ast.With)):  # manage.py's main(), called
            yield from _settings_set(statement.body, certain)
        elif isinstance(statement, ast.Try):
            yield from _settings_set(statement.body, certain)
            for handler in statement.handlers:
                yield from _settings_set(handler.body, False)
            yield from _settings_set(statement.orelse + statement.finalbody, certain)
        elif isinstance(statement, (ast.For, ast.While)):
            yield from _settings_set(statement.body + statement.orelse, False)
        else:
            for node in ast.walk(statement):
                found = _settings_literal(node)
                if found is not None:
                    yield found[0], certain, found[1]


def _tests_argv(test: ast.expr) -> bool:
    """Whether an ``if``'s test reads ``sys.argv`` (or a name ``argv``)."""
    return any((isinstance(node, ast.Attribute) and node.attr == "argv")
               or (isinstance(node, ast.Name) and node.id == "argv")
               for node in ast.walk(test))


def _settings_literal(node: ast.AST) -> tuple[str, bool] | None:
    """(module, overrides) when ``node`` is ``<mapping>.setdefault("DJANGO_SETTINGS_MODULE",
    "module")`` (False) or ``<mapping>["DJANGO_SETTINGS_MODULE"] = "module"`` (True)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault" and len(node.args) == 2
            and _literal(node.args[0]) == _SETTINGS_ENV):
        value = _literal(node.args[1])
        return None if value is None else (value, False)
    if isinstance(node, ast.Assign):
        value = _literal(node.value)
        if value is not None and any(isinstance(target, ast.Subscript)
                                     and _literal(target.slice) == _SETTINGS_ENV
                                     for target in node.targets):
            return value, True
    return None


def _literal(node: ast.AST) -> str | None:
    """The string ``node`` is a literal of, else None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@dataclass(frozen=True)
class ToolSettings:
    """``[tool.zeus]`` of pyproject.toml. ``preload`` None means "not set": the default applies.
    ``values``: every setting given there, validated (zeuspy/settings.py), by name."""

    preload: tuple[str, ...] | None = None
    app: tuple[str, ...] = ()
    boot_env: tuple[str, ...] = ()
    values: dict[str, object] = field(default_factory=dict, compare=False)


def tool_settings(root: Path) -> ToolSettings:
    """Read ``[tool.zeus]`` (keys ``preload``, ``app``, ``boot_env``); defaults when absent.
    Raises :class:`ConfigError` naming the file and key for a wrong value."""
    path = root / "pyproject.toml"
    try:
        raw = inputfile.read_bytes(path, "pyproject.toml", inputfile.SOURCE_LIMIT)
    except FileNotFoundError:
        return ToolSettings()
    if b"tool.zeus" not in raw:
        return ToolSettings()  # no need to parse TOML (tomllib costs milliseconds)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(f"{path}: [tool.zeus] needs Python 3.11 or the tomli package "
                              "to be read") from None
    try:
        data = tomllib.loads(inputfile.decode(path, "pyproject.toml", raw))
    except tomllib.TOMLDecodeError as exc:  # its message ends with "(at line L, column C)"
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigError(f"{path}: invalid TOML: nested too deeply to be read") from None
    except ValueError as exc:  # int() of more than 4300 digits is not a TOMLDecodeError
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    section = data.get("tool", {})
    tool = section.get("zeus", {}) if isinstance(section, dict) else {}
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: [tool.zeus] must be a table")
    from zeuspy import settings

    unknown = set(tool) - set(settings.BY_NAME)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [tool.zeus]: {', '.join(sorted(unknown))}"
                          f" (known: {', '.join(settings.BY_NAME)})")
    values: dict[str, object] = {}
    for key, raw_value in tool.items():
        try:
            values[key] = settings.BY_NAME[key].parse(raw_value)
        except settings.SettingError as exc:
            raise ConfigError(f"{path}: [tool.zeus] {key} {exc}") from None
    return ToolSettings(
        preload=values.get("preload"),  # type: ignore[arg-type]
        app=values.get("app", ()),  # type: ignore[arg-type]
        boot_env=values.get("boot_env", ()),  # type: ignore[arg-type]
        values=values,
    )
