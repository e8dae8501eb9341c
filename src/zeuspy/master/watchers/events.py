"""The OS-events backend: watchfiles (the Rust notify crate: inotify on Linux, FSEvents or kqueue
on macOS), one non-recursive watch per directory holding tracked files, all served by one thread.

watchfiles cannot add a directory to a running watcher, so the thread builds a new watcher over
the new set of directories and drops the old one. Three gaps are closed by comparing signatures
(inode, size, mtime) with the ones taken when a file was tracked:

- a file changed between ``track()`` and the moment its directory is watched;
- a directory that did not exist when tracked, and is watched once it appears;
- a directory deleted and created again (``git checkout``, ``rm -rf`` and copy), whose inotify
  watch died with it: any event about a watched directory, or a directory that vanished, makes
  the thread check it and watch it again.
"""

from __future__ import annotations

import os
import threading

from watchfiles._rust_notify import RustNotify

from zeuspy.master.watchers import ChangeCallback, FailureCallback
from zeuspy.master.watchers.polling import Signature, signature

#: Longest a batch of OS events is held before it is reported (our own debounce comes after),
#: and how often watchfiles looks at its queue: every look is a wake-up of an idle master.
GROUP_MS = 20
STEP_MS = 10
#: How often the thread wakes without events (to look for folders that appeared).
TIMEOUT_MS = 500
STOP_TIMEOUT = 5.0
#: Watches made in a row while folders keep vanishing under them, before polling takes over.
OPEN_ATTEMPTS = 5


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Wake:
    """What RustNotify.watch polls every step: stop, or new folders to watch."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.rebuild = threading.Event()

    def is_set(self) -> bool:
        return self.stop.is_set() or self.rebuild.is_set()


class EventWatcher:
    """Reports tracked paths named by OS events in their directories."""

    name = "events"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards the hand-over dicts below
        self._new: dict[str, Signature] = {}
        self._wake = _Wake()
        self._thread: threading.Thread | None = None
        # The thread's own state.
        self._signatures: dict[str, Signature] = {}
        self._by_dir: dict[str, set[str]] = {}
        self._watched: dict[str, tuple[int, int] | None] = {}

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_change, on_failure),
                                        name="zeus-events", daemon=True)
        self._thread.start()

    def track(self, paths: set[str]) -> None:
        first = {path: signature(path) for path in paths}
        with self._lock:
            for path, sig in first.items():
                self._new.setdefault(path, sig)
        self._wake.rebuild.set()

    def _take_new(self) -> set[str]:
        """Move newly tracked paths into the thread's state; the folders they need."""
        with self._lock:
            new, self._new = self._new, {}
        folders = set()
        for path, sig in new.items():
            if path in self._signatures:
                continue
            self._signatures[path] = sig
            folder = os.path.dirname(path)
            self._by_dir.setdefault(folder, set()).add(path)
            folders.add(folder)
        return folders

    def _changed_in(self, folders: set[str]) -> set[str]:
        """Tracked files in ``folders`` that differ from their last known signature (updated)."""
        changed = set()
        for folder in folders:
            for path in self._by_dir.get(folder, ()):
                new = signature(path)
                if new != self._signatures.get(path):
                    self._signatures[path] = new
                    changed.add(path)
        return changed

    def _open(self) -> RustNotify | None:
        """A watcher over the folders that exist, or None when none does. A folder that
        vanishes between our stat and the watch (a checkout replacing it) is marked missing and
        the watch made again without it; it is watched again once it reappears. Only a failure
        that is not a missing folder, or folders vanishing ``OPEN_ATTEMPTS`` times in a row,
        raise (then polling takes over)."""
        for attempt in range(OPEN_ATTEMPTS):
            existing = [d for d in sorted(self._by_dir) if self._watched.get(d) is not None]
            if not existing:
                return None
            try:
                # A private class of watchfiles (its public API cannot add folders to a running
                # watch): keywords, and pyproject.toml pins the minor version it was checked with.
                return RustNotify(watch_paths=existing, debug=False, force_polling=False,
                                  poll_delay_ms=0, recursive=False, ignore_permission_denied=True)
            except FileNotFoundError:
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                for folder in existing:
                    self._watched[folder] = _identity(folder)
        return None

    def _run(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        notify: RustNotify | None = None
        # Folders an event named: removed or replaced (a new folder may get the old inode
        # number, so their identity alone cannot tell).
        touched: set[str] = set()
        try:
            while not self._wake.stop.is_set():
                self._wake.rebuild.clear()
                folders = self._take_new()
                # Folders that appeared, vanished or were replaced since we watched them.
                stale = touched | {d for d in self._by_dir
                                   if _identity(d) != self._watched.get(d, ("new",))}
                touched = set()
                if folders or stale:
                    for folder in folders | stale:
                        self._watched[folder] = _identity(folder)
                    fresh = self._open()
                    if notify is not None:
                        notify.close()
                    notify = fresh
                    # Anything that changed while no watch was in place, or while the old
                    # watcher still held its events: compare every tracked file (a stat each;
                    # new folders are rare after the boots).
                    changed = self._changed_in(set(self._by_dir))
                    if changed:
                        on_change(changed)
                if notify is None:
                    self._wake.rebuild.wait(TIMEOUT_MS / 1000)
                    continue
                self._report(notify.watch(GROUP_MS, STEP_MS, TIMEOUT_MS, self._wake), on_change,
                             touched)
        except Exception as exc:  # inotify limits, a vanished filesystem: polling takes over
            on_failure(_explain(exc))
        finally:
            if notify is not None:
                notify.close()

    def _report(self, result: object, on_change: ChangeCallback, touched: set[str]) -> None:
        """Hand over the tracked paths a watch() result names; note named watched folders."""
        if not isinstance(result, set):
            return
        changed = set()
        for _, path in result:
            if path in self._signatures:
                self._signatures[path] = signature(path)
                changed.add(path)
            if path in self._by_dir:  # a watched folder itself was removed or replaced
                touched.add(path)
        if changed:
            on_change(changed)

    def stop(self) -> None:
        self._wake.stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)


def _explain(exc: Exception) -> str:
    text = str(exc)
    if "inotify" in text.lower() or "No space left" in text or getattr(exc, "errno", 0) == 28:
        return (f"the inotify watch limit is reached ({text}); raise it with "
                "`sudo sysctl fs.inotify.max_user_watches=524288`")
    return f"file events failed ({type(exc).__name__}: {text})"
