"""The built-in plan for a Django project (a ``manage.py`` that sets ``DJANGO_SETTINGS_MODULE``).

``boot`` (settings module chosen as ``manage.py`` chooses it for a command line without a
command, Django imported) → ``django``
(``django.setup()``: apps, models, management commands) → ``test_environment``. Database
connections are closed in a phase before it forks and in every fork, so no two processes share
one. docs/plans.md shows how to extend it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from zeuspy.plan import after_fork
from zeuspy.plans import django_reloader, django_settings, project, pyrun, pytest_support
from zeuspy.plans.python import PythonPlan, import_modules
from zeuspy.shim import process

SETTINGS_ENV = django_settings.SETTINGS_ENV
#: The status Django's reloader ends its serving process with when a watched file changed.
RELOAD_STATUS = django_reloader.RELOAD_STATUS
#: Management commands loaded by the ``django`` phase, so that they start warm.
WARM_COMMANDS = ("check", "migrate", "makemigrations", "runserver", "shell", "test")


def close_connections() -> None:
    """Close every database connection this process opened (each fork opens its own)."""
    if "django.db" not in sys.modules:
        return
    from django.db import connections

    try:
        opened = connections.all(initialized_only=True)
    except TypeError:  # Django before 4.1: every alias (closing an unopened one is a no-op)
        opened = connections.all()
    for connection in opened:
        try:
            connection.close()
        except Exception:  # a connection that broke is closed enough
            pass


def manage(*argv: str) -> None:
    """``python manage.py ARGV``."""
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *argv])


class DjangoPlan(PythonPlan):
    """Phases and commands for a Django project; ``[tool.zeus]`` settings apply as for
    :class:`PythonPlan`."""

    TREE: ClassVar[dict[str, Any]] = {
        "boot": {
            "django": {
                "manage": None,
                "runserver": None,
                "shell": ["console"],
                "run": ["python"],
                "test_environment": {"test": None, "pytest": None},
            }
        }
    }

    def boot_default(self, name: str) -> str | None:
        """manage.py's settings module for ``DJANGO_SETTINGS_MODULE``."""
        return project.django_settings(self._root) if name == SETTINGS_ENV else None

    def boot(self) -> None:
        """The project on ``sys.path``, the settings module chosen, Django and
        ``[tool.zeus] preload`` imported."""
        project.put_on_path(self._root)
        settings = project.django_settings(self._root)
        if settings:
            os.environ.setdefault(SETTINGS_ENV, settings)
        import django  # noqa: F401

        if self._settings.preload is not None:
            import_modules(self._settings.preload, "boot", "listed in [tool.zeus] preload")

    def django(self) -> None:
        """``django.setup()`` (apps and models), the URL configuration and the common
        management commands loaded; connections closed around every fork."""
        import django
        from django.conf import settings
        from django.core.management import get_commands, load_command_class

        django.setup()
        # Closed by the phase before it forks (only the shim's own forks: a command's own forks,
        # say in a test, keep their connection as under manage.py), and in every fork.
        process.before_fork(close_connections)
        after_fork(close_connections)
        global _time_zone
        zone = getattr(settings, "TIME_ZONE", None)
        if zone and os.environ.get("TZ") == zone:  # Django put it there (tzset systems)
            _time_zone = zone
            after_fork(_keep_time_zone)
        commands = get_commands()
        for name in WARM_COMMANDS:
            if name in commands:
                load_command_class(commands[name], name)
        import_modules(self._settings.app, "django", "listed in [tool.zeus] app")
        try:
            from django.urls import get_resolver

            get_resolver().url_patterns  # noqa: B018 - imports the URLconf and its views
        except Exception as exc:  # `manage check` reports this better; commands import it anew
            print(f"zeus: phase django: the URL configuration does not load yet: {exc!r}",
                  file=sys.stderr)

    def test_environment(self) -> None:
        """Django's test runner, and pytest with its plugins (pytest-django among them) when
        pytest is installed."""
        import django.test.runner
        import django.test.utils  # noqa: F401

        if pytest_support.installed():
            pytest_support.preload(self._root)

    # -- commands -------------------------------------------------------------------------------
    def manage(self, argv: list[str]) -> int | None:
        """``python manage.py ARGS``: the project's manage.py run as the script
        (``manage runserver`` as the ``runserver`` command)."""
        if argv and argv[0] == "runserver":
            return self.runserver(argv[1:])
        return _managed(self._root, list(argv))

    def run(self, argv: list[str]) -> int | None:
        """``python ARGS``; ``python manage.py ARGS`` (the project's) runs as ``zeus manage
        ARGS`` does, other settings refused alike (a running Django cannot switch)."""
        if argv and not argv[0].startswith("-"):
            script = (self._root / "manage.py").resolve()
            if Path(argv[0]).resolve() == script:
                return _run_manage_py(argv)
        return super().run(argv)

    def runserver(self, argv: list[str]) -> int | None:
        """``manage.py runserver``. Django's reloader watches what the server loaded (modules,
        templates) from inside this process, in the mode it gives its own serving child (a
        child it started itself would re-run the shim's command line, and start cold). On a
        change it ends the server with status 3; the command then becomes the reloader
        (:mod:`zeuspy.plans.django_reloader`, exec, same terminal), which asks for ``zeus
        runserver`` again each time: a server forked from the phases rebooted for the change,
        which itself ends with status 3 on the next change. ``--noreload`` serves without
        watching, as with manage.py."""
        # Popped: what the server's own code sees of the environment is the user's.
        under_reloader = os.environ.pop(django_reloader.RELOADER_ENV, None) is not None
        if "--noreload" in argv:
            return _managed(self._root, ["runserver", *argv])
        from django.utils import autoreload

        os.environ[autoreload.DJANGO_AUTORELOAD_ENV] = "true"
        try:
            return _managed(self._root, ["runserver", *argv])
        except SystemExit as exc:
            if exc.code != RELOAD_STATUS or under_reloader:
                raise
        del os.environ[autoreload.DJANGO_AUTORELOAD_ENV]
        _become_reloader(argv)

    def shell(self, argv: list[str]) -> int | None:
        """``manage.py shell``."""
        return _managed(self._root, ["shell", *argv])

    def test(self, argv: list[str]) -> int | None:
        """``manage.py test``."""
        return _managed(self._root, ["test", *argv])

    def pytest(self, argv: list[str]) -> int:
        """``pytest ARGS``, refused when pytest-django would pick other settings."""
        from zeuspy.plans import django_pytest  # imports pytest: only where pytest runs

        django_pytest.choose_like_pytest_django()
        return pytest_support.run(argv, plugins=(django_pytest.__name__,))


def _become_reloader(argv: list[str]) -> NoReturn:
    """Replace this command (its server thread, its old modules) with the reloader of ``zeus
    runserver ARGV`` on the same streams and terminal (its process group stays the foreground
    one). A fresh interpreter, not a fork: the reloader holds nothing of the project. ``-I``:
    the script's folder (this package's, where ``django.py`` is) is not put on ``sys.path``."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, [sys.executable, "-I", django_reloader.__file__, *argv])


#: The TIME_ZONE Django's settings put into TZ when the phase set Django up (None: it did not).
_time_zone: str | None = None


def _keep_time_zone() -> None:
    """In each command, after it took the client's environment: TZ as Django's settings set it
    at start-up, overriding a TZ of the user's shell, as under manage.py."""
    if _time_zone is not None and os.environ.get("TZ") != _time_zone:
        os.environ["TZ"] = _time_zone
        time.tzset()


def _managed(root: Path, argv: list[str]) -> int | None:
    """``python manage.py ARGV`` typed in the client's folder: the project's manage.py (in
    ``root``) run as the script, its own code included; or, without one, Django's
    ``execute_from_command_line`` as a stand-in. Other settings than the phases set up end it
    with status 1 and a message."""
    script = root / "manage.py"
    if script.is_file():
        return _run_manage_py([os.path.relpath(script), *argv])

    def stand_in() -> None:
        pyrun.become_script("manage.py", None, argv)
        manage(*argv)

    return _settings_guarded(stand_in)


def _run_manage_py(args: list[str]) -> int | None:
    """``python ARGS`` for ``ARGS[0]``, the project's manage.py (``sys.argv``, ``sys.orig_argv``,
    ``__main__`` and ``sys.path[0]`` as python gives them; tracebacks with its frames). Its
    own code chooses the settings as under python. Django is set up already: the command's
    ``django.setup()`` is cheap. ``SystemExit`` (runserver's status 3 among them)
    propagates."""
    return _settings_guarded(lambda: pyrun.main(args))


def _settings_guarded(program: Callable[[], int | None]) -> int | None:
    """``program()``, a management command line, with a ``DJANGO_SETTINGS_MODULE`` only the
    phases set out of the environment (the program chooses as under python), and its call of
    ``execute_from_command_line`` refused when that choice, or ``--settings``, is not the
    phases' (:func:`django_settings.guard_management_utility`)."""
    undo = django_settings.guard_management_utility(django_settings.leave_to_program())
    try:
        return program()
    finally:
        undo()


__all__ = ["DjangoPlan", "close_connections", "manage"]
