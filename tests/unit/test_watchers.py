"""The file watchers' shared contract (both backends), and FileMonitor's decisions.

Part 1 runs one suite against :class:`EventWatcher` and :class:`PollingWatcher`: every kind of
change a user makes to a tracked file is reported as a change of the tracked path, editor noise is
not, tracked files can be added while the watcher runs, 10,000 files in 500 folders work, and
``stop`` returns promptly. Every wait is bounded.

Part 2 drives :class:`FileMonitor` with a fake watcher and a fake restart callback, over a
:class:`ProcessTree` built from a real zeus.json and plan file, and checks which phases a change
restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zeuspy import config as config_module
from zeuspy.master.filemonitor import STALE_BOOT_MARGIN_NS, FileMonitor
from zeuspy.master.tree import Phase, PhaseState, ProcessTree
from zeuspy.master.watchers import ChangeCallback, FailureCallback
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


# =================================================================================================
# Part 1: the watcher contract
# =================================================================================================


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


# =================================================================================================
# Part 2: FileMonitor with a fake watcher
# =================================================================================================

MONITOR_DELAY = 0.1

PLAN = """
import zeuspy

class P(zeuspy.Plan):
    def boot(self): pass
    def app(self): pass
    def other(self): pass
    def show(self, argv): pass
    def othershow(self, argv): pass
"""
TREE = {"boot": {"app": {"show": None}, "other": {"othershow": None}}}


class FakeWatcher:
    name = "fake"

    def __init__(self) -> None:
        self.tracked: set[str] = set()
        self.on_change: ChangeCallback | None = None
        self.stopped = False

    def start(self, on_change: ChangeCallback, on_failure: FailureCallback) -> None:
        self.on_change = on_change

    def track(self, paths: set[str]) -> None:
        self.tracked |= paths

    def stop(self) -> None:
        self.stopped = True

    def report(self, *paths: Path | str) -> None:
        """As the watcher thread would (the callback hops onto the loop)."""
        assert self.on_change is not None
        self.on_change({str(p) for p in paths})


class Rig:
    """A FileMonitor over a booted-looking tree, recording restarts and plan reloads."""

    def __init__(self, root: Path, delay: float = MONITOR_DELAY) -> None:
        self.root = root
        self.tree = ProcessTree(config_module.load(root / "zeus.json"))
        self.watcher = FakeWatcher()
        self.restarts: list[tuple[str, str]] = []
        self.reloads: list[str] = []
        self.notes: list[str] = []
        self.monitor = FileMonitor(self.tree, self.watcher, self._restart, self._reload,
                                   self.notes.append, delay)

    def _reload(self, path: str) -> bool:
        """A valid plan: the whole tree restarts (so nothing else in the batch needs to)."""
        self.reloads.append(path)
        return True

    def _restart(self, phase: Phase, reason: str) -> None:
        self.restarts.append((phase.name, reason))

    def restarted(self) -> list[str]:
        return [name for name, _ in self.restarts]

    def phase(self, name: str) -> Phase:
        return self.tree.phases[name]

    async def boot(self, features: dict[str, list[str]]) -> None:
        """Every phase ready (with a stand-in process) and having reported ``features``."""
        self.monitor.start()
        for name, files in features.items():
            self.monitor.add_features(self.phase(name), [str(self.root / f) for f in files])
        time.sleep(STALE_BOOT_MARGIN_NS * 2 / 1e9)  # the files predate the boots
        booted = time.time_ns()
        for phase in self.tree.phases.values():
            phase.state = PhaseState.READY
            phase.boot_wall_ns = booted
            phase.process = object()  # type: ignore[assignment]
        await self.hashed()

    async def hashed(self) -> None:
        """Wait (bounded) until the monitor knows the content of every tracked file."""
        deadline = time.monotonic() + REPORT_TIMEOUT
        while set(self.monitor.signatures) - set(self.monitor.hashes):
            assert time.monotonic() < deadline, "content hashes never computed"
            await asyncio.sleep(0.01)

    async def settle(self) -> None:
        """Past the delay, and past the monitor's own work (hashing in a thread)."""
        await asyncio.sleep(self.monitor.delay + 0.3)

    async def change(self, rel: str, text: str | None = None) -> Path:
        path = self.root / rel
        old = path.read_text()
        path.write_text(text if text is not None else old + "# changed\n")
        self.watcher.report(path)
        return path


@pytest.fixture
def rig_root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "mypkg").mkdir(parents=True)
    (root / "zeus.json").write_text(json.dumps({"plan": TREE}))
    (root / "zeus_plan.py").write_text(PLAN)
    for rel, text in {
        "mypkg/__init__.py": "VALUE = 1\n",
        "mypkg/leaf.py": "LEAF = 1\n",
        "mypkg/other.py": "OTHER = 1\n",
        "mypkg/shared.py": "SHARED = 1\n",
        "settings.cfg": "color = blue\n",
    }.items():
        (root / rel).write_text(text)
    return root


FEATURES = {
    "boot": ["mypkg/__init__.py", "settings.cfg"],
    "app": ["mypkg/leaf.py", "mypkg/shared.py"],
    "other": ["mypkg/other.py", "mypkg/shared.py"],
}


def run_rig(root: Path, scenario: Callable[[Rig], Any], delay: float = MONITOR_DELAY) -> Rig:
    async def main() -> Rig:
        rig = Rig(root, delay)
        try:
            await rig.boot(FEATURES)
            await scenario(rig)
        finally:
            rig.monitor.stop()
        return rig

    return asyncio.run(asyncio.wait_for(main(), 20))


def test_monitor_tracks_plan_and_features(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        tracked = rig.watcher.tracked
        assert str(rig_root / "zeus.json") in tracked
        assert str(rig_root / "zeus_plan.py") in tracked
        for files in FEATURES.values():
            assert {str(rig_root / f) for f in files} <= tracked
        assert rig.phase("app").features == {str(rig_root / f) for f in FEATURES["app"]}

    rig = run_rig(rig_root, scenario)
    assert rig.restarts == [] and rig.reloads == []
    assert rig.watcher.stopped


def test_unchanged_content_save_restarts_nothing(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        leaf = rig_root / "mypkg" / "leaf.py"
        data = leaf.read_bytes()
        leaf.write_bytes(data)  # the same bytes
        later = time.time_ns() + 5_000_000_000
        os.utime(leaf, ns=(later, later))  # and surely a new mtime
        rig.watcher.report(leaf)
        await rig.settle()
        # A plain touch of a root file is not a change either.
        os.utime(rig_root / "mypkg" / "__init__.py", ns=(later, later))
        rig.watcher.report(rig_root / "mypkg" / "__init__.py")
        await rig.settle()
        assert rig.monitor.stale_files(rig.phase("app")) == []

    rig = run_rig(rig_root, scenario)
    assert rig.restarts == []


def test_watcher_report_without_change_restarts_nothing(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        rig.watcher.report(rig_root / "mypkg" / "leaf.py")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarts == []


def test_leaf_file_restarts_only_the_leaf(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.change("mypkg/leaf.py")
        await rig.settle()

    rig = run_rig(rig_root, scenario)
    assert rig.restarted() == ["app"]
    assert "leaf.py" in rig.restarts[0][1]
    assert any("mypkg/leaf.py changed: restarting app" in n for n in rig.notes), rig.notes


def test_root_file_restarts_only_the_root(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        # A root file and a leaf file in one batch: the root's restart covers the leaf.
        await rig.change("mypkg/__init__.py")
        await rig.change("mypkg/leaf.py")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["boot"]


def test_config_file_opened_by_root_restarts_the_root(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.change("settings.cfg", "color = red\n")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["boot"]


def test_file_of_root_and_leaf_restarts_only_the_root(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        rig.monitor.add_features(rig.phase("boot"), [str(rig_root / "mypkg" / "shared.py")])
        await rig.change("mypkg/shared.py")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["boot"]


def test_file_of_two_siblings_restarts_both(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.change("mypkg/shared.py")
        await rig.settle()

    assert sorted(run_rig(rig_root, scenario).restarted()) == ["app", "other"]


def test_burst_restarts_each_affected_phase_once(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        began = time.monotonic()
        for i in range(100):
            rel = "mypkg/leaf.py" if i % 2 else "mypkg/other.py"
            await rig.change(rel, f"V = {i}\n")
        # A precondition, not a speed check: the delay is far above the burst (~0.1 s), so
        # only a machine stalled for seconds could spread it over two batches.
        assert time.monotonic() - began < rig.monitor.delay, "burst slower than the delay"
        await rig.settle()

    rig = run_rig(rig_root, scenario, delay=3.0)
    assert sorted(rig.restarted()) == ["app", "other"]


def test_changes_after_a_batch_start_a_new_batch(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        await rig.change("mypkg/leaf.py", "LEAF = 2\n")
        await rig.settle()
        assert rig.restarted() == ["app"]
        await rig.change("mypkg/leaf.py", "LEAF = 33\n")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["app", "app"]


def test_delete_restarts_the_owner(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        (rig_root / "mypkg" / "other.py").unlink()
        rig.watcher.report(rig_root / "mypkg" / "other.py")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["other"]


def test_crashed_phase_restarts_on_change(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        app = rig.phase("app")
        app.state = PhaseState.CRASHED
        app.process = None
        await rig.change("mypkg/leaf.py", "LEAF = 'fixed'\n")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == ["app"]


def test_a_file_the_new_boot_no_longer_loads_restarts_nothing(rig_root: Path) -> None:
    """A phase's ownerships belong to its last process: after a restart (BOOTING again) it
    reports anew, and a file only the old process loaded no longer restarts it."""

    async def scenario(rig: Rig) -> None:
        app = rig.phase("app")
        for state in (PhaseState.UNBOOTED, PhaseState.BOOTING):
            rig.tree.transition(app, state, "restart")
        assert app.features == set()
        rig.monitor.add_features(app, [str(rig_root / "mypkg" / "shared.py")])
        rig.tree.transition(app, PhaseState.READY)
        await rig.change("mypkg/leaf.py", "LEAF = 2\n")
        await rig.settle()
        assert rig.restarted() == []
        await rig.change("mypkg/shared.py", "SHARED = 2\n")
        await rig.settle()

    # shared.py is still the other phase's too: both restart.
    assert sorted(run_rig(rig_root, scenario).restarted()) == ["app", "other"]


def test_unbooted_phase_is_left_to_boot(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        other = rig.phase("other")
        other.state = PhaseState.UNBOOTED
        other.process = None
        await rig.change("mypkg/other.py", "OTHER = 2\n")
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == []


def test_untracked_path_restarts_nothing(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        stray = rig_root / "mypkg" / "stray.py"
        stray.write_text("S = 1\n")
        rig.watcher.report(stray)
        await rig.settle()

    assert run_rig(rig_root, scenario).restarted() == []


@pytest.mark.parametrize("name", ["zeus_plan.py", "zeus.json"])
def test_plan_change_reloads_the_plan(rig_root: Path, name: str) -> None:
    async def scenario(rig: Rig) -> None:
        path = rig_root / name
        path.write_text(path.read_text() + "\n")
        rig.watcher.report(path)
        await rig.change("mypkg/leaf.py")  # in the same batch: the plan reload covers it
        await rig.settle()

    rig = run_rig(rig_root, scenario)
    assert rig.reloads == [str(rig_root / name)]
    assert rig.restarts == []


def test_stale_files_sees_a_save_before_the_delay(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        leaf = await rig.change("mypkg/leaf.py", "LEAF = 'new'\n")
        # Inside the debounce window the change is not acted on yet, but a command must wait.
        assert rig.monitor.stale_files(rig.phase("app")) == [str(leaf)]
        assert rig.monitor.stale_files(rig.phase("other")) == []
        await rig.monitor.refresh_now([str(leaf)])
        assert rig.restarted() == ["app"]
        await rig.settle()  # the pending batch no longer holds it: no second restart

    assert run_rig(rig_root, scenario).restarted() == ["app"]


def test_ancestor_files_count_as_stale(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        init = rig_root / "mypkg" / "__init__.py"
        init.write_text("VALUE = 2\n")
        assert str(init) in rig.monitor.stale_files(rig.phase("app"))
        await rig.settle()  # no watcher report: the stale check alone saw it

    assert run_rig(rig_root, scenario).restarts == []


def test_save_during_boot_redoes_the_boot(rig_root: Path) -> None:
    async def scenario(rig: Rig) -> None:
        app = rig.phase("app")
        app.state = PhaseState.BOOTING
        app.boot_wall_ns = time.time_ns()
        new = rig_root / "mypkg" / "late.py"
        time.sleep(0.02)
        new.write_text("L = 1\n")  # saved after the boot began, before the phase reported it
        rig.monitor.add_features(app, [str(new)])

    assert run_rig(rig_root, scenario).restarted() == ["app"]
