"""The process tree: the master's handles on phases, their states and the one transition function.

Only the event loop touches it. Every state change goes through :meth:`ProcessTree.transition`,
which checks it against :data:`TRANSITIONS`, logs ``old -> new`` and tells the listeners (the
status display, waiting clients).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeuspy.config import CommandSpec, Config

if TYPE_CHECKING:
    from zeuspy.master.channel import Channel

log = logging.getLogger(__name__)


class PhaseState(enum.Enum):
    """A phase's lifecycle. UNBOOTED waits for its parent (or for its old process to die)."""

    UNBOOTED = "unbooted"
    BOOTING = "booting"
    READY = "ready"
    CRASHED = "crashed"


S = PhaseState
#: Where each state may go next.
TRANSITIONS: dict[PhaseState, frozenset[PhaseState]] = {
    S.UNBOOTED: frozenset({S.BOOTING}),
    S.BOOTING: frozenset({S.READY, S.CRASHED, S.UNBOOTED}),
    S.READY: frozenset({S.UNBOOTED}),
    S.CRASHED: frozenset({S.UNBOOTED}),
}


#: How states are named to users (the chart, ``zeus status``): an unbooted phase is waiting.
DISPLAY_STATE = {
    PhaseState.UNBOOTED: "waiting",
    PhaseState.BOOTING: "booting",
    PhaseState.READY: "ready",
    PhaseState.CRASHED: "crashed",
}


class InvalidTransition(Exception):
    pass


@dataclass(eq=False)
class PhaseProcess:
    """One live (or dying) process of a phase, as registered over the protocol."""

    pid: int
    channel: Channel
    extensions: bool = False
    #: zeuspy extensions the shim accepted (``ctty``, ``handover``).
    caps: frozenset[str] = frozenset()
    #: Set when the process is known dead: its socket reached EOF, the master reaped it, or its
    #: pidfd said so (docs/architecture.md, Trust, Liveness).
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    #: True once the master decided to kill it: its death is then expected, not a crash.
    doomed: bool = False
    features_fd: int | None = None
    #: A pidfd on the process (Linux 5.3+), read by the loop: its death, as the kernel sees it.
    pidfd: int | None = None


@dataclass(eq=False)
class Phase:
    """The master's handle on one phase of the plan."""

    name: str
    parent: Phase | None
    children: list[Phase] = field(default_factory=list)
    commands: tuple[str, ...] = ()
    state: PhaseState = PhaseState.UNBOOTED
    process: PhaseProcess | None = None
    error: str | None = None
    boot_started: float = 0.0
    #: Wall-clock start of the current boot, to compare with file modification times.
    boot_wall_ns: int = 0
    boot_seconds: float | None = None
    features: set[str] = field(default_factory=set)
    #: Bumped on every restart so that stale work (a late registration) can be told apart.
    generation: int = 0
    #: Recent unexpected deaths, for the restart back-off.
    deaths: list[float] = field(default_factory=list)

    @property
    def depth(self) -> int:
        return 0 if self.parent is None else self.parent.depth + 1

    def subtree(self) -> list[Phase]:
        """This phase and all below it, parents before children."""
        found = [self]
        for child in self.children:
            found.extend(child.subtree())
        return found

    def blocking_crash(self) -> Phase | None:
        """The crashed phase (this one or an ancestor) that keeps this phase from booting."""
        node: Phase | None = self
        while node is not None:
            if node.state is PhaseState.CRASHED:
                return node
            node = node.parent
        return None


Listener = Callable[["Phase", PhaseState, PhaseState], None]


class ProcessTree:
    """All phases of a plan, indexed by name, plus the listeners of their state changes."""

    def __init__(self, config: Config) -> None:
        self.listeners: list[Listener] = []
        self._changed: asyncio.Future[None] | None = None
        self._build(config)

    def _build(self, config: Config) -> None:
        self.config = config
        self.phases: dict[str, Phase] = {}
        for spec in config.phases.values():
            parent = self.phases[spec.parent] if spec.parent else None
            phase = Phase(spec.name, parent, commands=spec.commands)
            if parent is not None:
                parent.children.append(phase)
            self.phases[spec.name] = phase
        self.root = self.phases[next(iter(config.phases))]

    def command(self, name: str) -> CommandSpec | None:
        return self.config.resolve(name)

    def transition(self, phase: Phase, new: PhaseState, reason: str = "") -> None:
        """The only way a phase changes state: validated, logged, published."""
        old = phase.state
        if old is new:
            return
        if new not in TRANSITIONS[old]:
            raise InvalidTransition(f"phase {phase.name}: {old.value} -> {new.value}")
        phase.state = new
        now = time.monotonic()
        if new is PhaseState.BOOTING:
            phase.boot_started = now
            phase.boot_wall_ns = time.time_ns()
            phase.boot_seconds = None
            phase.error = None
        elif new is PhaseState.READY:
            phase.boot_seconds = now - phase.boot_started
        elif new is PhaseState.UNBOOTED:
            phase.error = None
        log.info("phase %s: %s -> %s%s", phase.name, old.value, new.value,
                 f" ({reason})" if reason else "")
        for listener in list(self.listeners):
            try:
                listener(phase, old, new)
            except Exception:
                log.exception("state listener failed")
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def snapshot(self) -> dict[str, Any]:
        """The tree as plain data: what the status chart draws and ``zeus status --json`` prints
        (schema in docs/status.md)."""
        phases = []
        for phase in self.root.subtree():
            error = phase.error if phase.state is PhaseState.CRASHED else None
            phases.append({
                "name": phase.name,
                "parent": phase.parent.name if phase.parent else None,
                "depth": phase.depth,
                "state": DISPLAY_STATE[phase.state],
                "pid": phase.process.pid if phase.process is not None else None,
                "boot_seconds": (round(phase.boot_seconds, 4)
                                 if phase.boot_seconds is not None else None),
                "error": error,
                "blocked_by": (crash.name if (crash := phase.blocking_crash()) is not None
                               and crash is not phase else None),
            })
        states = {p["name"]: p["state"] for p in phases}
        commands = [
            {"name": spec.name, "aliases": list(spec.aliases), "phase": spec.phase,
             "state": states[spec.phase]}
            for spec in self.config.commands.values()
        ]
        return {"phases": phases, "commands": commands}

    def rebuild(self, config: Config) -> None:
        """Take the phases of ``config`` (zeus.json changed shape; the old phases must be down):
        the tree stays the one object every part of the master holds, with its listeners, and
        everyone waiting on it wakes up to look the command up again."""
        self._build(config)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    async def changed(self) -> None:
        """Return after the next state change of any phase."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._changed)
