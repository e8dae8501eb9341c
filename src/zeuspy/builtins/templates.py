"""The plan files `zeus init` writes (markers: @PRELOAD@, @SETTINGS@)."""

_COMMON = '''\
import code
import importlib
import os
import runpy
import sys
from pathlib import Path

import zeuspy

ROOT = Path(__file__).resolve().parent


def put_project_on_path() -> None:
    """The project root and a src/ folder on sys.path, as `python` run from the root has."""
    for path in (ROOT / "src", ROOT):
        if path.is_dir() and str(path) not in sys.path:
            sys.path.insert(0, str(path))


def run_python(argv: list[str]) -> int | None:
    """`zeus run script.py ARGS`, `zeus run -m module ARGS`, `zeus run -c CODE ARGS`."""
    if not argv:
        code.interact(local={"__name__": "__console__"})
        return None
    if argv[0] == "-m" and len(argv) > 1:
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv[0] == "-c" and len(argv) > 1:
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")
    return None
'''

_PACKAGE = """\
\"\"\"zeuspy plan, written by `zeus init`: edit freely (docs/plans.md).\"\"\"

""" + _COMMON + """

#: Imported once by the `app` phase, so that commands start with them loaded.
PRELOAD = @PRELOAD@


class Plan(zeuspy.Plan):
    def boot(self) -> None:
        put_project_on_path()

    def app(self) -> None:
        for name in PRELOAD:
            importlib.import_module(name)

    def run(self, argv: list[str]) -> int | None:
        return run_python(argv)

    def shell(self, argv: list[str]) -> None:
        code.interact(local={"__name__": "__console__"})
"""

PACKAGE_PLAN = _PACKAGE

PYTEST_PLAN = _PACKAGE + """
    def test_environment(self) -> None:
        # pytest's own machinery. Plugins are left to pytest: imported here, before pytest
        # installs its assertion rewriting, they would lose it.
        for name in ("pytest", "_pytest.config", "_pytest.main", "_pytest.python",
                     "_pytest.fixtures", "_pytest.runner", "_pytest.terminal",
                     "_pytest.assertion.rewrite"):
            importlib.import_module(name)

    def pytest(self, argv: list[str]) -> int:
        import pytest

        return int(pytest.main(argv))
"""

DJANGO_PLAN = '''\
"""zeuspy plan for a Django project, written by `zeus init`: edit freely (docs/plans.md)."""

import os
import sys
from pathlib import Path

import zeuspy

ROOT = Path(__file__).resolve().parent
SETTINGS = "@SETTINGS@"


def manage(*argv: str) -> None:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *argv])


class Plan(zeuspy.Plan):
    def boot(self) -> None:
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)

    def django(self) -> None:
        import django
        from django.core.management import get_commands

        django.setup()
        get_commands()

    def after_fork(self) -> None:
        # A database connection opened by a phase must not be shared by its forks.
        if "django.db" in sys.modules:
            from django.db import connections

            for connection in connections.all():
                connection.close()

    def test_environment(self) -> None:
        import django.test.runner  # noqa: F401

    def manage(self, argv: list[str]) -> None:
        manage(*argv)

    def runserver(self, argv: list[str]) -> None:
        # zeuspy restarts phases when files change: Django's own reloader is not needed.
        manage("runserver", "--noreload", *argv)

    def shell(self, argv: list[str]) -> None:
        manage("shell", *argv)

    def test(self, argv: list[str]) -> None:
        manage("test", *argv)
'''
