"""The file watchers' shared contract, run against both backends (:class:`EventWatcher` and
:class:`PollingWatcher`): every kind of change a user makes to a tracked file is reported as a
change of the tracked path, editor noise is not, tracked files can be added while the watcher runs,
10,000 files in 500 folders work, and ``stop`` returns promptly. Every wait is bounded.
(FileMonitor's decisions: tests/unit/test_filemonitor.py.)
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zeuspy.master.watchers.events import EventWatcher
from zeuspy.master.watchers.polling import PollingWatcher

#: Longest a reported change may take (events arrive in ~20 ms, polls every 50 ms here).
REPORT_TIMEOUT = 3.0
#: How long the watcher gets to set up after ``track`` before the test changes a file (the event
#: backend opens new folders from its thread, checking every 200 ms).
SETTLE = 0.4
#: How long "nothing is reported" is watched for.
QUIET = 0.5

BACKENDS: dict[str, Callable[[], Any]] = {
    "events": EventWatcher,
    "polling": lambda: PollingWatcher(0.05),
}



class Harness:
    """A started watcher and what it reported (from its thread)."""

    def __init__(self, name: str, watcher: Any) -> None:
        self.name = name
        self.watcher = watcher
        self._cond = threading.Condition()
        self._seen: set[str] = set()
        self.batches = 0
        self.failures: list[str] = []
        self.started = False

    # -- callbacks, called from the watcher's thread ----------------------------------------------
    def on_change(self, paths: set[str]) -> None:
        with self._cond:
            self._seen |= set(paths)
            self.batches += 1
            self._cond.notify_all()

    def on_failure(self, reason: str) -> None:
        with self._cond:
            self.failures.append(reason)
            self._cond.notify_all()

    # -- driving it -----------------------------------------------------------------------------
    def start(self) -> None:
        self.watcher.start(self.on_change, self.on_failure)
        self.started = True

    def track(self, *paths: Path | str, settle: bool = True) -> None:
        self.watcher.track({str(p) for p in paths})
        if settle:
            time.sleep(SETTLE)

    def seen(self) -> set[str]:
        with self._cond:
            return set(self._seen)

    def clear(self) -> None:
        with self._cond:
            self._seen.clear()

    def wait_reported(self, *paths: Path | str, timeout: float = REPORT_TIMEOUT) -> set[str]:
        """Wait until any of ``paths`` is reported; the reported set."""
        wanted = {str(p) for p in paths}
        with self._cond:
            self._cond.wait_for(lambda: bool(self._seen & wanted) or bool(self.failures),
                                timeout)
            seen = set(self._seen)
        assert not self.failures, f"{self.name}: watcher failed: {self.failures}"
        assert seen & wanted, (f"{self.name}: none of {sorted(wanted)} reported within "
                               f"{timeout} s (reported: {sorted(seen)})")
        return seen

    def assert_quiet(self, duration: float = QUIET) -> None:
        time.sleep(duration)
        seen = self.seen()
        assert not seen, f"{self.name}: reported {sorted(seen)} though no tracked file changed"
        assert not self.failures


@pytest.fixture(params=sorted(BACKENDS))
def watch(request: pytest.FixtureRequest) -> Iterator[Harness]:
    harness = Harness(request.param, BACKENDS[request.param]())
    try:
        yield harness
    finally:
        began = time.monotonic()
        harness.watcher.stop()
        assert time.monotonic() - began < 2.0, "stop() took too long"


def write(path: Path, text: str) -> None:
    path.write_text(text)


def atomic_save(path: Path, text: str) -> None:
    """What editors do: write a temp file in the same folder, rename it over the original."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A folder holding a tracked-to-be file ``a.py``."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.py").write_text("A = 1\n")
    return folder


def test_write_in_place(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    write(src / "a.py", "A = 2\n")
    assert watch.wait_reported(src / "a.py") == {str(src / "a.py")}


def test_append_in_place_keeps_inode(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    inode = (src / "a.py").stat().st_ino
    with open(src / "a.py", "a") as f:
        f.write("B = 2\n")
    assert (src / "a.py").stat().st_ino == inode
    watch.wait_reported(src / "a.py")


def test_atomic_save(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    atomic_save(src / "a.py", "A = 3\n")
    # The temp file is not tracked: only the tracked path is reported.
    assert watch.wait_reported(src / "a.py") == {str(src / "a.py")}
    # The watch survives the rename: a later save is seen too.
    watch.clear()
    time.sleep(0.05)
    atomic_save(src / "a.py", "A = 33\n")
    watch.wait_reported(src / "a.py")


def test_delete(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    (src / "a.py").unlink()
    watch.wait_reported(src / "a.py")


def test_delete_then_recreate(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    (src / "a.py").unlink()
    (src / "a.py").write_text("A = 4\n")
    watch.wait_reported(src / "a.py")
    # And the recreated file is still watched.
    time.sleep(0.2)
    watch.clear()
    write(src / "a.py", "A = 44\n")
    watch.wait_reported(src / "a.py")


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """``proj/link.py`` -> ``elsewhere/target.py``: (link, target)."""
    (tmp_path / "proj").mkdir()
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "target.py"
    target.write_text("T = 1\n")
    link = tmp_path / "proj" / "link.py"
    link.symlink_to(target)
    return link, target


def test_change_through_symlink(watch: Harness, linked: tuple[Path, Path]) -> None:
    link, target = linked
    watch.start()
    # As the shim reports it: the path as written and its resolved form.
    watch.track(link, os.path.realpath(link))
    write(link, "T = 2\n")
    assert target.read_text() == "T = 2\n"
    watch.wait_reported(link, target)


def test_change_to_symlink_target_directly(watch: Harness, linked: tuple[Path, Path]) -> None:
    link, target = linked
    watch.start()
    watch.track(link, os.path.realpath(link))
    atomic_save(target, "T = 3\n")
    watch.wait_reported(link, target)


def test_repointed_symlink(watch: Harness, linked: tuple[Path, Path]) -> None:
    link, target = linked
    watch.start()
    watch.track(link, os.path.realpath(link))
    other = target.with_name("target2.py")
    other.write_text("T = 'other'\n")
    tmp_link = link.with_name(".link.py.new")
    tmp_link.symlink_to(other)
    os.replace(tmp_link, link)
    assert link.read_text() == "T = 'other'\n"
    watch.wait_reported(link)


def test_editor_noise_is_ignored(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    (src / ".a.py.swp").write_text("swap")
    (src / ".a.py.swx").write_text("swap")
    (src / "4913").write_text("")  # vim's probe of whether it may write in the folder
    (src / "4913").unlink()
    (src / "a.py~").write_text("A = 1\n")  # a backup
    (src / "untracked.py").write_text("U = 1\n")
    (src / "untracked.py").unlink()
    (src / "sub").mkdir()
    (src / "sub" / "a.py").write_text("not the same a.py\n")
    watch.assert_quiet()


def test_new_file_tracked_while_running_in_a_watched_folder(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    (src / "b.py").write_text("B = 1\n")
    watch.track(src / "b.py", settle=False)  # the folder is watched already: no settling
    write(src / "b.py", "B = 2\n")
    assert watch.wait_reported(src / "b.py") == {str(src / "b.py")}


def test_new_file_tracked_while_running_in_a_new_folder(watch: Harness, src: Path,
                                                        tmp_path: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    fresh = tmp_path / "other" / "deep"
    fresh.mkdir(parents=True)
    (fresh / "c.py").write_text("C = 1\n")
    watch.track(fresh / "c.py")
    write(fresh / "c.py", "C = 2\n")
    assert watch.wait_reported(fresh / "c.py") == {str(fresh / "c.py")}
    # The folders watched before still are.
    watch.clear()
    write(src / "a.py", "A = 5\n")
    watch.wait_reported(src / "a.py")


def test_tracked_before_start(watch: Harness, src: Path) -> None:
    watch.track(src / "a.py", settle=False)
    watch.start()
    time.sleep(SETTLE)
    write(src / "a.py", "A = 6\n")
    watch.wait_reported(src / "a.py")


def test_change_right_after_track_in_a_new_folder(watch: Harness, src: Path,
                                                  tmp_path: Path) -> None:
    """Tracking says "from now on": a save right after ``track()`` returns counts (the polling
    backend takes each file's first signature in ``track`` for exactly this; FileMonitor tracks a
    phase's files when the phase reports them, and a save may follow at once)."""
    watch.start()
    watch.track(src / "a.py")
    fresh = tmp_path / "later"
    fresh.mkdir()
    (fresh / "d.py").write_text("D = 1\n")
    watch.track(fresh / "d.py", settle=False)
    write(fresh / "d.py", "D = 22\n")
    watch.wait_reported(fresh / "d.py", timeout=1.5)


def test_folder_deleted_and_recreated(watch: Harness, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text("M = 1\n")
    watch.start()
    watch.track(pkg / "m.py")
    for child in pkg.iterdir():
        child.unlink()
    pkg.rmdir()
    watch.wait_reported(pkg / "m.py")  # the delete
    pkg.mkdir()
    (pkg / "m.py").write_text("M = 2\n")
    time.sleep(SETTLE)
    watch.clear()
    write(pkg / "m.py", "M = 333\n")
    watch.wait_reported(pkg / "m.py", timeout=1.5)


def test_folder_missing_when_tracked_then_created(watch: Harness, src: Path,
                                                  tmp_path: Path) -> None:
    watch.start()
    watch.track(src / "a.py")
    later = tmp_path / "not-yet"
    watch.track(later / "e.py")
    later.mkdir()
    time.sleep(SETTLE)
    (later / "e.py").write_text("E = 1\n")
    watch.wait_reported(later / "e.py", timeout=1.5)


def test_ten_thousand_files_in_500_folders(watch: Harness, tmp_path: Path) -> None:
    began = time.monotonic()
    root = tmp_path / "many"
    files = []
    for d in range(500):
        folder = root / f"d{d:03}"
        folder.mkdir(parents=True)
        for f in range(20):
            path = folder / f"m{f:02}.py"
            path.write_bytes(b"x = 1\n")
            files.append(str(path))
    assert len(files) == 10_000
    watch.start()
    watch.track(*files, settle=False)
    time.sleep(1.0)
    assert not watch.seen(), "tracking alone reported changes"
    target = root / "d417" / "m13.py"
    write(target, "x = 2\n")
    assert watch.wait_reported(target) == {str(target)}
    watch.clear()
    atomic_save(root / "d003" / "m00.py", "x = 3\n")
    watch.wait_reported(root / "d003" / "m00.py")
    assert not watch.failures
    assert time.monotonic() - began < 10.0


def test_stop_returns_promptly(watch: Harness, src: Path) -> None:
    watch.start()
    watch.track(src / "a.py", settle=False)
    time.sleep(0.1)
    began = time.monotonic()
    watch.watcher.stop()
    assert time.monotonic() - began < 1.0
    # After stop, nothing more is reported (and a second stop is harmless).
    write(src / "a.py", "A = 7\n")
    time.sleep(0.3)
    assert not watch.seen()
    watch.watcher.stop()


def test_stop_right_after_start(watch: Harness) -> None:
    watch.start()
    began = time.monotonic()
    watch.watcher.stop()
    assert time.monotonic() - began < 1.0
