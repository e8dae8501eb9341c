"""The plugin modules' fixture scan of a pytest run, narrowed ahead of time in the phase.

At the start of every session pytest's fixture manager scans each registered plugin that is not
a conftest file (``FixtureManager.parsefactories``): it walks every name of the module, reads it
raw and through ``getattr``, and unwraps it looking for fixtures hidden behind decorators. On a
large stack that is thousands of names (the fixture manager's start took 17 ms of each run on
bench/heavy.py), and for a plugin module imported in the phase the answer is the same every
time. Narrowed, it took about 30 % less (measured 29.5 -> 21.0 ms on a loaded machine): checking
that a namespace is unchanged still touches each of its objects, and in a fork every object
touched is a page copied.

So the phase indexes the plugin modules it preloaded: the names pytest could act on (a fixture
definition, a ``classmethod``/``staticmethod``, anything with a ``__wrapped__`` chain) and a
snapshot of the module's namespace. In a command, when pytest scans one of those modules and its
namespace is still the snapshot (same names, the very same objects), pytest's own scan runs on a
stand-in module holding only those names, in the same (sorted) order: it registers the same
fixtures and warns alike. A module that changed, defines ``__getattr__`` or ``__dir__``, or was
not indexed is scanned whole, as usual.
"""

from __future__ import annotations

import types
from typing import Any

_MISSING = object()
#: id(module) -> (module, its namespace as indexed, the stand-in module to scan instead).
_index: dict[int, tuple[types.ModuleType, dict[str, object], types.ModuleType]] = {}
_original: Any = None
#: How many scans the current command narrowed to a stand-in: for tests and debugging.
narrowed = 0


def _may_matter(value: object, fixture_type: type) -> bool:
    """Whether pytest's scan could do anything with ``value`` (conservative: true for anything
    it cannot rule out)."""
    kind = type(value)
    if kind is fixture_type or kind is classmethod or kind is staticmethod:
        return True
    try:
        return hasattr(value, "__wrapped__")
    except BaseException:  # an object that raises on attribute access: let pytest decide
        return True


def index(modules: list[types.ModuleType]) -> None:
    """In the phase: index ``modules`` (pytest's and the installed plugins' modules)."""
    from _pytest.fixtures import FixtureFunctionDefinition

    for module in modules:
        namespace = vars(module)
        if "__getattr__" in namespace or "__dir__" in namespace:
            continue
        snapshot = dict(namespace)
        stand_in = types.ModuleType(module.__name__)
        stand_in.__dict__.update({name: value for name, value in snapshot.items()
                                  if _may_matter(value, FixtureFunctionDefinition)})
        _index[id(module)] = (module, snapshot, stand_in)


def _unchanged(module: types.ModuleType, snapshot: dict[str, object]) -> bool:
    namespace = vars(module)
    return len(namespace) == len(snapshot) and all(
        namespace.get(name, _MISSING) is value for name, value in snapshot.items())


def _parsefactories(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``FixtureManager.parsefactories``, scanning an indexed, unchanged plugin module's
    stand-in instead of the module."""
    global narrowed
    from zeuspy.plans.pytest_warm import enabled

    holder = kwargs.get("holder")
    entry = _index.get(id(holder)) if isinstance(holder, types.ModuleType) else None
    if (entry is not None and entry[0] is holder and _unchanged(holder, entry[1])
            and enabled()):
        kwargs["holder"] = entry[2]
        narrowed += 1
    return _original(self, *args, **kwargs)


def install() -> bool:
    """In the phase: scan stand-ins in the commands forked from here. False (nothing done) when
    pytest's fixture manager does not scan plugins the way this module expects."""
    global _original
    import inspect

    from _pytest import fixtures

    method = getattr(fixtures.FixtureManager, "parsefactories", None)
    if method is None or "holder" not in inspect.signature(method).parameters:
        return False
    if _original is None:
        _original = method
        fixtures.FixtureManager.parsefactories = _parsefactories  # type: ignore[method-assign]
    return True
