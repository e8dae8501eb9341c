"""The settings module a Django command asks for, against the one the phases set up: a process
whose Django is set up cannot switch, so a command that asks for other settings is refused."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"


def from_arguments(argv: list[str]) -> str | None:
    """The value of ``--settings`` in a management command line, if any."""
    for index, arg in enumerate(argv):
        if arg.startswith("--settings="):
            return arg.partition("=")[2]
        if arg == "--settings" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def mismatch(wanted: str | None, source: str, instead: str = "drop the option") -> str | None:
    """The message for a command that wants settings ``wanted`` (from ``source``) when the
    phases set up others; None when they agree or nothing was asked. ``instead``: what else the
    user can do, the message's last words."""
    if not wanted or "django.conf" not in sys.modules:
        return None
    from django.conf import settings

    booted = getattr(settings, "SETTINGS_MODULE", None) if settings.configured else None
    if booted is None or wanted == booted:
        return None
    return (f"zeus: {source} asks for settings {wanted!r}, but the phases set up Django with "
            f"{booted!r}, and a running Django cannot switch. Start the master with them "
            f"(zeus stop; export {SETTINGS_ENV}={wanted}; zeus start), or {instead}.")


def leave_to_program() -> str | None:
    """Take out of the environment a ``DJANGO_SETTINGS_MODULE`` the command has only because the
    phases set it (the client's shell has none), so that the program (manage.py, pytest-django)
    chooses as it does when started by hand; its value (None: the shell set it, or nobody did),
    for the caller to put back when the program chooses nothing."""
    from zeuspy.shim import world

    if SETTINGS_ENV in world.kept_from_phases:
        return os.environ.pop(SETTINGS_ENV, None)
    return None


def guard_management_utility(from_phases: str | None) -> Callable[[], None]:
    """Until the returned undo is called, the first ``ManagementUtility`` made (the one
    ``execute_from_command_line`` makes when manage.py calls it) first checks the settings the
    program chose: ``--settings`` in its command line, else ``DJANGO_SETTINGS_MODULE``. Other
    settings than the phases set up end the command with the message of :func:`mismatch` and
    status 1 (``SystemExit``); no choice at all puts ``from_phases`` back in the environment,
    so that Django finds its settings as before. The check runs in ``__init__``, which returns
    before the command runs: a failing command's traceback shows no frame of it."""
    from django.core.management import ManagementUtility

    original = ManagementUtility.__init__

    def undo() -> None:
        ManagementUtility.__init__ = original

    def checked(utility: object, argv: list[str] | None = None) -> None:
        undo()  # one check: manage.py's own command line, not one a command builds later
        refuse_other_choice(argv or sys.argv, from_phases)
        original(utility, argv)

    ManagementUtility.__init__ = checked
    return undo


def refuse_other_choice(argv: list[str], from_phases: str | None) -> None:
    """Raise ``SystemExit(1)``, with the message on stderr, when management command line
    ``argv`` (program name first) runs with other settings than the phases set up."""
    given = from_arguments(argv[1:])
    chosen = given or os.environ.get(SETTINGS_ENV)
    if chosen is None:
        if from_phases is not None:
            os.environ[SETTINGS_ENV] = from_phases
        return
    if given:
        problem = mismatch(given, "--settings")
    else:
        problem = mismatch(chosen, f"manage.py ({SETTINGS_ENV})",
                           "run this command with python manage.py")
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(1)
