"""The built-in plan for any Python project: the default when there is no zeus.json.

``boot`` → ``app`` → ``test_environment``, with ``run``/``python`` and ``shell``/``console`` on
``app`` and ``pytest``/``test`` on ``test_environment``. docs/plans.md shows how to extend it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from zeuspy.plan import Plan, track
from zeuspy.plans import console, project, pyrun, pytest_support

#: Why boot imports the project's own packages (part of the message when one does not import).
OWN_PACKAGES_HINT = ("one of the project's own packages, imported because pyproject.toml has no "
                     "[tool.zeus] preload list; set one to choose what boot imports")


class PreloadError(ImportError):
    """A module the plan was told (or chose) to import at boot does not import."""


def import_modules(names: tuple[str, ...] | list[str], phase: str, hint: str) -> None:
    """Import ``names`` in order; a failure names the module, the phase and how to change it."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise PreloadError(f"phase {phase} could not import {name!r} ({hint}): {exc}") \
                from exc


def try_import(name: str, root: Path) -> bool:
    """Import ``name`` if it imports; False when it does not. Then the project's modules that the
    failed import left in ``sys.modules`` (submodules that did import) are dropped, so that a
    command imports them all anew as ``python`` would, and the files the error named are tracked:
    fixing them restarts this phase, which then imports ``name`` again."""
    from zeuspy.shim.tracking import module_file, traceback_files

    before = set(sys.modules)
    try:
        importlib.import_module(name)
    except Exception as exc:
        prefix = str(root).rstrip("/") + "/"
        for left in set(sys.modules) - before:
            module = sys.modules.get(left)
            path = module_file(module) if module is not None else None
            if path is not None and path.startswith(prefix):
                del sys.modules[left]
        for path in traceback_files(exc):
            track(path)
        print(f"zeus: not preloading {name!r} ({OWN_PACKAGES_HINT}): {exc!r}; the next "
              "phase imports it again and reports the error", file=sys.stderr)
        return False
    return True


class PythonPlan(Plan):
    """Phases and commands for a Python project; settings come from ``[tool.zeus]``."""

    #: The plan tree (zeus.json's ``"plan"``) this class implements.
    TREE: ClassVar[dict[str, Any]] = {
        "boot": {
            "app": {
                "run": ["python"],
                "shell": ["console"],
                "test_environment": {"pytest": ["test"]},
            }
        }
    }

    def __init__(self) -> None:
        #: The project root: the folder the master runs the phases in. (Underscored, like every
        #: attribute of a built-in plan: a node of that name would be shadowed by it.)
        self._root = Path(os.getcwd())
        self._settings = project.tool_settings(self._root)
        self.boot_env = (*type(self).boot_env, *self._settings.boot_env)
        #: The project's own packages that did not import in boot (no preload list): ``app``
        #: imports them again, and crashes with their error (docs/plans.md).
        self._unloaded: list[str] = []

    # -- phases ---------------------------------------------------------------------------------
    def boot(self) -> None:
        """The project's folders on ``sys.path``; ``[tool.zeus] preload``, else the project's own
        top-level packages, imported. A listed module that fails crashes boot; one of the
        project's own packages (imported by default) that fails is left to ``app``, so that
        boot stays up and a command whose own phase crashed can run here (the tool then meets
        the error itself: docs/plans.md, "When a phase crashed")."""
        project.put_on_path(self._root)
        if self._settings.preload is not None:
            import_modules(self._settings.preload, "boot", "listed in [tool.zeus] preload")
        else:
            self._unloaded = [name for name in project.own_packages(self._root)
                              if not try_import(name, self._root)]

    def app(self) -> None:
        """``[tool.zeus] app``: modules to load above boot, so that editing them restarts only
        this phase (keep heavy libraries in ``preload`` and your own code here). First the
        project's own packages that did not import in boot: their error crashes this phase."""
        import_modules(self._unloaded, "app", "one of the project's own packages, which boot "
                       "could not preload")
        import_modules(self._settings.app, "app", "listed in [tool.zeus] app")

    def test_environment(self) -> None:
        """pytest, its built-in and installed plugins, and the root conftest.py (nothing when
        pytest is not installed: the phase is ready, and ``zeus pytest`` says what is missing)."""
        if pytest_support.installed():
            pytest_support.preload(self._root)

    # -- commands -------------------------------------------------------------------------------
    def run(self, argv: list[str]) -> int | None:
        """``python ARGS``: a script, ``-m module``, ``-c code``, stdin, or the console."""
        return pyrun.main(argv, self.shell)

    def shell(self, argv: list[str]) -> int | None:
        """IPython when installed, else Python's console."""
        return console.interact(argv)

    def pytest(self, argv: list[str]) -> int:
        """``pytest ARGS``."""
        return pytest_support.run(argv)
