"""The OS-events backend: watchfiles (the Rust notify crate: inotify on Linux, FSEvents or kqueue
on macOS), one non-recursive watch per directory holding tracked files, all served by one thread.

watchfiles cannot add a directory to a running watcher, so a new directory makes the thread build
a new watcher over the larger set and drop the old one once the new one runs (no gap).
"""

from __future__ import annotations

import os
import threading

from watchfiles._rust_notify import RustNotify

from zeuspy.master.watchers import ChangeCallback, FailureCallback

#: Longest a batch of OS events is held before it is reported (our own debounce comes after).
GROUP_MS = 20
STEP_MS = 5
#: How often the thread checks for new directories and for stop.
TIMEOUT_MS = 200
STOP_TIMEOUT = 5.0


class EventWatcher:
    """Reports tracked paths named by OS events in their directories."""

    name = "events"

    def __init__(self) -> None:
        self._tracked: frozenset[str] = frozenset()
        self._dirs: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_change, on_failure),
                                        name="zeus-events", daemon=True)
        self._thread.start()

    def track(self, paths: set[str]) -> None:
        # Swapping whole frozensets keeps the thread's reads consistent without a lock.
        self._tracked = self._tracked | paths
        dirs = {os.path.dirname(p) for p in paths}
        if not dirs <= self._dirs:
            self._dirs = self._dirs | dirs

    def _open(self, dirs: frozenset[str]) -> tuple[RustNotify, frozenset[str]]:
        existing = [d for d in sorted(dirs) if os.path.isdir(d)]
        return RustNotify(existing, False, False, 0, False, True), frozenset(existing)

    def _run(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        notify: RustNotify | None = None
        watching: frozenset[str] = frozenset()
        try:
            while not self._stop.is_set():
                wanted = self._dirs
                if notify is None or not wanted <= watching:
                    if not wanted:
                        self._stop.wait(TIMEOUT_MS / 1000)
                        continue
                    fresh, opened = self._open(wanted)
                    if notify is not None:
                        notify.close()
                    notify, watching = fresh, opened
                    if not wanted <= opened:  # some folders do not exist yet: retry later
                        watching = wanted
                result = notify.watch(GROUP_MS, STEP_MS, TIMEOUT_MS, self._stop)
                if isinstance(result, set):
                    tracked = self._tracked
                    changed = {path for _, path in result if path in tracked}
                    if changed:
                        on_change(changed)
        except Exception as exc:  # inotify limits, a vanished filesystem: polling takes over
            on_failure(_explain(exc))
        finally:
            if notify is not None:
                notify.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)


def _explain(exc: Exception) -> str:
    text = str(exc)
    if "inotify" in text.lower() or "No space left" in text or getattr(exc, "errno", 0) == 28:
        return (f"the inotify watch limit is reached ({text}); raise it with "
                "`sudo sysctl fs.inotify.max_user_watches=524288`")
    return f"file events failed ({type(exc).__name__}: {text})"
