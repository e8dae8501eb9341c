"""Where a command runs when a phase on its path crashed: in the nearest ready ancestor of the
crashed phase, when the command is one of a built-in plan's (docs/plans.md, "When a phase
crashed").

The built-in commands run a tool (``python``, ``pytest``, ``manage.py``) that imports what it needs
itself: run from a phase that holds less, the tool meets the broken code on its own and fails as it
would without zeus (pytest's "ImportError while loading conftest" and status 4, python's
traceback, Django's error), or succeeds when it does not need the broken code (``zeus run -c
'print(1)'``). A command written in a plan file may rely on what its phase set up (a
configuration loaded, a connection made) and could silently run without it: it is refused, with
the crash, as it always was.
"""

from __future__ import annotations

import ast
from pathlib import Path

from zeuspy.config import Config
from zeuspy.master.tree import Phase, PhaseState
from zeuspy.plan import method_name


def _builtin_commands() -> frozenset[str]:
    """The command names of the built-in plans (importing ``zeuspy.plans`` imports no third-party
    module)."""
    from zeuspy.plans import DjangoPlan, PythonPlan

    names: set[str] = set()

    def walk(node: dict[str, object]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value)
            else:
                names.add(key)

    walk(PythonPlan.TREE)
    walk(DjangoPlan.TREE)
    return frozenset(names)


#: run, shell, pytest, manage, runserver, test.
BUILTIN_COMMANDS = _builtin_commands()


def defined_in(plan_file: Path, name: str) -> bool | None:
    """Whether a class of ``plan_file`` defines method ``name`` itself (parsed, never run); None
    when the file cannot be read or parsed."""
    try:
        tree = ast.parse(plan_file.read_bytes(), filename=str(plan_file))
    except (OSError, SyntaxError, ValueError):
        return None
    return any(isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name
               for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for stmt in cls.body)


def may_fall_back(config: Config, command: str) -> bool:
    """Whether ``command`` (a command's name, not an alias) may run in an ancestor of a crashed
    phase: a command of a built-in plan, run by the zeuspy shim, that the plan file (if any)
    inherits rather than defines."""
    if not config.uses_python_shim or command not in BUILTIN_COMMANDS:
        return False
    if config.builtin is not None:
        return True
    if config.plan_file is None:
        return False
    return defined_in(config.plan_file, method_name(command)) is False


def fallback_phase(crashed: Phase) -> Phase | None:
    """The nearest ready ancestor of ``crashed`` whose shim is zeuspy's, or None."""
    node = crashed.parent
    while node is not None and node.state is not PhaseState.READY:
        node = node.parent
    if node is None or node.process is None or not node.process.extensions:
        return None
    return node


#: The crash's reason is cut to this many characters in the note (which is one line).
NOTE_REASON_LIMIT = 120


#: How a traceback introduces the next exception of a chain.
_CHAIN_LINES = ("The above exception was the direct cause of the following exception:",
                "During handling of the above exception, another exception occurred:")


def _root_cause(error: str) -> str:
    """The last line of the first exception of a traceback's chain (the original error, say
    ``SyntaxError: '(' was never closed`` rather than the plan's wrapper around it)."""
    lines = []
    for line in error.splitlines():
        if line.strip() in _CHAIN_LINES:
            break
        if line.strip():
            lines.append(line.strip())
    return lines[-1] if lines else ""


def note(crashed: Phase, command: str, target: Phase) -> str:
    """The one line a client gets on stderr when its command runs in ``target`` instead."""
    reason = _root_cause(crashed.error or "") or "no error text"
    if len(reason) > NOTE_REASON_LIMIT:
        reason = reason[:NOTE_REASON_LIMIT - 3] + "..."
    return f"zeus: phase {crashed.name} crashed ({reason}); running {command} in phase " \
           f"{target.name}\n"
