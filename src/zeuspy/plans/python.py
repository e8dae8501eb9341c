"""The built-in plan for any Python project: the default when there is no zeus.json.

``boot`` → ``app`` → ``test_environment``, with ``run``/``python`` and ``shell``/``console`` on
``app`` and ``pytest``/``test`` on ``test_environment``. docs/plans.md shows how to extend it.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, ClassVar

from zeuspy.plan import Plan
from zeuspy.plans import console, project, pyrun, pytest_support


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

    # -- phases ---------------------------------------------------------------------------------
    def boot(self) -> None:
        """The project's folders on ``sys.path``; ``[tool.zeus] preload``, else the project's own
        top-level packages, imported."""
        project.put_on_path(self._root)
        if self._settings.preload is not None:
            import_modules(self._settings.preload, "boot", "listed in [tool.zeus] preload")
        else:
            import_modules(project.own_packages(self._root), "boot",
                           "one of the project's own packages, imported because pyproject.toml "
                           "has no [tool.zeus] preload list; set one to choose what boot imports")

    def app(self) -> None:
        """``[tool.zeus] app``: modules to load above boot, so that editing them restarts only
        this phase (keep heavy libraries in ``preload`` and your own code here)."""
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
