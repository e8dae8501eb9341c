"""Which backend watches, and what happens when OS events stop working."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from zeuspy import config as config_module
from zeuspy.master import watchers
from zeuspy.master.filemonitor import FileMonitor
from zeuspy.master.tree import ProcessTree
from zeuspy.master.watchers import ChangeCallback, FailureCallback
from zeuspy.master.watchers.events import EventWatcher
from zeuspy.master.watchers.polling import PollingWatcher


def test_poll_option_forces_polling() -> None:
    notes: list[str] = []
    watcher = watchers.choose("/", 0.25, notes.append)
    assert isinstance(watcher, PollingWatcher) and watcher.interval == 0.25
    assert notes == []  # asked for: nothing to explain


def test_events_by_default_on_a_local_filesystem(tmp_path: Path) -> None:
    notes: list[str] = []
    assert isinstance(watchers.choose(str(tmp_path), None, notes.append), EventWatcher)
    assert notes == []


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "cifs", "fuse.sshfs", "9p"])
def test_network_filesystem_polls_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                               fstype: str) -> None:
    monkeypatch.setattr(watchers, "filesystem_type", lambda path: fstype)
    notes: list[str] = []
    watcher = watchers.choose("/srv/project", None, notes.append)
    assert isinstance(watcher, PollingWatcher)
    assert len(notes) == 1
    assert fstype in notes[0] and "network filesystem" in notes[0] and "--poll" in notes[0]


def test_filesystem_type_of_this_machine_root() -> None:
    assert watchers.filesystem_type("/") is not None  # read from /proc/self/mountinfo


class FailingWatcher:
    """OS events that break after start (an inotify limit reached later)."""

    name = "events"

    def __init__(self) -> None:
        self.on_failure: FailureCallback | None = None
        self.tracked: set[str] = set()
        self.stopped = False

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        self.on_failure = on_failure

    def track(self, paths: set[str]) -> None:
        self.tracked |= paths

    def stop(self) -> None:
        self.stopped = True


def test_event_failure_falls_back_to_polling_once_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "zeus.json").write_text('{"plan": {"boot": {"hello": null}}}')
    (tmp_path / "zeus_plan.py").write_text(textwrap.dedent("""
        import zeuspy
        class P(zeuspy.Plan):
            def boot(self): pass
            def hello(self, argv): pass
    """))
    tree = ProcessTree(config_module.load(tmp_path / "zeus.json"))
    failing = FailingWatcher()
    notes: list[str] = []

    async def scenario() -> FileMonitor:
        monitor = FileMonitor(tree, failing, lambda phase, why: None, lambda path: True,
                              notes.append, 0.05)
        monitor.start()
        assert failing.on_failure is not None
        # The watcher thread reports the failure; it reaches the loop through call_soon_threadsafe.
        failing.on_failure("the inotify watch limit is reached (ENOSPC); raise it with sysctl")
        await asyncio.sleep(0.05)
        try:
            assert isinstance(monitor.watcher, PollingWatcher)
            assert set(monitor.signatures) <= monitor.watcher._pending.keys() | set(
                monitor.watcher._known)
        finally:
            monitor.stop()
        return monitor

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert failing.stopped
    assert len(notes) == 1 and "inotify watch limit" in notes[0] and "polling" in notes[0]


def test_a_folder_vanishing_under_the_watch_is_left_out_not_polled_for_good(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout can remove a watched folder between the stat and the watch. watchfiles 1.3
    skips a missing path; a version that raises FileNotFoundError for it (as it does without
    ``ignore_permission_denied``) must not end events either: the watch is made without the
    folder, which is marked missing and watched again when it reappears."""
    from watchfiles._rust_notify import RustNotify

    from zeuspy.master.watchers import events

    def strict(**options: Any) -> RustNotify:
        missing = [p for p in options["watch_paths"] if not os.path.isdir(p)]
        if missing:
            raise FileNotFoundError(f"No such file or directory (os error 2) about {missing}")
        return RustNotify(**options)

    monkeypatch.setattr(events, "RustNotify", strict)
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    kept.mkdir()
    gone.mkdir()
    watcher = events.EventWatcher()
    for folder in (kept, gone):
        watcher._by_dir[str(folder)] = {str(folder / "a.py")}
        watcher._watched[str(folder)] = events._identity(str(folder))
    gone.rmdir()
    notify = watcher._open()
    assert notify is not None
    notify.close()
    assert watcher._watched[str(gone)] is None
    assert watcher._watched[str(kept)] is not None
