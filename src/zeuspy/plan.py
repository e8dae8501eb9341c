"""The plan API: subclass :class:`Plan` with one method per node of zeus.json.

A phase's method takes no arguments and prepares the process (imports, settings); a command's method
takes the argument list (``argv``, without the command word; ``sys.argv`` is ``[command, *argv]``)
and returns an exit status or ``None`` (0). ``after_fork`` runs in every forked phase and command,
as do the functions registered with :func:`after_fork`. The built-in plans (``zeuspy.plans``) are
subclasses to start from. See docs/plans.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

#: Names a node may not take, because :class:`Plan` uses them itself.
RESERVED_METHODS = frozenset({"after_fork", "boot_env", "boot_default"})
#: Variables that shape a boot whatever the plan: a command whose client has other values would
#: run against the wrong boot (docs/plans.md, "The client's world"). Besides the settings module
#: and the path, those the interpreter reads once at start-up and cannot follow later.
DEFAULT_BOOT_ENV = ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "PYTHONHASHSEED",
                    "PYTHONOPTIMIZE", "PYTHONDEVMODE", "PYTHONUTF8", "PYTHONIOENCODING",
                    "PYTHONSAFEPATH", "PYTHONNOUSERSITE", "PYTHONUSERBASE")

_tracked: list[str] = []
_after_fork_hooks: list[Callable[[], object]] = []

Hook = TypeVar("Hook", bound=Callable[[], object])


class Plan:
    """Base class of a zeuspy plan. Methods are looked up by :func:`method_name` of each node."""

    #: Environment variables that shaped the boot, besides :data:`DEFAULT_BOOT_ENV`. A command
    #: whose client has another value for one of them is refused with a message naming it.
    boot_env: tuple[str, ...] = ()

    def after_fork(self) -> None:
        """Runs in every forked phase (before its action) and every command process (before its
        method), after the functions registered with :func:`after_fork`."""

    def boot_default(self, name: str) -> str | None:
        """The value the plan gives boot variable ``name`` when the environment has none (the
        Django plan: manage.py's settings module), or None. A client without the variable
        matches a boot that had this value from the master's shell."""
        return None


def reserved_method(method: str) -> str | None:
    """Why no node may be implemented by ``method``, or None when one may: :class:`Plan` or
    ``object`` has it already (``after_fork``, ``__init__``: the node would call the inherited
    one, with the wrong arguments), or Python mangles it (``__x`` in a class body is ``_Plan__x``,
    so the method could never be found)."""
    if method in RESERVED_METHODS or method in dir(Plan):
        return f"zeuspy.Plan already has `{method}`"
    if method.startswith("__"):
        return "Python renames methods that start with '__' in a class"
    return None


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


def after_fork(hook: Hook) -> Hook:
    """Register ``hook`` (no arguments) to run in every process forked from now on (phases and
    commands), in registration order, before the plan's ``after_fork`` method. Usable as a
    decorator; returns ``hook``. A library calls this at import to reopen what a fork cannot
    share (a connection, a random generator); the hook stays registered in the forks."""
    _after_fork_hooks.append(hook)
    return hook


def run_after_fork(plan: Plan) -> None:
    """In a forked phase or command: the registered hooks, then ``plan.after_fork()``."""
    for hook in list(_after_fork_hooks):
        hook()
    plan.after_fork()


def boot_variables(plan: Plan) -> tuple[str, ...]:
    """Every variable that shapes ``plan``'s boot, without repeats."""
    return tuple(dict.fromkeys((*DEFAULT_BOOT_ENV, *plan.boot_env)))
