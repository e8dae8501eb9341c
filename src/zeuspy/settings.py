"""Every setting of zeuspy, in one registry: its zeus.json key, its ``[tool.zeus]`` key, its
``zeus start`` flag, its environment variable, what values it takes, its default and its doc.

config.py reads the file keys from it, ``zeus start`` builds its flags (and ``--help``) from it,
and the README's settings table is :func:`markdown_table` (a test keeps them equal). Where a
setting is given in several places, the first of these wins: the flag, the environment variable,
zeus.json, ``[tool.zeus]``, the default. Every setting may be given in ``[tool.zeus]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: Longest delay or polling interval accepted (an hour: longer is a typo).
MAX_SECONDS = 3600.0


class SettingError(ValueError):
    """A value a setting does not take; the message says what it takes (no location)."""


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingError("must be true or false")
    return value


def _seconds(low: float, strict: bool, high: float = math.inf) -> Callable[[object], float]:
    above = f"above {low:g}" if strict else f"from {low:g}"
    upto = f" to {high:g}" if high < math.inf else ""
    words = f"must be a number of seconds {above}{upto}"

    def parse(value: object) -> float:
        # nan and inf are floats too; a watcher thread would die on them later, in a traceback.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingError(words)
        number = float(value)
        if not (math.isfinite(number) and (number > low if strict else number >= low)
                and number <= high):
            raise SettingError(words)
        return number

    return parse


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingError("must be a list of strings")
    return tuple(value)


def _path(value: object) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise SettingError("must be a file name")
    return value


@dataclass(frozen=True)
class Setting:
    """One setting. ``parse`` takes a value as JSON or TOML gives it (a flag's value is parsed
    to a number first) and returns it, or raises :class:`SettingError`."""

    name: str
    doc: str
    default: object
    parse: Callable[[object], object]
    #: Where it may be given (None: not there). Every setting has a ``[tool.zeus]`` key.
    json_key: str | None = None
    flag: str | None = None
    env: str | None = None
    #: For a flag: its metavar, and the value when given without one (``--poll``).
    metavar: str | None = None
    const: object = None
    #: How a flag's text becomes the value ``parse`` takes (None: a flag without a value).
    flag_type: Callable[[str], object] | None = None
    #: For a boolean's environment variable: any non-empty value is true (NO_COLOR's rule),
    #: not only one other than ``0``.
    env_any_value: bool = False
    #: A flag ``zeus start --help`` does not list (set by ``--detach`` for the background master).
    hidden: bool = False

    @property
    def tool_key(self) -> str:
        return self.name

    @property
    def takes(self) -> str:
        """What it takes, for the docs."""
        try:
            self.parse(object())
        except SettingError as exc:
            return str(exc).removeprefix("must be ")
        return "anything"


SETTINGS: tuple[Setting, ...] = (
    Setting("autostart", "a `zeus COMMAND` that finds no master starts one in the background",
            False, _boolean, json_key="autostart", env="ZEUS_AUTOSTART"),
    Setting("idle_timeout", "a master started in the background (`--detach`, autostart) stops "
            "after this long without a command", None, _seconds(0, strict=True),
            json_key="idle_timeout", flag="--idle-timeout", metavar="SECONDS", hidden=True,
            flag_type=float),
    Setting("file_change_delay", "gather file changes this long before restarting phases",
            0.3, _seconds(0, strict=False, high=MAX_SECONDS), json_key="file_change_delay",
            flag="--file-change-delay", metavar="SECONDS", flag_type=float),
    Setting("poll", "watch files by polling every SECONDS (1 when the flag has no value) "
            "instead of OS events", None, _seconds(0, strict=True, high=MAX_SECONDS),
            json_key="poll", flag="--poll", metavar="SECONDS", const=1.0, flag_type=float),
    Setting("simple_status", "one plain line per change instead of the live chart", False,
            _boolean, json_key="simple_status", flag="--simple-status"),
    Setting("no_color", "no colours in the master's chart (also when NO_COLOR is set)", False,
            _boolean, json_key="no_color", flag="--no-color", env="NO_COLOR", env_any_value=True),
    Setting("log", "append a trace of every phase state transition, with times, to FILE", None,
            _path, json_key="log", flag="--log", metavar="FILE", flag_type=str),
    Setting("learn_imports", "phases import the library modules their commands imported, and "
            "hold the test modules pytest rewrote without a __pycache__ file, so the next "
            "commands start with them (docs/plans.md)", True, _boolean,
            json_key="learn_imports", env="ZEUSPY_LEARN_IMPORTS"),
    Setting("preload", "modules the built-in plans import in `boot` (default: the project's own "
            "top-level packages)", None, _names),
    Setting("app", "modules the built-in plans import in `app`, above `boot`: editing them "
            "restarts only `app`", (), _names),
    Setting("boot_env", "environment variables the built-in plans' boot reads, which a command "
            "may not change", (), _names),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}
JSON_KEYS = {setting.json_key: setting for setting in SETTINGS if setting.json_key}


def from_env(setting: Setting, environ: Mapping[str, str]) -> object:
    """The value the environment gives ``setting`` (None: not set there). A boolean is true
    unless the variable is empty or ``0``."""
    if setting.env is None or setting.env not in environ:
        return None
    raw = environ[setting.env]
    if setting.parse is _boolean:
        return raw != "" if setting.env_any_value else raw not in ("", "0")
    return setting.parse(raw)


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| setting | zeus.json / `[tool.zeus]` | `zeus start` flag | environment | default "
            "| what it does |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        keys = f"`{s.json_key}` / `{s.tool_key}`" if s.json_key else f"`{s.tool_key}` only"
        flag = f"`{s.flag}`" if s.flag and not s.hidden else ("(set by `--detach`)" if s.flag
                                                              else "")
        env = f"`{s.env}`" if s.env else ""
        default = "none" if s.default in (None, ()) else f"`{s.default}`"
        rows.append(f"| {s.name} | {keys} | {flag} | {env} | {default} | {s.doc}; "
                    f"{s.takes} |")
    return "\n".join(rows) + "\n"
