"""The status document drawn with rich, for the master's live chart and for ``zeus status``.

Both draw the same document: the master's answer to ``Q:status`` (``Master.status_document``,
the schema of docs/status.md). Every function here is pure: the same document gives the same
renderable.

- :func:`status_view`, for ``zeus status``: the master's line, then the phase tree with each
  phase's state, pid and boot time, what it waits for, and the start of a crashed phase's error.
- :func:`chart_view`, for the master's terminal: the tree coloured by state with boot times,
  the commands coloured by their phase's state, a legend, and the master's latest messages.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

#: Colour of each displayed state; the legend lists them in this order.
STATE_STYLE = {"ready": "green", "booting": "yellow", "waiting": "blue", "crashed": "bold red"}
#: Lines of a crashed phase's error shown by ``zeus status``.
ERROR_LINES = 6

Document = dict[str, Any]


def _tree(doc: Document, label: Any) -> Tree | None:
    """The phases as a rich tree (parents before children in the document), each labelled by
    ``label(phase)``; None when there is no phase."""
    nodes: dict[str, Tree] = {}
    root: Tree | None = None
    for phase in doc["phases"]:
        if phase["parent"] is None:
            root = nodes[phase["name"]] = Tree(label(phase), guide_style="dim")
        else:
            nodes[phase["name"]] = nodes[phase["parent"]].add(label(phase))
    return root


def master_line(doc: Document) -> str:
    """``master pid N · ROOT[ · built-in P plan (no zeus.json)] · watching files by W``."""
    master = doc["master"]
    # A zero-config project has no zeus.json to name: say which plan runs instead.
    plan = (f" · built-in {master['builtin']} plan (no zeus.json)" if master.get("builtin")
            else "")
    return (f"master pid {master['pid']} · {master['root']}{plan} · watching files by "
            f"{master.get('watcher') or '?'}")


def _error_lines(error: str) -> list[str]:
    lines = error.strip().splitlines()
    if len(lines) > ERROR_LINES:  # the start, and the exception itself at the end
        lines = [*lines[: ERROR_LINES - 2], "...", *lines[-2:]]
    return lines


def status_view(doc: Document) -> Group:
    """What ``zeus status`` prints: the master's line and the phase tree with details."""
    width = max((len(p["name"]) + 4 * p["depth"] for p in doc["phases"]), default=0)

    def label(phase: dict[str, Any]) -> Text:
        state = phase["state"]
        details = [state]
        if phase["pid"]:
            details.append(f"pid {phase['pid']}")
        if phase["boot_seconds"] is not None and state == "ready":
            details.append(f"booted in {phase['boot_seconds']:.2f} s")
        if phase.get("blocked_by"):
            details.append(f"waiting for {phase['blocked_by']}")
        # Details line up in one column, whatever the depth (a guide is 4 characters).
        text = Text(phase["name"].ljust(width - 4 * phase["depth"] + 2))
        text.append("  ".join(details), style=STATE_STYLE[state])
        for line in _error_lines(phase["error"] or ""):
            text.append("\n    " + line, style=STATE_STYLE["crashed"])
        return text

    tree = _tree(doc, label)
    return Group(Text(master_line(doc)), *([tree] if tree is not None else []))


def chart_view(doc: Document, title: str = "", messages: list[str] | None = None) -> Group:
    """The master's live chart for ``doc``."""
    def label(phase: dict[str, Any]) -> Text:
        state = phase["state"]
        text = Text(phase["name"], style=STATE_STYLE[state])
        text.append(f"  {state}", style=STATE_STYLE[state])
        if state == "ready" and phase["boot_seconds"] is not None:
            text.append(f"  {phase['boot_seconds']:.2f}s", style="dim")
        elif state == "waiting" and phase.get("blocked_by"):
            text.append(f"  ({phase['blocked_by']} crashed)", style="dim")
        return text

    tree = _tree(doc, label)
    crashed = {p["name"] for p in doc["phases"] if p["state"] == "crashed" or p.get("blocked_by")}
    commands = Table.grid(padding=(0, 2))
    commands.add_column(no_wrap=True)
    commands.add_column()
    for command in doc["commands"]:
        state = command["state"]
        name = Text(command["name"], style=STATE_STYLE[state])
        if command["aliases"]:
            name.append(f" ({', '.join(command['aliases'])})", style="dim")
        # A built-in plan's commands still run where their phase crashed (the nearest ready
        # phase above it: docs/plans.md), and show the error themselves.
        note = Text("run to see the traceback", style="red") if command["phase"] in crashed else ""
        commands.add_row(name, note)
    legend = Text("")
    for state, style in STATE_STYLE.items():
        legend.append("● ", style=style)
        legend.append(f"{state}  ", style="dim")
    parts: list[Any] = []
    if title:
        parts.append(Text(title, style="bold"))
    if tree is not None:
        parts.append(tree)
    parts.extend([Text(""), Text("Commands", style="bold"), commands, Text(""), legend])
    if messages:
        parts.append(Text(""))
        parts.extend(Text(m, overflow="ellipsis", no_wrap=True) for m in messages)
    return Group(*parts)
