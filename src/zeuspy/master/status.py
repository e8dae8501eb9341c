"""What the master shows in its terminal.

- :func:`render_chart` is a pure function from a tree snapshot (``ProcessTree.snapshot()``, the
  same data ``zeus status --json`` prints) to a rich renderable: the phase tree with box
  characters, each phase coloured by state with its boot time, the commands coloured by their
  phase's state, a legend, and the master's latest messages under it.
- :class:`LiveChart` redraws it in place on every state change and window resize (rich's Live
  display: one write per frame, so no flicker).
- :class:`StatusLines` prints one plain line per change instead: when not on a terminal, or with
  ``--simple-status``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import Any, TextIO

from zeuspy.master.tree import Phase, PhaseState, ProcessTree

#: Colour of each displayed state; the legend lists them in this order.
STATE_STYLE = {"ready": "green", "booting": "yellow", "waiting": "blue", "crashed": "bold red"}
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


def render_chart(snapshot: dict[str, Any], title: str = "",
                 messages: list[str] | None = None) -> Any:
    """The chart for ``snapshot`` (a pure function: same snapshot, same output)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    def label(phase: dict[str, Any]) -> Text:
        state = phase["state"]
        text = Text(phase["name"], style=STATE_STYLE[state])
        text.append(f"  {state}", style=STATE_STYLE[state])
        if state == "ready" and phase["boot_seconds"] is not None:
            text.append(f"  {phase['boot_seconds']:.2f}s", style="dim")
        elif state == "waiting" and phase.get("blocked_by"):
            text.append(f"  ({phase['blocked_by']} crashed)", style="dim")
        return text

    phases = snapshot["phases"]
    nodes: dict[str, Tree] = {}
    root: Tree | None = None
    for phase in phases:
        if phase["parent"] is None:
            root = nodes[phase["name"]] = Tree(label(phase), guide_style="dim")
        else:
            nodes[phase["name"]] = nodes[phase["parent"]].add(label(phase))
    crashed = {p["name"] for p in phases if p["state"] == "crashed" or p.get("blocked_by")}
    commands = Table.grid(padding=(0, 2))
    commands.add_column(no_wrap=True)
    commands.add_column()
    for command in snapshot["commands"]:
        state = command["state"]
        name = Text(command["name"], style=STATE_STYLE[state])
        if command["aliases"]:
            name.append(f" ({', '.join(command['aliases'])})", style="dim")
        note = Text("run to see the traceback", style="red") if command["phase"] in crashed else ""
        commands.add_row(name, note)
    legend = Text("")
    for state, style in STATE_STYLE.items():
        legend.append("● ", style=style)
        legend.append(f"{state}  ", style="dim")
    parts: list[Any] = []
    if title:
        parts.append(Text(title, style="bold"))
    if root is not None:
        parts.append(root)
    parts.extend([Text(""), Text("Commands", style="bold"), commands, Text(""), legend])
    if messages:
        parts.append(Text(""))
        parts.extend(Text(m, overflow="ellipsis", no_wrap=True) for m in messages)
    return Group(*parts)


class LiveChart:
    """Keeps the chart on screen, redrawn in place (coalesced: one redraw per loop turn)."""

    def __init__(self, tree: ProcessTree, title: str, color: bool = True,
                 stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.tree = tree
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
        snapshot = self.tree.snapshot()
        chart_lines = 6 + len(snapshot["phases"]) + len(snapshot["commands"])
        room = max(0, self.console.size.height - chart_lines - 2)
        shown = list(self.messages)[-room:] if room else []
        try:
            self.live.update(render_chart(snapshot, self.title, shown), refresh=True)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        try:
            self._draw()
            self.live.stop()
        except (OSError, ValueError):
            pass
