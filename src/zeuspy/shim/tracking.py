"""Which files a phase depends on ("features"), reported on its feature pipe (docs/protocol.md):

- the source of every module imported while the phase runs (its action, and later lazy imports,
  e.g. from a thread or a timer): ``__file__`` or a located spec's origin, a ``.pyc`` mapped back to
  its ``.py``, a module inside a zip mapped to the archive;
- every file opened for reading under the project root while the action runs (an audit hook on
  ``open``; it returns at once when no action is running, so commands pay one flag check);
- the files named by a failed action's traceback and by a ``SyntaxError``, so that fixing the error
  brings the phase back;
- the ``.pth`` files of the interpreter's site folders (the root phase reports them: they shape
  ``sys.path``);
- anything passed to :func:`zeuspy.track`.

A path reached through a symlink is reported both as written and resolved, so a change to either the
link or its target is seen.
"""

from __future__ import annotations

import glob
import os
import sys
import traceback
from collections.abc import Iterable
from importlib.util import source_from_cache
from types import ModuleType

from zeuspy.plan import take_tracked

_O_ACCMODE = 3


def _located(path: str) -> str | None:
    """An existing file for ``path``: itself, its source for a ``.pyc``, or the zip holding it."""
    if path.endswith(".pyc"):
        try:
            source = source_from_cache(path)
        except ValueError:
            source = None
        if source is not None and os.path.exists(source):
            return source
    if os.path.exists(path):
        return path
    head = path
    while head and head != os.path.dirname(head):
        head = os.path.dirname(head)
        if os.path.isfile(head):  # a zip archive (zipimport)
            return head
    return None


def module_file(module: ModuleType) -> str | None:
    """The file ``module`` was loaded from, or None (built-in, frozen, namespace package)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None) if getattr(spec, "has_location", False) else None
        path = origin if isinstance(origin, str) else None
    if path is None:
        return None
    return _located(os.path.abspath(path))


def traceback_files(exc: BaseException) -> list[str]:
    """Files named by ``exc``'s traceback (and chained ones) and a ``SyntaxError``'s file."""
    files: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for frame in traceback.extract_tb(current.__traceback__):
            if frame.filename and not frame.filename.startswith("<"):
                files.append(os.path.abspath(frame.filename))
        name = current.filename if isinstance(current, SyntaxError) else None
        if name and not name.startswith("<"):
            files.append(os.path.abspath(name))
        current = current.__cause__ or current.__context__
    return files


def pth_files() -> list[str]:
    """The ``.pth`` files of the interpreter's site folders."""
    import site

    folders = list(getattr(site, "getsitepackages", list)())
    user = getattr(site, "ENABLE_USER_SITE", False) and site.getusersitepackages()
    if user:
        folders.append(user)
    return [path for folder in folders for path in sorted(glob.glob(os.path.join(folder, "*.pth")))]


def with_resolved(paths: Iterable[str]) -> list[str]:
    """Each path, plus its resolved form where a symlink makes them differ."""
    out = []
    for path in paths:
        out.append(path)
        real = os.path.realpath(path)
        if real != path:
            out.append(real)
    return out


class Tracker:
    """The shim's record of what the current phase loaded, and the pipe it reports on."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") + "/"
        self.fd = -1
        self.recording = False
        self._opened: list[str] = []
        self._sent: set[str] = set()
        self._modules_seen = 0
        self._module_names: set[str] = set()
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple[object, ...]) -> None:
        # Runs for every audited event in this process and its forks: return fast.
        if not self.recording or event != "open":
            return
        try:
            path, mode, flags = args
        except ValueError:
            return
        if isinstance(mode, str):
            if not ("r" in mode or "+" in mode):
                return
        elif isinstance(flags, int) and flags & _O_ACCMODE == os.O_WRONLY:
            return
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        # The import system reads a module's cached .pyc before (or instead of) its source; the
        # source is tracked as the module's file, and the cache, which the import itself may write
        # moments later, must not count as a dependency (it would restart the phase again).
        if isinstance(path, str) and not path.endswith((".pyc", ".pyo")):
            self._opened.append(path if path.startswith("/") else os.path.join(os.getcwd(), path))

    def attach(self, fd: int) -> None:
        """Report on ``fd`` from now on (a new phase's feature pipe); forget the parent's."""
        self.fd = fd
        self._sent = set()
        self._opened = []
        self._module_names = set(sys.modules)
        self._modules_seen = len(sys.modules)

    def begin_action(self) -> None:
        self.recording = True

    def end_action(self) -> None:
        self.recording = False

    def new_module_files(self) -> list[str]:
        """Sources of modules imported since the last call (cheap when none were)."""
        if len(sys.modules) == self._modules_seen:
            return []
        names = set(sys.modules)
        fresh = names - self._module_names
        self._module_names = names
        self._modules_seen = len(names)
        files = []
        for name in fresh:
            module = sys.modules.get(name)
            path = module_file(module) if module is not None else None
            if path:
                files.append(path)
        return files

    def report(self, extra: Iterable[str] = ()) -> bool:
        """Send every file not sent yet: new modules, opened project files, tracks, ``extra``.
        True when there was something new."""
        opened = [p for p in self._opened if p.startswith(self.root) and os.path.isfile(p)]
        self._opened = []
        candidates = [*self.new_module_files(), *opened, *take_tracked(), *extra]
        fresh = [p for p in dict.fromkeys(with_resolved(candidates)) if p not in self._sent]
        if not fresh or self.fd < 0:
            return False
        self._sent.update(fresh)
        data = ("\n".join(fresh) + "\n").encode("utf-8", "surrogateescape")
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:
            pass  # the master is gone; this process ends when its socket closes
        return True

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
