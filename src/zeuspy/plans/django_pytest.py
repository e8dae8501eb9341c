"""A pytest plugin the Django plan's ``pytest`` command loads (through ``PYTEST_PLUGINS``, as
zeus's own): pytest-django may choose other settings than the phases booted with (``--ds``,
``DJANGO_SETTINGS_MODULE`` in pytest.ini), and a process whose Django is set up cannot switch.
Say so instead of testing the wrong settings.

PYTEST_DONT_REWRITE: the Django plan imports this module before pytest does (pytest would warn
that it cannot rewrite it, a warning plain pytest does not give).
"""

from __future__ import annotations

import os
import sys

import pytest

from zeuspy.plans import django_settings

#: The name pytest-django's plugin is registered under (its entry point; ``-p no:django``).
PYTEST_DJANGO = "django"
#: The settings module the command had from the phases rather than from the client (None:
#: the client set it, or nobody did).
_from_phases: str | None = None


def choose_like_pytest_django() -> None:
    """Before pytest runs: a ``DJANGO_SETTINGS_MODULE`` the command has only because the phases
    set it (the client's shell has none) leaves the environment, so that pytest-django chooses
    as under plain pytest (``--ds``, then the environment, then pytest.ini) and says where it
    found its choice; :func:`pytest_load_initial_conftests` refuses a choice the phases did not
    set up, and puts the phases' value back when pytest-django chose nothing."""
    global _from_phases
    _from_phases = django_settings.leave_to_program()


@pytest.hookimpl(trylast=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """After pytest-django (``tryfirst``) has put its choice in the environment. Without
    pytest-django (``-p no:django``) nothing is put back: plain pytest has no choice there."""
    if "django.conf" not in sys.modules:
        return
    chosen = os.environ.get(django_settings.SETTINGS_ENV)
    if chosen is None:
        if _from_phases is not None and early_config.pluginmanager.has_plugin(PYTEST_DJANGO):
            os.environ[django_settings.SETTINGS_ENV] = _from_phases
        return
    problem = django_settings.mismatch(chosen, "pytest's configuration (--ds or pytest.ini)")
    if problem:
        raise pytest.UsageError(problem)
