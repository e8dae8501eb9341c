"""File watching behind one small interface, with two backends chosen in :func:`choose`.

- :mod:`.events`: OS events (inotify on Linux, FSEvents/kqueue on macOS) through watchfiles.
- :mod:`.polling`: ``stat`` by path on an interval; for network filesystems, exhausted inotify
  watches, or ``--poll``.

Both watch the *directories* holding tracked files, or the paths themselves, never inodes, so a
write in place, an editor's atomic save (a temp file renamed over), a delete, a delete-then-recreate
and a change through a symlink all count as a change of the tracked path. Changes to files nobody
tracks (editor swap files, ``4913``, backups) are never reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: Called from the watcher's thread with the tracked paths that changed.
ChangeCallback = Callable[[set[str]], None]
#: Called from the watcher's thread when OS events stop working: the reason, for the user.
FailureCallback = Callable[[str], None]


class Watcher(Protocol):
    """A file watcher. ``track`` may be called any time, from the event loop's thread."""

    name: str

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        """Start watching in a thread of the watcher's own."""

    def track(self, paths: set[str]) -> None:
        """Add ``paths`` (absolute file paths) to the watched set."""

    def stop(self) -> None:
        """Stop the thread; returns once it has ended (bounded)."""


#: Filesystem types on which OS events miss changes made by other machines.
NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "sshfs", "afs", "ceph",
    "glusterfs", "fuse.glusterfs", "lustre", "davfs", "fuse.rclone", "virtiofs", "vboxsf",
    "fuse.vmhgfs-fuse",
})


def filesystem_type(path: str) -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux ``/proc/self/mountinfo``)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        try:
            mount_point = fields[4].replace("\\040", " ")
            fstype = fields[fields.index("-") + 1]
        except (IndexError, ValueError):
            continue
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fstype
    return best_type


def choose(root: str, poll_interval: float | None,
           note: Callable[[str], None]) -> Watcher:
    """The one place a backend is chosen: polling when asked (``--poll``) or when ``root`` is on a
    network filesystem, else OS events; ``note`` tells the user why polling was chosen."""
    from zeuspy.master.watchers.polling import DEFAULT_INTERVAL, PollingWatcher

    if poll_interval is not None:
        return PollingWatcher(poll_interval)
    fstype = filesystem_type(root)
    if fstype in NETWORK_FILESYSTEMS:
        note(f"{root} is on a network filesystem ({fstype}), where file events miss changes made "
             f"elsewhere; polling every {DEFAULT_INTERVAL:g} s instead (set it with --poll)")
        return PollingWatcher(DEFAULT_INTERVAL)
    try:
        from zeuspy.master.watchers.events import EventWatcher
    except ImportError as exc:
        note(f"file events are unavailable ({exc}); polling every {DEFAULT_INTERVAL:g} s instead. "
             "Install watchfiles to get them.")
        return PollingWatcher(DEFAULT_INTERVAL)
    return EventWatcher()
