"""The settings module a Django command asks for, against the one the phases set up: a process
whose Django is set up cannot switch, so a command that asks for other settings is refused."""

from __future__ import annotations

import sys

SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"


def from_arguments(argv: list[str]) -> str | None:
    """The value of ``--settings`` in a management command line, if any."""
    for index, arg in enumerate(argv):
        if arg.startswith("--settings="):
            return arg.partition("=")[2]
        if arg == "--settings" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def mismatch(wanted: str | None, source: str) -> str | None:
    """The message for a command that wants settings ``wanted`` (from ``source``) when the
    phases set up others; None when they agree or nothing was asked."""
    if not wanted or "django.conf" not in sys.modules:
        return None
    from django.conf import settings

    booted = getattr(settings, "SETTINGS_MODULE", None) if settings.configured else None
    if booted is None or wanted == booted:
        return None
    return (f"zeus: {source} asks for settings {wanted!r}, but the phases set up Django with "
            f"{booted!r}, and a running Django cannot switch. Start the master with them "
            f"(zeus stop; {SETTINGS_ENV}={wanted} zeus start), or drop the option.")
