"""A pytest plugin the Django plan's ``pytest`` command loads (``-p``): pytest-django may choose
other settings than the phases booted with (``--ds``, ``DJANGO_SETTINGS_MODULE`` in pytest.ini),
and a process whose Django is set up cannot switch. Say so instead of testing the wrong settings.
"""

from __future__ import annotations

import os
import sys

import pytest

from zeuspy.plans import django_settings


@pytest.hookimpl(trylast=True)
def pytest_load_initial_conftests() -> None:
    """After pytest-django (``tryfirst``) has put its choice in the environment."""
    if "django.conf" not in sys.modules:
        return
    problem = django_settings.mismatch(os.environ.get(django_settings.SETTINGS_ENV),
                                       "pytest's configuration (--ds or pytest.ini)")
    if problem:
        raise pytest.UsageError(problem)
