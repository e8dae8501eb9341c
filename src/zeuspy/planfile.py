"""A Python plan file: its static check, done by the master before it starts anything
(:func:`check`), and its loading, done by the root phase (:func:`load_plan`).

The master never imports application code, and a plan file may import the application at its top.
So the file is parsed, not run: the plan class is the one subclass of ``zeuspy.Plan`` (directly or
through other classes of the file) that no other class of the file extends, and each node of
zeus.json needs a method of that name on it or its bases. Bases imported from elsewhere are
resolved only when they are zeuspy's own; for any other base the check trusts it and the shim
reports a missing method when the phase boots. The shim then imports the file and takes the same
class: the one subclass of ``Plan`` no other subclass in the file extends.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import keyword
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zeuspy import inputfile
from zeuspy.errors import ConfigError
from zeuspy.plan import Plan, method_name, reserved_method

if TYPE_CHECKING:
    from zeuspy.config import Config

#: The name a plan file is imported under (commands do not list it: hygiene.hide_plan_module).
PLAN_MODULE = "zeus_plan"


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_base_name(node.value)}.{node.attr}"
    return ""


def _zeuspy_imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> ``module:attr`` for names the file imports from zeuspy."""
    names: dict[str, str] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] == "zeuspy":
            for alias in stmt.names:
                names[alias.asname or alias.name] = f"{stmt.module}:{alias.name}"
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name.split(".")[0] == "zeuspy":
                    # `import zeuspy.plan` binds the name `zeuspy`; `import x.y as z` binds `z`.
                    if alias.asname:
                        names[alias.asname] = alias.name
                    else:
                        names["zeuspy"] = "zeuspy"
    return names


def _methods_of_zeuspy_class(ref: str) -> set[str] | None:
    module_name, _, attr = ref.partition(":")
    if not attr:  # "zeuspy.Plan" written as an attribute of the module
        module_name, _, attr = ref.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    return set(dir(cls)) if isinstance(cls, type) else None


def check(plan_file: Path, config: Config) -> None:
    """Raise :class:`ConfigError` unless ``plan_file`` defines a plan with a method per node."""
    try:
        source = inputfile.read_text(plan_file, "the plan file", inputfile.SOURCE_LIMIT)
    except FileNotFoundError:
        raise ConfigError(
            f"{plan_file}: plan file not found; create it (see docs/plans.md) or name another "
            f'with "plan_file" in {config.path.name}'
        ) from None
    try:
        tree = ast.parse(source, filename=str(plan_file))
    except SyntaxError as exc:
        where = f"{exc.lineno}:{exc.offset}:" if exc.lineno is not None else ""
        raise ConfigError(
            f"{plan_file}:{where} syntax error in the plan file: {' '.join(str(exc.msg).split())}"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        # Python's parser gives up on deep nesting (a long chain of a.b.c or 1+1+...) this way.
        raise ConfigError(f"{plan_file}: the plan file is nested too deeply to be parsed; "
                          "is it the right file?") from None
    try:
        _check_tree(plan_file, config, tree)
    except RecursionError:
        raise ConfigError(f"{plan_file}: the plan's classes extend each other too deeply to be "
                          "checked") from None


def _check_tree(plan_file: Path, config: Config, tree: ast.Module) -> None:
    imported = _zeuspy_imports(tree)
    classes = {s.name: s for s in tree.body if isinstance(s, ast.ClassDef)}
    plan_like: dict[str, bool] = {}

    def is_plan(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in plan_like:
            return plan_like[name]
        cls = classes[name]
        result = False
        for base in cls.bases:
            base_name = _base_name(base)
            head = base_name.split(".")[0]
            if base_name in classes and base_name not in seen:
                result = result or is_plan(base_name, seen | {name})
            elif head in imported or base_name in ("Plan", "zeuspy.Plan"):
                result = True
        plan_like[name] = result
        return result

    plans = [name for name in classes if is_plan(name)]
    extended = {_base_name(b) for name in plans for b in classes[name].bases}
    leaves = [name for name in plans if name not in extended]
    if not leaves:
        raise ConfigError(f"{plan_file}: defines no subclass of zeuspy.Plan; see docs/plans.md")
    if len(leaves) > 1:
        raise ConfigError(
            f"{plan_file}: defines several plans ({', '.join(leaves)}); keep one subclass of "
            "zeuspy.Plan that extends the others"
        )
    plan_name = leaves[0]
    methods: set[str] = set()
    complete = True

    collected: set[str] = set()

    def collect(name: str) -> None:
        nonlocal complete
        if name in collected:  # `class A(A)`, or a cycle: Python refuses it when it runs
            return
        collected.add(name)
        cls = classes[name]
        for stmt in cls.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                methods.add(stmt.name)
            elif isinstance(stmt, ast.Assign):
                methods.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        for base in cls.bases:
            base_name = _base_name(base)
            head = base_name.split(".")[0]
            if base_name in classes:
                collect(base_name)
            elif head in imported:
                rest = base_name[len(head) + 1 :]
                ref = imported[head] if head == base_name else f"{imported[head]}.{rest}"
                found = _methods_of_zeuspy_class(ref)
                if found is None:
                    complete = False
                else:
                    methods.update(found)
            elif base_name not in ("Plan", "zeuspy.Plan"):
                complete = False

    collect(plan_name)
    nodes = [*config.phases, *config.commands]
    for node in nodes:
        wanted = method_name(node)
        if not wanted.isidentifier() or keyword.iskeyword(wanted):
            raise ConfigError(
                f'{config.path}: node "{node}" cannot be a plan method name; use letters, digits, '
                "'_' and '-'"
            )
        reserved = reserved_method(wanted)
        if reserved is not None:
            raise ConfigError(
                f'{config.path}: node "{node}" cannot be a plan method name ({reserved}); '
                "rename it"
            )
        if complete and wanted not in methods:
            kind = "phase" if node in config.phases else "command"
            signature = "(self)" if kind == "phase" else "(self, argv)"
            raise ConfigError(
                f'{plan_file}: {kind} "{node}" has no method in plan {plan_name}; '
                f"add `def {wanted}{signature}:`"
            )


class PlanLoadError(Exception):
    """The plan file does not define a usable plan."""


def load_plan(source: str) -> Plan:
    """Instantiate the plan: ``module:Class`` (a built-in plan), or the one most-derived subclass
    of :class:`Plan` that a plan file defines."""
    module_name, colon, class_name = source.partition(":")
    if colon and not os.path.exists(source) and module_name.replace(".", "").isidentifier():
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if not (isinstance(cls, type) and issubclass(cls, Plan)):
            raise PlanLoadError(f"{source}: not a subclass of zeuspy.Plan")
        return cls()
    path = Path(source)
    spec = importlib.util.spec_from_file_location(PLAN_MODULE, path)
    if spec is None or spec.loader is None:
        raise PlanLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PLAN_MODULE] = module
    spec.loader.exec_module(module)
    plans = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Plan) and value is not Plan
    ]
    leaves = [c for c in plans if not any(o is not c and issubclass(o, c) for o in plans)]
    if len(leaves) != 1:
        found = ", ".join(c.__name__ for c in leaves) or "none"
        raise PlanLoadError(f"{path}: expected one subclass of zeuspy.Plan, found {found}")
    return leaves[0]()
