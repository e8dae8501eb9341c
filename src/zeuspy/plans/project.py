"""What a project looks like from its files: its own packages, its ``[tool.zeus]`` settings and
whether it is a Django project. Standard library only: the master reads this too."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from zeuspy import inputfile
from zeuspy.errors import ConfigError

#: Folders at a project's top that hold no package of its own.
SKIP_DIRS = frozenset({"tests", "test", "docs", "doc", "build", "dist", "examples", "venv",
                       "env", "node_modules", "site-packages"})
#: ``manage.py``'s ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")``.
_SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")


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
    found = _SETTINGS.search(text)
    return found.group(1) if found else None


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
