"""FileMonitor's decisions: which phases a change restarts, when, and how often.

A fake watcher reports changes, a fake restart callback records restarts, and the tree is built
from a real zeus.json and plan file. The loop's clock is fake too (:class:`FakeClockLoop`): the
debounce delay passes when a test says so, not in real time. Content hashing still runs in a real
thread, so every wait for it is bounded in real time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeuspy import config as config_module
from zeuspy.master.filemonitor import STALE_BOOT_MARGIN_NS, FileMonitor
from zeuspy.master.tree import Phase, PhaseState, ProcessTree
from zeuspy.master.watchers import ChangeCallback, FailureCallback

#: Longest real time the monitor's own work (hashing in a thread, applying a batch) may take.
WORK_TIMEOUT = 5.0


class FakeClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock (:attr:`now`) moves only when a test moves it: a timer (the
    monitor's debounce) fires once the test has moved the clock past it, at once in real time."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0

    def time(self) -> float:
        return self.now


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the loop until ``condition()``; AssertionError after WORK_TIMEOUT real seconds."""
    deadline = time.monotonic() + WORK_TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {WORK_TIMEOUT} s"
        await asyncio.sleep(0)
        time.sleep(0.001)  # a thread's result comes through the loop's self-pipe


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
        await until(lambda: not set(self.monitor.signatures) - set(self.monitor.hashes),
                    "content hashes computed")

    async def settle(self) -> None:
        """Past the delay (the fake clock moves), and past the monitor's own work."""
        loop = asyncio.get_running_loop()
        assert isinstance(loop, FakeClockLoop)
        monitor = self.monitor

        def done() -> bool:
            # A report hops onto the loop first; its batch's timer then fires once the clock
            # has passed it.
            if monitor._timer is not None:
                loop.now = max(loop.now, monitor._timer.when())
                return False
            return not len(monitor._tasks)

        await asyncio.sleep(0)
        await until(done, "the batch applied")

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

    loop = FakeClockLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


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


def test_a_save_before_the_first_hash_then_the_same_bytes_restarts_once(rig_root: Path) -> None:
    """A save that comes before the tracking's hash was taken is a change (the content before
    is unknown); its hash is known from then on, so saving the same bytes again is none."""
    async def scenario(rig: Rig) -> None:
        leaf = rig_root / "mypkg" / "leaf.py"
        rig.monitor.hashes.pop(str(leaf))  # as if the save beat the hashing thread
        await rig.change("mypkg/leaf.py", "LEAF = (\n")
        await rig.settle()
        later = time.time_ns() + 5_000_000_000
        leaf.write_text("LEAF = (\n")
        os.utime(leaf, ns=(later, later))
        rig.watcher.report(leaf)
        await rig.settle()

    assert [phase for phase, _ in run_rig(rig_root, scenario).restarts] == ["app"]


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
        for i in range(100):
            rel = "mypkg/leaf.py" if i % 2 else "mypkg/other.py"
            await rig.change(rel, f"V = {i}\n")
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
