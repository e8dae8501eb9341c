"""FileMonitor: which phase loaded which file, and what a change to a file restarts.

Watcher threads only hand paths to the loop (``call_soon_threadsafe``); everything else runs on
it. Changes are gathered for ``delay`` seconds from the first one, checked against the file's last
known signature and content (a save that leaves the content as it was restarts nothing), and then
restart the highest phase that loaded any changed file, with its subtree, and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable

from zeuspy.config import Config
from zeuspy.master.tasks import TaskSet
from zeuspy.master.tree import Phase, PhaseState, ProcessTree
from zeuspy.master.watchers import Watcher
from zeuspy.master.watchers.polling import DEFAULT_INTERVAL, PollingWatcher, Signature, signature

log = logging.getLogger(__name__)

DEFAULT_DELAY = 0.3
#: A file whose mtime is this close after a boot began may have been saved while the boot read it.
STALE_BOOT_MARGIN_NS = 10_000_000
#: Files larger than this are compared by signature only, not by content.
HASH_LIMIT = 16 * 1024 * 1024

Restart = Callable[[Phase, str], object]


def content_hash(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(HASH_LIMIT + 1), digest_size=16).digest()
    except OSError:
        return None


class FileMonitor:
    """Owns the tracked files of a tree and turns their changes into restarts."""

    def __init__(self, tree: ProcessTree, watcher: Watcher, restart: Restart,
                 reload_plan: Callable[[str], bool], note: Callable[[str], None],
                 delay: float = DEFAULT_DELAY) -> None:
        self.tree = tree
        self.watcher = watcher
        self.restart = restart
        self.reload_plan = reload_plan
        self.note = note
        self.delay = delay
        self.root = str(tree.config.root).rstrip("/") + "/"
        self.owners: dict[str, set[str]] = {}
        self.signatures: dict[str, Signature] = {}
        self.hashes: dict[str, bytes | None] = {}
        self.plan_files: set[str] = set()
        #: phase name -> the generation whose boot was redone because a file changed during it.
        self._redone: dict[str, int] = {}
        self.pending: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks = TaskSet("file monitor")
        self._loop = asyncio.get_running_loop()
        self._stopped = False

    # -- set-up --------------------------------------------------------------------------------
    def start(self) -> None:
        self.watcher.start(self._from_thread, self._failed_from_thread)
        self.watch_plan(self.tree.config)
        self.tree.listeners.append(self._on_transition)

    def watch_plan(self, config: Config) -> None:
        """zeus.json and the plan file: a change to them reloads the plan."""
        plan = {str(config.path)}
        if config.plan_file is not None:
            plan.add(str(config.plan_file))
        self.plan_files = plan | {os.path.realpath(p) for p in plan}
        self._track(self.plan_files)

    def forget_owners(self) -> None:
        """A plan of another shape rebuilds the tree: forget who loaded what (the new phases
        report again)."""
        self.owners.clear()

    def _on_transition(self, phase: Phase, old: PhaseState, new: PhaseState) -> None:
        """A phase that boots again reports anew every file it loads: forget what its last
        process loaded, so that a file it no longer imports restarts it no more. (Until then
        the old files stay its own: a fix to a crashed phase's file restarts it.)"""
        if new is not PhaseState.BOOTING:
            return
        for path in phase.features:
            owners = self.owners.get(path)
            if owners is not None:
                owners.discard(phase.name)
                if not owners:
                    del self.owners[path]
        phase.features.clear()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        self.watcher.stop()
        self._tasks.cancel()

    def _from_thread(self, paths: set[str]) -> None:
        self._loop.call_soon_threadsafe(self.changed, paths)

    def _failed_from_thread(self, reason: str) -> None:
        self._loop.call_soon_threadsafe(self._fall_back, reason)

    def _fall_back(self, reason: str) -> None:
        """OS events stopped working: say so once, and poll every tracked file instead (after
        acting on what changed while events were failing)."""
        if self._stopped:
            return
        self.note(f"warning: {reason}; polling every {DEFAULT_INTERVAL:g} s instead")
        self.watcher.stop()
        self.watcher = PollingWatcher(DEFAULT_INTERVAL)
        self.watcher.start(self._from_thread, self._failed_from_thread)
        self.watcher.track(set(self.signatures))
        missed = {path for path, sig in self.signatures.items() if signature(path) != sig}
        if missed:
            self.changed(missed)

    # -- features --------------------------------------------------------------------------------
    def _track(self, paths: set[str]) -> None:
        fresh = {p for p in paths if p not in self.signatures}
        if not fresh:
            return
        for path in fresh:
            self.signatures[path] = signature(path)
        self.watcher.track(fresh)
        self._tasks.spawn(self._hash(fresh), "hash new files")

    async def _hash(self, paths: set[str]) -> None:
        """Remember the content of newly tracked files, unless they changed since tracking (then
        the hash would describe the new content, and the change would look like no change)."""

        def hashes() -> dict[str, tuple[Signature, bytes | None]]:
            return {p: (signature(p), content_hash(p)) for p in paths}

        for path, (sig, digest) in (await asyncio.to_thread(hashes)).items():
            if sig == self.signatures.get(path) and sig == signature(path):
                self.hashes.setdefault(path, digest)

    def add_features(self, phase: Phase, paths: list[str]) -> None:
        """A phase reported files it loaded. A project file first seen now but saved after the
        boot began may have been read before the save: that boot is abandoned and redone (once
        in a row, since a boot may write a file it then reads)."""
        fresh = {p for p in paths if p not in self.signatures}
        for path in paths:
            self.owners.setdefault(path, set()).add(phase.name)
        phase.features.update(paths)
        self._track(set(paths))
        if phase.state is not PhaseState.BOOTING and phase.state is not PhaseState.READY:
            return
        since = phase.boot_wall_ns - STALE_BOOT_MARGIN_NS
        for path in sorted(fresh):
            sig = self.signatures.get(path)
            if sig is None or sig[3] < since or not path.startswith(self.root):
                continue
            if self._redone.get(phase.name) == phase.generation - 1:
                log.info("%s changed during %s's boot again; not redoing it twice in a row",
                         self._name(path), phase.name)
                return
            self._redone[phase.name] = phase.generation
            self.note(f"{self._name(path)} changed while {phase.name} booted; booting it again")
            self.restart(phase, f"{self._name(path)} changed during its boot")
            return

    # -- changes ---------------------------------------------------------------------------------
    def changed(self, paths: set[str]) -> None:
        """Tracked paths changed (by the watcher's word): gather them for ``delay`` seconds."""
        self.pending |= paths
        if self._timer is None:
            self._timer = self._loop.call_later(self.delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        batch, self.pending = self.pending, set()
        if batch:
            self._tasks.spawn(self.apply(batch), "apply changes")

    async def apply(self, batch: set[str]) -> None:
        """Restart what ``batch`` affects: the whole tree for the plan, else the highest phases
        that loaded a changed file. Each phase restarts at most once per batch.

        The new signatures are recorded only together with the restarts (no await in between):
        until then a command's stale check still sees the files as changed and waits."""
        verdicts = [(path, await self._compare(path)) for path in sorted(batch)]
        changed = []
        for path, (really, sig, digest) in verdicts:
            self.signatures[path] = sig
            if digest is None:
                self.hashes.pop(path, None)
            else:
                self.hashes[path] = digest
            if really:
                changed.append(path)
        if not changed:
            return
        plan = [path for path in changed if path in self.plan_files]
        if plan and self.reload_plan(plan[0]):
            return  # the whole tree restarts
        changed = [path for path in changed if path not in self.plan_files]
        affected: dict[str, str] = {}
        for path in changed:
            for name in self.owners.get(path, ()):
                affected.setdefault(name, path)
        phases = [self.tree.phases[n] for n in affected if n in self.tree.phases]
        chosen = set(phases)
        highest = [p for p in phases if not any(a in chosen for a in _ancestors(p))]
        for phase in sorted(highest, key=lambda p: p.depth):
            if phase.state is PhaseState.UNBOOTED and phase.process is None:
                continue  # not booted: it will load the new file anyway
            reason = f"{self._name(affected[phase.name])} changed"
            self.note(f"{reason}: restarting {phase.name}")
            self.restart(phase, reason)

    async def _compare(self, path: str) -> tuple[bool, Signature, bytes | None]:
        """(whether ``path``'s content differs from what we last knew - a touch does not count -,
        its signature now, its content hash now or None when unknown). Records nothing."""
        new = signature(path)
        old_hash = self.hashes.get(path)
        if new == self.signatures.get(path):
            return False, new, old_hash
        if new is None or new[2] > HASH_LIMIT:
            return True, new, None
        new_hash = await asyncio.to_thread(content_hash, path)
        # Content not known before (a save came before the tracking's hash was taken): a
        # change, whose hash is known from now on, so that the next same-bytes save is none.
        return old_hash is None or new_hash != old_hash, new, new_hash

    def stale_files(self, phase: Phase) -> list[str]:
        """Project files loaded by ``phase`` or its ancestors whose signature changed and whose
        change has not been acted on yet: a command must not run against the old code. For a
        crashed phase these include the files its traceback named (reported with the crash), so
        that a command issued right after a fix waits for the reboot instead of getting the old
        error."""
        stale = []
        node: Phase | None = phase
        while node is not None:
            for path in node.features:
                if path.startswith(self.root) and signature(path) != self.signatures.get(path):
                    stale.append(path)
            node = node.parent
        return stale

    async def refresh_now(self, paths: list[str]) -> None:
        """Act on ``paths`` at once instead of after the delay (a command is waiting)."""
        self.pending -= set(paths)
        await self.apply(set(paths))

    def _name(self, path: str) -> str:
        return path[len(self.root):] if path.startswith(self.root) else path


def _ancestors(phase: Phase) -> list[Phase]:
    found = []
    node = phase.parent
    while node is not None:
        found.append(node)
        node = node.parent
    return found

