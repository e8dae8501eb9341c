"""What the master shows in its terminal.

- :class:`LiveChart` draws the status document (the master's answer to ``zeus status``) as
  zeuspy/statusview.py's chart, in place, on every state change and window resize (rich's Live
  display: one write per frame, so no flicker).
- :class:`StatusLines` prints one plain line per change instead: when not on a terminal, or with
  ``--simple-status``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from zeuspy.master.tree import Phase, PhaseState, ProcessTree
from zeuspy.statusview import chart_view

#: How many of the master's messages are kept for the chart.
MESSAGES_KEPT = 200


def describe(phase: Phase, new: PhaseState) -> str:
    """One plain line for a phase that just entered ``new``."""
    if new is PhaseState.READY:
        took = f" in {phase.boot_seconds:.2f} s" if phase.boot_seconds is not None else ""
        return f"{phase.name}: ready{took}"
    if new is PhaseState.CRASHED:
        names = ", ".join(phase.commands) or "a command below it"
        return f"{phase.name}: crashed (run {names} to see the traceback)"
    if new is PhaseState.BOOTING:
        return f"{phase.name}: booting"
    return f"{phase.name}: waiting"


def stamp(text: str) -> str:
    return f"{time.strftime('%H:%M:%S')} {text}"


class StatusLines:
    """One timestamped line per state change and per message, on ``stream``."""

    def __init__(self, tree: ProcessTree, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        tree.listeners.append(self.on_transition)

    def watch(self, tree: ProcessTree) -> None:
        tree.listeners.append(self.on_transition)

    def on_transition(self, phase: Phase, old: PhaseState, new: PhaseState) -> None:
        self.message(describe(phase, new))

    def message(self, text: str) -> None:
        try:
            self.stream.write(stamp(text) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        pass


class LiveChart:
    """Keeps the chart on screen, redrawn in place (coalesced: one redraw per loop turn)."""

    def __init__(self, tree: ProcessTree, document: Callable[[], dict[str, Any]], title: str,
                 color: bool = True, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.tree = tree
        self.document = document
        self.title = title
        self.messages: deque[str] = deque(maxlen=MESSAGES_KEPT)
        self.console = Console(file=stream or sys.stdout, no_color=not color,
                               highlight=False)
        self.live = Live(console=self.console, auto_refresh=False, transient=False,
                         redirect_stdout=False, redirect_stderr=False,
                         vertical_overflow="ellipsis")
        self._pending = False
        self.live.start()
        self.watch(tree)

    def watch(self, tree: ProcessTree) -> None:
        self.tree = tree
        tree.listeners.append(self.on_transition)
        self.redraw()

    def on_transition(self, phase: Phase, old: PhaseState, new: PhaseState) -> None:
        self.redraw()

    def message(self, text: str) -> None:
        self.messages.append(stamp(text))
        self.redraw()

    def redraw(self) -> None:
        """Ask for a redraw; several changes in one loop turn make one frame."""
        if self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._draw()
            return
        self._pending = True
        loop.call_soon(self._draw)

    def _draw(self) -> None:
        self._pending = False
        doc = self.document()
        chart_lines = 6 + len(doc["phases"]) + len(doc["commands"])
        room = max(0, self.console.size.height - chart_lines - 2)
        shown = list(self.messages)[-room:] if room else []
        try:
            self.live.update(chart_view(doc, self.title, shown), refresh=True)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self._draw()
            self.live.stop()
        except (OSError, ValueError):
            pass
