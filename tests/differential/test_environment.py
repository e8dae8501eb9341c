"""Issue 10, item 8: the environment a command sees is python's.

1. The locale: with ``LANG``/``LC_ALL``/``LC_CTYPE`` set otherwise than in the master's shell, a
   command sees the ``LC_CTYPE`` locale python sets at start-up for that environment
   (``locale.getlocale()``, the locale's name and encoding, and the C locale's coercion to
   C.UTF-8 with its ``LC_CTYPE`` variable). Not compared: what the interpreter fixed when the
   phase started (UTF-8 mode, hence ``getpreferredencoding()``; the filesystem encoding; the
   standard streams' encoding), docs/plans.md, The client's world.
2. The boot-variable warning: a Django project's command does not warn about variables a shell
   sets its own way (``VIRTUAL_ENV``, ``PYENV_SHELL``, ``CONDA_PREFIX``) nor about one only the
   standard library read (``wsgiref`` copies the whole environment when Django's runserver is
   loaded), so ``manage.py check`` shows python's bytes; a variable the project's own settings
   read does warn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.differential.harness import run_both
from tests.e2e.test_django_plan import PHASES, DjangoProject, create_site
from tests.harness.master import Master
from tests.harness.processes import new_mark, project_leftovers
from tests.harness.project import PyProject

PROBE = """\
import json, locale, os
print(json.dumps({
    "getlocale": locale.getlocale(),
    "LC_CTYPE": locale.setlocale(locale.LC_CTYPE),
    "encoding": locale.getencoding() if hasattr(locale, "getencoding") else None,
    "LC_CTYPE variable": os.environ.get("LC_CTYPE"),
}))
"""
#: Creates a file and a folder in $OUT and prints the umask it runs under.
UMASK_PROBE = """\
import os, sys
open(os.path.join(sys.argv[1], "made"), "w").close()
os.mkdir(os.path.join(sys.argv[1], ".dir"))
mask = os.umask(0)
print(oct(mask), oct(os.stat(os.path.join(sys.argv[1], "made")).st_mode & 0o777),
      oct(os.stat(os.path.join(sys.argv[1], ".dir")).st_mode & 0o777))
"""
PROJECT_FILES = {"probe.py": PROBE, "umask_probe.py": UMASK_PROBE}
LOCALE_NAMES = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "PYTHONCOERCECLOCALE")
#: The client's locale variables (nothing else of the locale set): each either differs from the
#: master's or, for LC_ALL=C and LC_ALL=C.UTF-8, one of the pair does, whatever the master has.
CLIENT_LOCALES: list[dict[str, str] | object] = [
    {"LC_ALL": "C"},
    {"LC_ALL": "C.UTF-8"},
    {"LANG": "C"},
    {"LANG": "C.UTF-8", "LC_CTYPE": "POSIX"},
    {},
    {"LANG": "xx_YY.UTF-8"},
    # The zeus client runs with -I, which ignores PYTHONCOERCECLOCALE: its own start coerces
    # the C locale and it sends LC_CTYPE=C.UTF-8 along, which python, told not to, never sets.
    pytest.param({"LANG": "C", "PYTHONCOERCECLOCALE": "0"}, marks=pytest.mark.xfail(
        strict=True, reason="the client's interpreter coerces the locale in its environment")),
    {"LC_ALL": "POSIX", "LANG": "C.UTF-8"},
]


def client_env(project: PyProject, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in project.env().items()
           if k not in LOCALE_NAMES and not k.startswith("LC_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("locale_env", CLIENT_LOCALES, ids=lambda e: ",".join(
    f"{k}={v}" for k, v in e.items()) or "none")
def test_locale_is_the_clients_as_python_sets_it(zeus_project: PyProject,
                                                 locale_env: dict[str, str]) -> None:
    py, zeus = run_both(zeus_project, "$PY probe.py", env=client_env(zeus_project, locale_env))
    assert py.status == 0, py
    assert zeus == py


# -- the boot-variable warning in a Django project ------------------------------------------------

#: Read by the project's own settings at import: a boot variable in all but name.
SETTINGS_READ = '\nimport os\nMYSITE_MODE = os.environ.get("MYSITE_MODE", "dev")\n'
#: The master's shell: a virtualenv, pyenv and conda of its own, a variable nobody in the
#: project reads, and the settings' variable.
MASTER_SHELL = {"VIRTUAL_ENV": "/master/venv", "PYENV_SHELL": "bash",
                "CONDA_PREFIX": "/master/conda", "CONDA_DEFAULT_ENV": "master",
                "ZEUSPY_UNREAD": "master", "MYSITE_MODE": "dev"}
#: Another shell: the same project, another virtualenv, shell, conda and unread variable.
OTHER_SHELL = {"VIRTUAL_ENV": "/other/venv", "PYENV_SHELL": "zsh",
               "CONDA_PREFIX": "/other/conda", "CONDA_DEFAULT_ENV": "other",
               "ZEUSPY_UNREAD": "other"}
BOOT_TIMEOUT = 45.0


class ShellProject(DjangoProject):
    """The Django project, its master and clients started from :data:`MASTER_SHELL`."""

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**MASTER_SHELL, **extra})


@pytest.fixture(scope="module")
def django_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShellProject]:
    mark = new_mark()
    parent = tmp_path_factory.mktemp("django-env")
    root = create_site(parent, ShellProject(parent, mark).env())
    with open(root / "mysite" / "settings.py", "a") as settings:
        settings.write(SETTINGS_READ)
    project = ShellProject(root, mark)
    master = Master(project)
    try:
        master.wait_ready(*PHASES, timeout=BOOT_TIMEOUT)
        yield project
    finally:
        master.stop()
    project_leftovers(project)


def test_django_command_does_not_warn_about_another_shells_variables(
        django_site: ShellProject) -> None:
    py, zeus = run_both(django_site, "$PY manage.py check", env=django_site.env(**OTHER_SHELL))
    assert py.status == 0 and b"no issues" in py.stdout, py
    assert b"zeus: warning" not in zeus.stderr, zeus.stderr
    assert zeus == py


def test_a_variable_the_projects_settings_read_warns(django_site: ShellProject) -> None:
    py, zeus = run_both(django_site, "$PY manage.py check",
                        env=django_site.env(**OTHER_SHELL, MYSITE_MODE="prod"))
    assert py.status == zeus.status == 0, (py, zeus)
    assert zeus.stdout == py.stdout
    assert zeus.stderr.startswith(b"zeus: warning: MYSITE_MODE differ"), zeus.stderr
    # Only the variable the project read: not the shell's, not what wsgiref copied.
    first_line = zeus.stderr.split(b"\n", 1)[0]
    for name in (*OTHER_SHELL, "PATH"):
        assert name.encode() not in first_line, zeus.stderr
    assert zeus.stderr.endswith(py.stderr)


@pytest.mark.parametrize("mask", ["077", "027", "0"])
def test_files_get_the_modes_of_the_clients_umask(zeus_project: PyProject, mask: str) -> None:
    """The command runs under the umask of the shell that ran the client (not the master's):
    the files and folders it creates get the modes they would under python."""
    python, zeus = run_both(zeus_project, f'umask {mask}; $PY umask_probe.py "$OUT"')
    assert python.status == 0, python
    assert zeus == python

