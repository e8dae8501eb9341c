"""The client's world in a command process: the working directory and environment it runs with.

The zeuspy client sends them with its request (the ``world`` extension, docs/protocol.md). For a
client that does not (a legacy one), the shim reads them from the OS when the master vouched for
the client's pid (flag ``v``) and the OS lets it: ``/proc/<pid>/cwd`` and ``/proc/<pid>/environ``
on Linux. The environment a command ends with is the client's, plus what the plan's phases set
themselves (say ``DJANGO_SETTINGS_MODULE``) where the client has no value of its own.
"""

from __future__ import annotations

import dis
import os
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import Any

from zeuspy.protocol.messages import RunnerHeader, World, decode_world
from zeuspy.protocol.wire import ProtocolError

#: The environment the root phase started with, before any plan code ran (what shaped the boot).
_boot_environ: dict[bytes, bytes] = {}
#: Variables the project's code read in the phases' actions (this process's phase and its
#: ancestors): :func:`record_reads`.
_read_at_boot: set[str] = set()
_recording = False
#: Variables that differ between any two terminals, or any two shells, and say nothing about the
#: application (the virtualenv or conda environment a shell activated, its version manager): a
#: boot that read one must not make every command warn.
PER_TERMINAL = frozenset({
    "TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "TERM_SESSION_ID", "COLORTERM", "COLUMNS",
    "LINES", "PWD", "OLDPWD", "SHLVL", "_", "PS1", "PS2", "PROMPT_COMMAND", "SSH_TTY",
    "SSH_CLIENT", "SSH_CONNECTION", "SSH_AUTH_SOCK", "TMUX", "TMUX_PANE", "STY", "WINDOWID",
    "GPG_TTY", "PATH", "MANPATH", "VIRTUAL_ENV_PROMPT", "HISTFILE", "LS_COLORS", "NO_COLOR",
    "FORCE_COLOR", "CLICOLOR", "PAGER", "LESS", "EDITOR", "VISUAL", "DISPLAY", "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS", "XDG_SESSION_ID", "XDG_VTNR", "XDG_RUNTIME_DIR",
    "PYTEST_CURRENT_TEST", "VIRTUAL_ENV", "PIPENV_ACTIVE", "POETRY_ACTIVE", "UV_ACTIVE",
    "PYENV_SHELL", "PYENV_VERSION", "PYENV_DIR", "TERMINFO", "VTE_VERSION", "WT_SESSION",
    "WT_PROFILE_ID", "INSIDE_EMACS", "LC_TERMINAL", "LC_TERMINAL_VERSION", "WINDOWPATH",
    "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "KITTY_WINDOW_ID", "ALACRITTY_WINDOW_ID",
})
#: Prefixes of such variables: conda's (``CONDA_PREFIX``, ``CONDA_PREFIX_1``, ``CONDA_SHLVL``...),
#: direnv's, pyenv's, and those terminals and editors set.
PER_TERMINAL_PREFIXES = ("CONDA_", "_CE_", "DIRENV_", "PYENV_", "VSCODE_", "ITERM_", "KONSOLE_",
                         "TERMINAL_EMULATOR", "GNOME_TERMINAL_", "KITTY_")


def per_terminal(name: str) -> bool:
    """Whether ``name`` is one of the variables every terminal or shell sets its own way."""
    return name in PER_TERMINAL or name.startswith(PER_TERMINAL_PREFIXES)


def remember_boot_environment() -> None:
    """Called once, first thing in the root phase."""
    _boot_environ.clear()
    _boot_environ.update(os.environb)


def record_reads(root: str | None = None) -> None:
    """Note each environment variable the project's own code reads through ``os.environ`` or
    ``os.getenv`` while :func:`reading` is on (the shim turns it on while a phase's action runs).

    A read counts when the code that made it (the frame that subscripted ``os.environ`` or
    called ``.get``, ``os.getenv``, ``in``...) is in a file under ``root`` (default: the current
    folder, which is the project root in a phase) that is neither the standard library nor
    site-packages, and it reads one variable: copies of the whole environment (``dict(os.
    environ)``, ``os.environ.copy()``, ``{**os.environ}``, iterating ``.items()``) name no
    variable the code depends on. Libraries read variables of their own at import (the standard
    library's ``wsgiref`` copies the environment, Django reads ``DJANGO_COLORS``...): those are
    theirs, not the boot's. Reads a library makes for the project (django-environ's
    ``env("DATABASE_URL")``) are not seen either; list those in ``boot_env``."""
    _project_root[0] = os.path.realpath(root or os.getcwd())
    environ_class = type(os.environ)
    original = environ_class.__getitem__
    if getattr(original, "_zeus_recording", False):
        return

    def getitem(self: Any, key: Any) -> Any:
        if (_recording and self is os.environ and isinstance(key, str)
                and key not in _read_at_boot and _read_by_project(sys._getframe(1))):
            _read_at_boot.add(key)
        return original(self, key)

    getitem._zeus_recording = True  # type: ignore[attr-defined]
    environ_class.__getitem__ = getitem  # type: ignore[method-assign]


#: The project root reads are attributed to (set by :func:`record_reads`).
_project_root = [""]
#: Where ``os.environ``'s own methods and the ``Mapping`` methods it inherits are (frozen
#: modules in Python 3.11+: ``<frozen os>``).
_MACHINERY = frozenset({os._Environ.copy.__code__.co_filename, os.getenv.__code__.co_filename,
                        Mapping.get.__code__.co_filename})
#: The methods of that machinery that read one variable; any other (``copy``, ``__iter__`` of
#: ``items()``, ``__eq__``...) is going through the whole environment.
_ONE_VARIABLE = frozenset({"get", "getenv", "__contains__", "setdefault", "pop"})
#: The instruction of a direct ``os.environ[key]`` (BINARY_OP: Python 3.14's).
_SUBSCRIPT = frozenset({"BINARY_SUBSCR", "BINARY_OP"})
#: For each source file seen, whether it is the project's own code.
_own_file: dict[str, bool] = {}


def _read_by_project(frame: FrameType | None) -> bool:
    """Whether the environment read that called ``__getitem__`` from ``frame`` is a read of one
    variable by the project's own code (:func:`record_reads`)."""
    direct = True
    while frame is not None and frame.f_code.co_filename in _MACHINERY:
        if frame.f_code.co_name not in _ONE_VARIABLE:
            return False
        frame = frame.f_back
        direct = False
    if frame is None or not _project_file(frame.f_code.co_filename):
        return False
    if direct:  # dict(os.environ) and {**os.environ} call __getitem__ from C, in the caller
        code = frame.f_code.co_code
        return 0 <= frame.f_lasti < len(code) and dis.opname[code[frame.f_lasti]] in _SUBSCRIPT
    return True


def _project_file(filename: str) -> bool:
    known = _own_file.get(filename)
    if known is None:
        known = _own_file[filename] = _is_project_file(filename)
    return known


def _is_project_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False  # frozen, <string>, <stdin>: no file of the project
    path = os.path.realpath(os.path.join(_project_root[0], filename))
    if os.path.commonpath([path, _project_root[0]]) != _project_root[0]:
        return False
    parts = set(path.split(os.sep))
    if parts & {"site-packages", "dist-packages"}:
        return False
    return not any(os.path.commonpath([path, folder]) == folder for folder in _stdlib_folders())


_stdlib: list[str] = []


def _stdlib_folders() -> list[str]:
    if not _stdlib:
        import sysconfig

        paths = sysconfig.get_paths()
        _stdlib.extend(os.path.realpath(paths[name]) for name in ("stdlib", "platstdlib")
                       if name in paths)
    return _stdlib


def reading(on: bool) -> None:
    global _recording
    _recording = on


def drifted(environ: dict[bytes, bytes], strict: Iterable[str]) -> list[str]:
    """Variables the project's code read while a phase booted (other than ``strict`` ones, which
    refuse, and those of :func:`per_terminal`) whose value in the client's ``environ`` differs
    from the phase's."""
    skip = set(strict)
    found = []
    for name in sorted(_read_at_boot - skip):
        if per_terminal(name):
            continue
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
    return World(os.fsencode(cwd), environ)


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


#: The variables the command has from the plan's phases, not from the client's environment
#: (:func:`enter`): a plan may stand aside for a program that reads them its own way.
kept_from_phases: set[str] = set()


def enter(world: World) -> None:
    """Become the client's world: its environment (plus what the plan's phases set that it
    lacks), its working directory (if it can be entered; otherwise say so and stay), and the
    signals it was started with ignored, ignored (SIGINT then raises no KeyboardInterrupt, as
    in a python started so), and its umask (the files it creates get the modes the user's
    shell would give them)."""
    cwd, environ, ignored = world.cwd, world.environ, world.ignored
    final = dict(environ)
    kept_from_phases.clear()
    for key, value in os.environb.items():
        if _boot_environ.get(key) != value and key not in final:
            final[key] = value  # set by the plan's phases, not by the user
            kept_from_phases.add(os.fsdecode(key))
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
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)
    if world.umask is not None:
        os.umask(world.umask)


def _follow_runtime_variables(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> None:
    """The variables ``python`` reads at start-up that a running interpreter can still follow
    (the others are boot variables: :data:`zeuspy.plan.DEFAULT_BOOT_ENV`)."""
    if before.get(b"TZ") != after.get(b"TZ"):
        import time

        time.tzset()
    if any(before.get(name) != after.get(name) for name in LOCALE_VARIABLES):
        _set_locale_from_environment(after)
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


#: The variables that choose the ``LC_CTYPE`` locale, strongest first.
LOCALE_VARIABLES = (b"LC_ALL", b"LC_CTYPE", b"LANG")
#: What Python's start-up coerces a C or POSIX ``LC_CTYPE`` to (PEP 538), in its order.
_COERCED = ("C.UTF-8", "C.utf8", "UTF-8")


def _set_locale_from_environment(environ: dict[bytes, bytes]) -> None:
    """Set ``LC_CTYPE`` from the (new) environment as ``python`` does at start-up: from
    ``LC_ALL``/``LC_CTYPE``/``LANG`` (``setlocale(LC_CTYPE, "")``), and a C or POSIX locale
    coerced to a UTF-8 one (``LC_CTYPE=C.UTF-8`` in the environment too) unless ``LC_ALL`` is set
    or ``PYTHONCOERCECLOCALE=0``. ``locale.getlocale()``, ``locale.getencoding()`` and the
    default encoding of ``open()`` then follow the client. What the interpreter fixed at its own
    start cannot: UTF-8 mode (``sys.flags.utf8_mode``, on when python starts in the C locale; it
    makes ``getpreferredencoding()`` answer ``utf-8``), the filesystem encoding and the standard
    streams' encoding stay the phase's (docs/plans.md, The client's world)."""
    import locale

    try:
        current = locale.setlocale(locale.LC_CTYPE, "")
    except locale.Error:  # a locale this machine lacks: python stays in C too
        current = locale.setlocale(locale.LC_CTYPE, "C")
    if current not in ("C", "POSIX") or environ.get(b"LC_ALL"):
        return
    if environ.get(b"PYTHONCOERCECLOCALE") == b"0":
        return
    for name in _COERCED:
        try:
            locale.setlocale(locale.LC_CTYPE, name)
        except locale.Error:
            continue
        os.environ["LC_CTYPE"] = name
        return
