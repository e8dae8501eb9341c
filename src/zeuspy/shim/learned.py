"""Imports learned from commands: the library modules a command imported that its phase had not
loaded are imported by the phase once the command is done, so the next command starts with them.

A test or script often imports parts of a library only when it first uses them (sympy's
``lambdify`` pulls in ``sympy.codegen`` and ``sympy.combinatorics``, Django loads its template tag
libraries at the first render, pytest its ``faulthandler``): every command paid for them again,
though they never change between runs. With this, the first command pays and the ones after it
do not (docs/plans.md, "Imports learned from commands").

Only library modules are learned: built-in modules, and modules whose file lies in the
interpreter's standard library or in a ``site-packages`` or ``dist-packages`` folder (a venv's,
the system's, one added by a ``.pth`` file). Never the project's own code, its tests or its
conftests: they may run code at import and are reloaded by editing. Never a module pytest rewrote
the assertions of: imported by the phase, it would not be rewritten. A module that fails to
import in the phase is not tried again; one that starts a thread there stops the learning of that
phase (the shim warns about threads at every fork).

Plans teach their phase through the same channel (**lessons**): a command calls :func:`teach`
with a kind and a payload, and the phase calls the handler a plan registered for that kind with
:func:`on_lesson` (the pytest plan rewrites the test modules a command rewrote,
:mod:`zeuspy.plans.pytest_rewrite`). The phase handles one lesson per turn of its loop, only when
no request waits, so a long lesson never holds a command back for more than one of them.

The channel is a datagram socket pair per phase, made when the phase starts serving: commands
forked from it inherit the sending end and send their names and lessons (one per line, in
datagrams of at most 2 KiB) after their status is reported, so it costs the client nothing; the
phase imports what it gets when no request waits. The ``learn_imports`` setting
(``ZEUSPY_LEARN_IMPORTS=0``) turns it all off.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterable

from zeuspy import settings

#: The ``learn_imports`` setting: the master sets its variable for the phases ("1" or "0").
SETTING = settings.BY_NAME["learn_imports"]
assert SETTING.env is not None
ENABLE_ENV: str = SETTING.env
#: The largest datagram a command sends (macOS's default limit for a local datagram is 2 KiB), and
#: the most bytes of names one command sends (about 3,000 module names).
DATAGRAM_LIMIT = 2048
SEND_LIMIT = 128 * 1024
#: The most module names a phase tries to import over its life (learned or failed).
NAMES_LIMIT = 20_000
#: A module name as an import statement accepts it (dotted identifiers, bounded).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_NAME_LIMIT = 200
#: Where installers put libraries (a venv's, the system's; Debian names it dist-packages).
INSTALL_FOLDERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
#: A lesson's line: the mark (no module name starts with it), its kind, a space, its payload.
LESSON_MARK = "@"
_KIND = re.compile(r"[a-z][a-z0-9-]{0,31}")
#: The longest lesson line a command sends: one datagram.
LESSON_LIMIT = DATAGRAM_LIMIT
#: The most lessons a phase keeps waiting to be handled (more are dropped: a later command
#: teaches them again).
PENDING_LIMIT = 2_000
#: The loader pytest's assertion rewriting installs (its modules must stay pytest's to import).
_REWRITING_LOADER = "AssertionRewritingHook"

#: In a command: the sending end inherited from its phase (None: nothing to send to).
_sink: socket.socket | None = None
#: In a command: the names of the modules its phase had when it forked.
_inherited: frozenset[str] = frozenset()
#: Folders whose modules are libraries (standard library, site-packages), with a trailing "/".
_library_dirs: tuple[str, ...] = ()
#: In a command: the lessons it sends its phase when done (kind, payload), in order, once each.
_lessons: dict[tuple[str, str], None] = {}
#: In a phase: the handler of each kind of lesson (it returns whether the phase changed, so that
#: its spare, forked before, is replaced).
_handlers: dict[str, Callable[[str], bool]] = {}


def enabled() -> bool:
    """Whether phases learn: ``ZEUSPY_LEARN_IMPORTS`` does not say false (the master sets it
    from the ``learn_imports`` setting, on by default)."""
    return settings.from_env(SETTING, os.environ) is not False


def library_dirs() -> tuple[str, ...]:
    """The standard library's folders, as written and resolved, each ending in a separator."""
    paths = sysconfig.get_paths()
    found: list[str] = []
    for key in ("stdlib", "platstdlib"):
        path = paths.get(key)
        if not path:
            continue
        for form in (os.path.normpath(path), os.path.realpath(path)):
            text = form.rstrip(os.sep) + os.sep
            if text not in found:
                found.append(text)
    return tuple(found)


def in_install_folder(path: str) -> bool:
    """Whether ``path`` lies in a folder installers put libraries in (:data:`INSTALL_FOLDERS`)."""
    return any(folder in path for folder in INSTALL_FOLDERS)


def is_library(name: str, module: object) -> bool:
    """Whether ``module`` (``sys.modules[name]``) is a library module a phase may import ahead:
    built in, or loaded from a file in the standard library (:func:`library_dirs`) or a
    site-packages folder, and not rewritten by pytest."""
    if name in sys.builtin_module_names:
        return True
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    if not (path.startswith(_library_dirs) or in_install_folder(path)):
        return False
    return type(getattr(module, "__loader__", None)).__name__ != _REWRITING_LOADER


class Learner:
    """A phase's side: the socket pair, and what it imported or gave up on."""

    def __init__(self) -> None:
        global _sink, _library_dirs
        self.tried: set[str] = set()
        #: Lessons received and not handled yet, oldest first, once each (a dict as an ordered
        #: set, as a command's own ``_lessons``).
        self.pending: dict[tuple[str, str], None] = {}
        #: The kinds whose handler failed once (said once in the log).
        self._failed: set[str] = set()
        #: False once learning stopped (disabled, or an import started a thread).
        self.active = enabled()
        self.source: socket.socket | None = None
        close_inherited()
        if not self.active:
            return
        _library_dirs = library_dirs()
        self.source, _sink = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.source.setblocking(False)
        _sink.setblocking(False)  # a command never waits for its phase
        try:  # room for the datagrams of several commands between two reads (capped by the OS)
            self.source.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass

    def close(self) -> None:
        """Close the phase's receiving end (in a fork that is not this phase)."""
        if self.source is not None:
            self.source.close()
            self.source = None

    def fileno(self) -> int | None:
        """The fd to wait on for learned names, or None when not learning."""
        return self.source.fileno() if self.source is not None and self.active else None

    def absorb(self) -> list[str]:
        """Read every waiting datagram, import the names not loaded yet, in the order the
        command imported them, and queue its lessons (:meth:`step` handles them). Returns the
        names imported. Never raises for a name or a lesson."""
        names: list[str] = []
        while self.source is not None:
            try:
                data = self.source.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            for line in data.decode("utf-8", errors="surrogateescape").split("\n"):
                if line.startswith(LESSON_MARK):
                    self._queue(line)
                else:
                    names.append(line)
        if not self.active:
            return []
        return self.import_names(names)

    def _queue(self, line: str) -> None:
        kind, _, payload = line[len(LESSON_MARK):].partition(" ")
        lesson = (kind, payload)
        if (self.active and kind in _handlers and len(line) <= LESSON_LIMIT
                and len(self.pending) < PENDING_LIMIT):
            self.pending[lesson] = None

    def busy(self) -> bool:
        """Whether lessons wait to be handled."""
        return bool(self.pending) and self.active

    def step(self) -> bool:
        """Handle the oldest waiting lesson. Returns whether the phase changed (a spare forked
        before lacks it). Never raises: a handler that fails is the command's loss only."""
        if not self.busy():
            return False
        kind, payload = lesson = next(iter(self.pending))
        del self.pending[lesson]
        threads = threading.active_count()
        try:
            changed = bool(_handlers[kind](payload))
        except BaseException as exc:  # a plan's fault: said once, then the commands do the work
            if kind not in self._failed:
                self._failed.add(kind)
                print(f"zeus: a {kind} lesson learned from a command failed: {exc!r}",
                      file=sys.stderr, flush=True)
            return False
        if threading.active_count() > threads:
            self.active = False
            print(f"zeus: a {kind} lesson learned from a command started a thread; this phase "
                  "learns no more", file=sys.stderr, flush=True)
        return changed

    def import_names(self, names: Iterable[str]) -> list[str]:
        """Import each valid name not in ``sys.modules`` and not tried before, within
        :data:`NAMES_LIMIT`; stop learning for good when an import starts a thread."""
        imported: list[str] = []
        for name in names:
            if (not self.active or name in sys.modules or name in self.tried
                    or len(name) > _NAME_LIMIT or not _NAME.fullmatch(name)
                    or len(self.tried) >= NAMES_LIMIT):
                continue
            self.tried.add(name)
            threads = threading.active_count()
            try:
                importlib.import_module(name)
            except BaseException:  # any failure (even SystemExit): the command imports it itself
                continue
            imported.append(name)
            if threading.active_count() > threads:
                self.active = False
                print(f"zeus: importing {name} (learned from a command) started a thread; this "
                      "phase learns no more imports", file=sys.stderr, flush=True)
        return imported


def close_inherited() -> None:
    """Drop the sending end a phase inherited from its parent phase (it learns on its own)."""
    global _sink
    if _sink is not None:
        _sink.close()
        _sink = None


def on_lesson(kind: str, handler: Callable[[str], bool]) -> None:
    """In a phase (before it serves): call ``handler(payload)`` for each lesson of ``kind`` its
    commands teach. ``kind`` is lowercase letters, digits and dashes."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"not a lesson kind: {kind!r}")
    _handlers[kind] = handler


def teach(kind: str, payload: str) -> None:
    """In a command: send the phase a lesson of ``kind`` when the command is done (nothing when
    the phase does not learn; dropped when sent if longer than :data:`LESSON_LIMIT`). The payload
    is one line of text; its handler validates it (a command may send anything)."""
    if _sink is not None and "\n" not in payload:
        _lessons[(kind, payload)] = None


def remember_inherited() -> None:
    """In a command, right after the fork: the modules its phase had (and no lessons yet)."""
    global _inherited
    _lessons.clear()
    if _sink is not None:
        _inherited = frozenset(sys.modules)


def send_new_imports() -> None:
    """In a command that is done (its status reported): send its phase the library modules it
    imported, in import order, then its lessons. Best effort: nothing is retried or
    reported."""
    if _sink is None:
        return
    names = [name for name, module in list(sys.modules.items())
             if name not in _inherited and is_library(name, module)]
    lines = names + [f"{LESSON_MARK}{kind} {payload}" for kind, payload in _lessons]
    if not lines:
        return
    for chunk in chunks(lines):
        try:
            _sink.send(chunk)
        except OSError:  # the phase is gone or its queue is full: it learns from a later command
            return


def chunks(lines: list[str]) -> list[bytes]:
    """``lines`` (module names and lessons) as datagrams of whole lines, newline-separated, each
    at most :data:`DATAGRAM_LIMIT` bytes, :data:`SEND_LIMIT` bytes in all (lines that do not
    fit are left out)."""
    out: list[bytes] = []
    current = b""
    total = 0
    for line in lines:
        try:
            raw = line.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError:
            continue
        limit = LESSON_LIMIT if line.startswith(LESSON_MARK) else _NAME_LIMIT
        if len(raw) > limit or total + len(raw) + 1 > SEND_LIMIT:
            continue
        total += len(raw) + 1
        if current and len(current) + 1 + len(raw) > DATAGRAM_LIMIT:
            out.append(current)
            current = b""
        current = current + b"\n" + raw if current else raw
    if current:
        out.append(current)
    return out
