"""PhaseState transitions, listeners, timing, and the tree built from a Config."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from zeuspy import config
from zeuspy.master import tree as tree_module
from zeuspy.master.tree import InvalidTransition, Phase, PhaseState, ProcessTree

S = PhaseState
ALLOWED = {
    (S.UNBOOTED, S.BOOTING),
    (S.BOOTING, S.READY), (S.BOOTING, S.CRASHED), (S.BOOTING, S.UNBOOTED),
    (S.READY, S.UNBOOTED),
    (S.CRASHED, S.UNBOOTED),
}
PLAN = {"boot": {"a": {"a1": {"x": None}, "a2": {}}, "b": {"y": ["yy"]}, "top": None}}
# Each state reached from UNBOOTED by allowed steps.
PATHS = {S.UNBOOTED: [], S.BOOTING: [S.BOOTING], S.READY: [S.BOOTING, S.READY],
         S.CRASHED: [S.BOOTING, S.CRASHED]}


@pytest.fixture
def tree(tmp_path: Path) -> ProcessTree:
    (tmp_path / "zeus.json").write_text(json.dumps({"command": "true", "plan": PLAN}))
    return ProcessTree(config.load(tmp_path / "zeus.json"))


def put(tree: ProcessTree, phase: Phase, state: PhaseState) -> None:
    for step in PATHS[state]:
        tree.transition(phase, step)
    assert phase.state is state


def test_transition_table_matches_the_design() -> None:
    table = {(old, new) for old, targets in tree_module.TRANSITIONS.items() for new in targets}
    assert table == ALLOWED
    assert set(tree_module.TRANSITIONS) == set(S)


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED, key=str))
def test_allowed_transition(tree: ProcessTree, old: PhaseState, new: PhaseState) -> None:
    phase = tree.phases["a"]
    put(tree, phase, old)
    seen: list[tuple[Phase, PhaseState, PhaseState]] = []
    tree.listeners.append(lambda *args: seen.append(args))
    tree.transition(phase, new, "because")
    assert phase.state is new
    assert seen == [(phase, old, new)]


@pytest.mark.parametrize(("old", "new"), sorted(
    {(o, n) for o, n in itertools.product(S, S) if o is not n} - ALLOWED, key=str))
def test_disallowed_transition(tree: ProcessTree, old: PhaseState, new: PhaseState) -> None:
    phase = tree.phases["b"]
    put(tree, phase, old)
    seen: list[object] = []
    tree.listeners.append(lambda *args: seen.append(args))
    with pytest.raises(InvalidTransition, match=f"phase b: {old.value} -> {new.value}"):
        tree.transition(phase, new)
    assert phase.state is old
    assert seen == []


@pytest.mark.parametrize("state", list(S))
def test_same_state_is_a_silent_no_op(tree: ProcessTree, state: PhaseState) -> None:
    phase = tree.phases["a1"]
    put(tree, phase, state)
    seen: list[object] = []
    tree.listeners.append(lambda *args: seen.append(args))
    tree.transition(phase, state)
    assert phase.state is state
    assert seen == []


def test_listeners_called_in_order_even_if_one_fails(tree: ProcessTree) -> None:
    calls: list[str] = []

    def broken(phase: Phase, old: PhaseState, new: PhaseState) -> None:
        calls.append("broken")
        raise RuntimeError("listener bug")

    tree.listeners.append(lambda p, o, n: calls.append(f"first {p.name} {o.value}>{n.value}"))
    tree.listeners.append(broken)
    tree.listeners.append(lambda p, o, n: calls.append("last"))
    tree.transition(tree.root, S.BOOTING)
    assert calls == ["first boot unbooted>booting", "broken", "last"]
    assert tree.root.state is S.BOOTING


def test_listener_may_remove_itself(tree: ProcessTree) -> None:
    calls: list[PhaseState] = []

    def once(phase: Phase, old: PhaseState, new: PhaseState) -> None:
        calls.append(new)
        tree.listeners.remove(once)

    tree.listeners.append(once)
    put(tree, tree.root, S.READY)
    assert calls == [S.BOOTING]


def test_boot_seconds_set_on_ready(tree: ProcessTree, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 102.5, 103.0, 110.0])
    monkeypatch.setattr(tree_module.time, "monotonic", lambda: next(clock))
    phase = tree.phases["a"]
    tree.transition(phase, S.BOOTING)
    assert phase.boot_started == 100.0
    assert phase.boot_seconds is None
    tree.transition(phase, S.READY)
    assert phase.boot_seconds == 2.5
    tree.transition(phase, S.UNBOOTED)
    assert phase.boot_seconds == 2.5  # kept until the next boot starts
    tree.transition(phase, S.BOOTING)
    assert phase.boot_started == 110.0
    assert phase.boot_seconds is None


def test_error_kept_on_crash_and_cleared_on_restart(tree: ProcessTree) -> None:
    phase = tree.phases["b"]
    tree.transition(phase, S.BOOTING)
    phase.error = "Traceback: boom"
    tree.transition(phase, S.CRASHED)
    assert phase.error == "Traceback: boom"
    assert phase.boot_seconds is None
    tree.transition(phase, S.UNBOOTED)
    assert phase.error is None
    phase.error = "stale"
    tree.transition(phase, S.BOOTING)
    assert phase.error is None


def test_blocking_crash(tree: ProcessTree) -> None:
    phases = tree.phases
    for name in ("boot", "a", "a1", "a2", "b"):
        put(tree, phases[name], S.READY if name == "boot" else S.BOOTING)
    assert all(p.blocking_crash() is None for p in phases.values())
    tree.transition(phases["a"], S.CRASHED)
    assert phases["a"].blocking_crash() is phases["a"]
    assert phases["a1"].blocking_crash() is phases["a"]
    assert phases["a2"].blocking_crash() is phases["a"]
    assert phases["b"].blocking_crash() is None
    assert phases["boot"].blocking_crash() is None
    tree.transition(phases["a1"], S.CRASHED)
    assert phases["a1"].blocking_crash() is phases["a1"]  # the nearest crash first
    tree.transition(phases["boot"], S.UNBOOTED)
    tree.transition(phases["boot"], S.BOOTING)
    tree.transition(phases["boot"], S.CRASHED)
    assert phases["b"].blocking_crash() is phases["boot"]


def test_tree_from_config_in_pre_order(tree: ProcessTree) -> None:
    assert list(tree.phases) == ["boot", "a", "a1", "a2", "b"]
    assert tree.root is tree.phases["boot"]
    assert tree.root.parent is None
    assert [c.name for c in tree.root.children] == ["a", "b"]
    assert [c.name for c in tree.phases["a"].children] == ["a1", "a2"]
    assert tree.phases["a1"].parent is tree.phases["a"]
    assert tree.phases["a1"].commands == ("x",)
    assert tree.phases["b"].commands == ("y",)
    assert tree.root.commands == ("top",)
    assert tree.phases["a2"].commands == ()
    assert [p.name for p in tree.root.subtree()] == ["boot", "a", "a1", "a2", "b"]
    assert [p.name for p in tree.phases["a"].subtree()] == ["a", "a1", "a2"]
    assert [tree.phases[n].depth for n in tree.phases] == [0, 1, 2, 2, 1]
    assert all(p.state is S.UNBOOTED for p in tree.phases.values())


def test_command_lookup_resolves_aliases(tree: ProcessTree) -> None:
    spec = tree.command("yy")
    assert spec is not None
    assert (spec.name, spec.phase) == ("y", "b")
    assert tree.command("y") == spec
    assert tree.command("a") is None
    assert tree.command("missing") is None


def test_changed_wakes_every_waiter_once(tree: ProcessTree) -> None:
    async def main() -> None:
        first = asyncio.ensure_future(tree.changed())
        second = asyncio.ensure_future(tree.changed())
        await asyncio.sleep(0)
        assert not first.done()
        tree.transition(tree.root, S.BOOTING, "start")
        await asyncio.wait_for(asyncio.gather(first, second), 1)
        # A new wait needs a new change.
        third = asyncio.ensure_future(tree.changed())
        await asyncio.sleep(0.01)
        assert not third.done()
        tree.transition(tree.root, S.BOOTING)  # a no-op does not count as a change
        await asyncio.sleep(0.01)
        assert not third.done()
        tree.transition(tree.root, S.READY)
        await asyncio.wait_for(third, 1)

    asyncio.run(main())


def test_cancelled_waiter_does_not_break_the_others(tree: ProcessTree) -> None:
    async def main() -> None:
        doomed = asyncio.ensure_future(tree.changed())
        other = asyncio.ensure_future(tree.changed())
        await asyncio.sleep(0)
        doomed.cancel()
        await asyncio.sleep(0)
        tree.transition(tree.root, S.BOOTING)
        await asyncio.wait_for(other, 1)
        assert doomed.cancelled()

    asyncio.run(main())


def test_transition_without_a_loop(tree: ProcessTree) -> None:
    # Nobody awaits changed(): transitions work from plain code too.
    put(tree, tree.root, S.CRASHED)
    tree.transition(tree.root, S.UNBOOTED)
    assert tree.root.state is S.UNBOOTED
