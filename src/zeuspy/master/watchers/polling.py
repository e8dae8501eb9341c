"""The polling backend: ``stat`` every tracked path on an interval, in a thread."""

from __future__ import annotations

import os
import threading

from zeuspy.master.watchers import ChangeCallback, FailureCallback

DEFAULT_INTERVAL = 1.0
#: How long :meth:`PollingWatcher.stop` waits for the thread.
STOP_TIMEOUT = 5.0

Signature = tuple[int, int, int, int] | None


def signature(path: str) -> Signature:
    """What identifies a file's content cheaply: inode, device, size, mtime (None: missing). A
    rename over the path changes the inode; a write changes size or mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class PollingWatcher:
    """Stats each tracked path every ``interval`` seconds; reports the ones whose signature
    changed (including appearing and disappearing)."""

    name = "polling"

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._pending: dict[str, Signature] = {}
        self._known: dict[str, Signature] = {}  # the thread's own
        self._lock = threading.Lock()  # guards _pending: the hand-over from the loop's thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_change,),
                                        name="zeus-polling", daemon=True)
        self._thread.start()

    def track(self, paths: set[str]) -> None:
        # The first signature is taken now, so a change right after tracking is not missed.
        first = {path: signature(path) for path in paths}
        with self._lock:
            for path, sig in first.items():
                self._pending.setdefault(path, sig)

    def _run(self, on_change: ChangeCallback) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                pending, self._pending = self._pending, {}
            for path, sig in pending.items():
                self._known.setdefault(path, sig)
            changed = set()
            for path, old in list(self._known.items()):
                new = signature(path)
                if new != old:
                    self._known[path] = new
                    changed.add(path)
            if changed:
                on_change(changed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
