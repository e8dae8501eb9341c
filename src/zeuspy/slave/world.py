"""The client's world in a command process: the working directory and environment it runs with.

The zeuspy client sends them with its request (the ``world`` extension, docs/protocol.md). For a
client that does not (a legacy one), the shim reads them from the OS when the master vouched for
the client's pid (flag ``v``) and the OS lets it: ``/proc/<pid>/cwd`` and ``/proc/<pid>/environ``
on Linux. The environment a command ends with is the client's, plus what the plan's phases set
themselves (say ``DJANGO_SETTINGS_MODULE``) where the client has no value of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from zeuspy.protocol.messages import RunnerHeader, decode_world
from zeuspy.protocol.wire import ProtocolError

World = tuple[bytes, dict[bytes, bytes]]

#: The environment the root phase started with, before any plan code ran (what shaped the boot).
_boot_environ: dict[bytes, bytes] = {}
#: Variables the phases' actions read (this process's phase and its ancestors).
_read_at_boot: set[str] = set()
_recording = False
#: Variables that differ between any two terminals and say nothing about the application; a boot
#: that read them (libraries do, at import) must not make every command warn.
PER_TERMINAL = frozenset({
    "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "TERM_SESSION_ID", "COLORTERM", "COLUMNS",
    "LINES", "PWD", "OLDPWD", "SHLVL", "_", "PS1", "PS2", "PROMPT_COMMAND", "SSH_TTY",
    "SSH_CLIENT", "SSH_CONNECTION", "SSH_AUTH_SOCK", "TMUX", "TMUX_PANE", "STY", "WINDOWID",
    "GPG_TTY", "PATH", "MANPATH", "VIRTUAL_ENV_PROMPT", "HISTFILE", "LS_COLORS", "NO_COLOR",
    "FORCE_COLOR", "CLICOLOR", "PAGER", "LESS", "EDITOR", "VISUAL", "DISPLAY", "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_SESSION_ID", "XDG_VTNR", "XDG_RUNTIME_DIR",
    "PYTEST_CURRENT_TEST",
})


def remember_boot_environment() -> None:
    """Called once, first thing in the root phase."""
    _boot_environ.clear()
    _boot_environ.update(os.environb)


def record_reads() -> None:
    """Note every environment variable read through ``os.environ``/``os.getenv`` while
    :func:`reading` is on (the shim turns it on while a phase's action runs)."""
    environ_class = type(os.environ)
    original = environ_class.__getitem__
    if getattr(original, "_zeus_recording", False):
        return

    def getitem(self: Any, key: Any) -> Any:
        if _recording and self is os.environ and isinstance(key, str):
            _read_at_boot.add(key)
        return original(self, key)

    getitem._zeus_recording = True  # type: ignore[attr-defined]
    environ_class.__getitem__ = getitem  # type: ignore[method-assign]


def reading(on: bool) -> None:
    global _recording
    _recording = on


def drifted(environ: dict[bytes, bytes], strict: Iterable[str]) -> list[str]:
    """Variables a phase read while booting (other than ``strict`` ones, which refuse, and
    :data:`PER_TERMINAL`) whose value in the client's ``environ`` differs from the phase's."""
    skip = set(strict) | PER_TERMINAL
    found = []
    for name in sorted(_read_at_boot - skip):
        key = os.fsencode(name)
        here = environ.get(key)
        if here is None and key not in _boot_environ:
            continue  # the plan set it (Django sets TZ), as it would for this shell
        if here != os.environb.get(key):
            found.append(name)
    return found


def from_os(pid: int) -> World | None:
    """The cwd and environment of process ``pid`` (ours only), or None where the OS does not
    tell."""
    if not sys.platform.startswith("linux") or pid <= 0:
        return None
    base = f"/proc/{pid}"
    try:
        if os.stat(base).st_uid != os.getuid():
            return None
        cwd = os.readlink(f"{base}/cwd").encode("utf-8", "surrogateescape")
        with open(f"{base}/environ", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    environ: dict[bytes, bytes] = {}
    for entry in raw.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            environ[key] = value
    return os.fsencode(cwd), environ


def of_client(header: RunnerHeader) -> World | None:
    """The client's world: sent along, else read from the OS (vouched pid), else None."""
    if header.world:
        try:
            return decode_world(header.world)
        except ProtocolError as exc:
            print(f"zeus: ignoring the client's world: {exc}", file=sys.stderr)
    if "v" in header.flags:
        return from_os(header.client_pid)
    return None


def mismatches(environ: dict[bytes, bytes], names: Iterable[str],
               default: Callable[[str], str | None] = lambda name: None) -> list[str]:
    """One line per variable in ``names`` that would not have the value the phases booted with.
    Call it in a command before :func:`enter`, while the environment is still the phase's.

    A variable the client sets must equal the phase's value (the plan's own default included: a
    client that sets ``DJANGO_SETTINGS_MODULE`` to what manage.py chose is fine). A variable the
    client lacks is fine when the master's shell lacked it too (the plan chose the value, as it
    would for the client) or had the value the plan would choose (``default``), and differs
    when the boot got another value from the master's shell."""
    lines = []
    for name in names:
        key = os.fsencode(name)
        here, booted = environ.get(key), os.environb.get(key)
        if here is None and key not in _boot_environ:
            continue
        if here is None and booted is not None and default(name) == os.fsdecode(booted):
            continue
        if here != booted:
            lines.append(f"  {name}: {_shown(here)} here, {_shown(booted)} when the phases "
                         "booted")
    return lines


def _shown(value: bytes | None) -> str:
    return "unset" if value is None else repr(os.fsdecode(value))


def enter(world: World) -> None:
    """Become the client's world: its environment (plus what the phases set that it lacks) and
    its working directory (if it can be entered; otherwise say so and stay)."""
    cwd, environ = world
    final = dict(environ)
    for key, value in os.environb.items():
        if _boot_environ.get(key) != value:
            final.setdefault(key, value)  # set by the plan's phases, not by the user
    current = dict(os.environb)
    for key in current.keys() - final.keys():
        del os.environb[key]
    for key, value in final.items():
        if current.get(key) != value:
            os.environb[key] = value
    _follow_runtime_variables(current, final)
    try:
        os.chdir(cwd)
    except OSError as exc:
        print(f"zeus: cannot enter the client's folder {os.fsdecode(cwd)} ({exc.strerror}); "
              f"running in {os.getcwd()}", file=sys.stderr)


def _follow_runtime_variables(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> None:
    """The variables ``python`` reads at start-up that a running interpreter can still follow
    (the others are boot variables: :data:`zeuspy.plan.DEFAULT_BOOT_ENV`)."""
    if before.get(b"TZ") != after.get(b"TZ"):
        import time

        time.tzset()
    sys.dont_write_bytecode = bool(after.get(b"PYTHONDONTWRITEBYTECODE"))
    warnings = after.get(b"PYTHONWARNINGS")
    if warnings and warnings != before.get(b"PYTHONWARNINGS"):
        import warnings as warnings_module

        options = [o for o in os.fsdecode(warnings).split(",") if o]
        sys.warnoptions.extend(options)
        warnings_module._processoptions(options)  # type: ignore[attr-defined]
    if after.get(b"PYTHONUNBUFFERED"):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(write_through=True)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
