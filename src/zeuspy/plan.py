"""The plan API: subclass :class:`Plan` with one method per node of zeus.json.

A phase's method takes no arguments and prepares the process (imports, settings); a command's method
takes the argument list (``argv``, without the command word; ``sys.argv`` is ``[command, *argv]``)
and returns an exit status or ``None`` (0). ``after_fork`` runs in every forked phase and command.
See docs/plans.md.
"""

from __future__ import annotations

import os

#: Names a node may not take, because :class:`Plan` uses them itself.
RESERVED_METHODS = frozenset({"after_fork"})

_tracked: list[str] = []


class Plan:
    """Base class of a zeuspy plan. Methods are looked up by :func:`method_name` of each node."""

    def after_fork(self) -> None:
        """Runs in every forked phase (before its action) and every command process."""


def method_name(node: str) -> str:
    """The plan method that implements a node: its name with ``-`` read as ``_``."""
    return node.replace("-", "_")


def track(path: str | os.PathLike[str]) -> None:
    """Report ``path`` as a file the current phase depends on: a change restarts the phase."""
    _tracked.append(os.path.realpath(os.fspath(path)))


def take_tracked() -> list[str]:
    """The paths passed to :func:`track` since the last call (the shim reports them)."""
    taken = list(_tracked)
    _tracked.clear()
    return taken
