"""What the master shows in its terminal: one plain line per phase state change.

(The live chart of issue 4 will subscribe to the same transitions.) Rendering is a pure function
of the phase and its new state, so it is tested without a master.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from zeuspy.master.tree import Phase, PhaseState, ProcessTree


def describe(phase: Phase, new: PhaseState) -> str:
    """One line for a phase that just entered ``new``."""
    if new is PhaseState.READY:
        took = f" in {phase.boot_seconds:.2f} s" if phase.boot_seconds is not None else ""
        return f"{phase.name}: ready{took}"
    if new is PhaseState.CRASHED:
        names = ", ".join(phase.commands) or "a command below it"
        return f"{phase.name}: crashed (run {names} to see the traceback)"
    if new is PhaseState.BOOTING:
        return f"{phase.name}: booting"
    return f"{phase.name}: waiting"


class StatusLines:
    """Prints a timestamped line per state change on ``stream``."""

    def __init__(self, tree: ProcessTree, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        tree.listeners.append(self.on_transition)

    def on_transition(self, phase: Phase, old: PhaseState, new: PhaseState) -> None:
        self.message(describe(phase, new))

    def message(self, text: str) -> None:
        try:
            self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass
