"""A crash fails like the tool would (issue 10, item 6), differentially: each scenario runs as the
plain tool (``python``, the ``pytest`` script, ``python manage.py``) and through zeus against a
master whose phase for the command crashed, in the same test, and the two runs are compared
(tests/differential/harness.py: the bytes, ``$?`` and the signal it names, how the shell ended).

The zeus side runs the command in the nearest ready ancestor of the crashed phase and says so in
one line on stderr: that line is checked on its own (:func:`split_note`), and the rest of the run
must be the plain run's, byte for byte. The only other normalisation is explicit: pytest's
duration (``in 0.05s``).

The projects (one master each, per module):
- ``broken``: the built-in Python plan on a project whose own package ``mypkg`` does not import
  (a syntax error, an exception, a missing dependency): boot stays up without it, ``app`` crashes.
  Its root conftest.py imports ``mypkg``.
- ``conftest_broken``: the package imports but the root conftest.py raises, so
  ``test_environment`` crashes and ``zeus pytest`` runs in ``app``.
- ``django_broken``: ``django-admin startproject`` + ``startapp polls`` with a models.py that does
  not compile: the ``django`` phase crashes, boot holds Django.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.differential.harness import Record, run_one
from tests.harness.master import master_for
from tests.harness.project import VENV_BIN, ZEUS, PyProject, python_project

#: pytest's installed plugins are not needed: a faster boot, and the same on both sides.
QUICK_PYTEST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
PYTEST = shlex.quote(str(VENV_BIN / "pytest"))
PYTEST_ARGS = "-q -p no:cacheprovider"
#: The fallback's one line: ``zeus: phase P crashed (REASON); running C in phase Q``.
NOTE = re.compile(rb"zeus: phase (\S+) crashed \((.+)\); running (\S+) in phase (\S+)\n")

BREAKAGES = {
    "syntax": ("def broken(\n", b"SyntaxError: '(' was never closed"),
    "exception": ("raise RuntimeError('mypkg is broken')\n", b"RuntimeError: mypkg is broken"),
    "dependency": ("import not_installed_dependency_xyz\n",
                   b"ModuleNotFoundError: No module named 'not_installed_dependency_xyz'"),
}

BROKEN_FILES = {
    # pythonpath: the plain run imports mypkg from the root too (zeus has the root on sys.path
    # in every command, by design: docs/plans.md, What `zeus pytest` does like `pytest`).
    "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1"\n\n'
                      '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "conftest.py": "import mypkg\n",
    "tests/test_ok.py": "def test_ok():\n    assert True\n",
    "tests/test_uses.py": "import mypkg\n\n\ndef test_uses():\n    assert mypkg\n",
    "script.py": "print('before', flush=True)\nimport mypkg\nprint('after')\n",
}


# -- running both sides -----------------------------------------------------------------------


def both(project: PyProject, plain: str, zeus: str) -> tuple[Record, Record]:
    """The plain snippet and the zeus snippet, each through the harness (``$PY`` is the venv's
    python on the plain side and ``zeus run`` on the zeus side)."""
    return run_one(project, plain, "python"), run_one(project, zeus, "zeus")


def split_note(record: Record) -> tuple[bytes, Record]:
    """(the fallback's note, the record without it). The note must be stderr's first line and
    appear once."""
    match = NOTE.match(record.stderr)
    assert match, f"no fallback note at the start of stderr: {record.stderr[:300]!r}"
    rest = record.stderr[match.end():]
    assert not NOTE.search(rest), f"the note appears twice: {record.stderr!r}"
    return match.group(0), replace(record, stderr=rest)


def normalised(record: Record) -> Record:
    """pytest's run time, the only thing that may differ between two pytest runs."""
    def clean(data: bytes) -> bytes:
        return re.sub(rb" in \d+\.\d+s\b", b" in N.NNs", data)

    return replace(record, stdout=clean(record.stdout), stderr=clean(record.stderr))


def program_named(record: Record) -> Record:
    """``python -m`` errors start with the interpreter as it was started (a full path on the
    plain side): the same program, so its name is not compared."""
    return replace(record, stderr=re.sub(rb"(?m)^\S*python[0-9.]*(?=: )", b"python",
                                         record.stderr))


def assert_same_with_note(plain: Record, zeus: Record, crashed: str, command: str,
                          phase: str) -> bytes:
    """The zeus run is the plain run plus the note naming ``crashed``, ``command`` and
    ``phase``; returns the note's reason."""
    note, rest = split_note(zeus)
    match = NOTE.match(note)
    assert match is not None
    assert (match[1], match[3], match[4]) == (crashed.encode(), command.encode(),
                                              phase.encode()), note
    assert rest == plain, f"\nplain: {plain}\nzeus:  {rest}"
    return match[2]


# -- a broken package: app crashed, boot up ---------------------------------------------------


@pytest.fixture(scope="module", params=sorted(BREAKAGES))
def broken(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PyProject, str]]:
    """(the project, the breakage's key) with a master whose app crashed."""
    code, _ = BREAKAGES[request.param]
    folder = tmp_path_factory.mktemp(f"broken-{request.param}") / "proj"
    files = {**BROKEN_FILES, "mypkg/__init__.py": code}
    with python_project(folder, files, QUICK_PYTEST) as project, \
            master_for(project, "boot", "crashed:app"):
        yield project, request.param


def test_pytest_reports_the_broken_conftest_import_as_pytest_does(
        broken: tuple[PyProject, str]) -> None:
    project, key = broken
    plain, zeus = both(project, f"{PYTEST} {PYTEST_ARGS}", f"{ZEUS} pytest {PYTEST_ARGS}")
    assert plain.status == 4, plain
    assert b"ImportError while loading conftest" in plain.stdout + plain.stderr, plain
    reason = assert_same_with_note(normalised(plain), normalised(zeus), "app", "pytest", "boot")
    assert reason == BREAKAGES[key][1], reason
    assert b"zeuspy" not in zeus.stdout + split_note(zeus)[1].stderr


def test_pytest_reports_a_collection_error_as_pytest_does(broken: tuple[PyProject, str]) -> None:
    """Without the conftest, the test module that imports the package fails to collect."""
    project, _ = broken
    args = f"{PYTEST_ARGS} --noconftest tests/test_uses.py tests/test_ok.py"
    plain, zeus = both(project, f"{PYTEST} {args}", f"{ZEUS} pytest {args}")
    assert plain.status == 2 and b"ERROR collecting" in plain.stdout, plain
    assert_same_with_note(normalised(plain), normalised(zeus), "app", "pytest", "boot")


def test_run_code_that_does_not_import_the_package_prints(broken: tuple[PyProject, str]) -> None:
    project, _ = broken
    plain, zeus = both(project, "$PY -c 'print(1)'", "$PY -c 'print(1)'")
    assert (plain.stdout, plain.stderr, plain.status) == (b"1\n", b"", 0), plain
    assert_same_with_note(plain, zeus, "app", "run", "boot")


@pytest.mark.parametrize("args", ["script.py", "-c 'import mypkg'", "-m mypkg"])
def test_run_that_imports_the_package_fails_as_python_does(broken: tuple[PyProject, str],
                                                           args: str) -> None:
    project, key = broken
    plain, zeus = both(project, f"$PY {args}", f"$PY {args}")
    assert plain.status == 1, plain
    assert BREAKAGES[key][1] in plain.stderr, plain
    assert_same_with_note(program_named(plain), program_named(zeus), "app", "run", "boot")


def test_a_command_killed_by_a_signal_in_the_fallback(broken: tuple[PyProject, str]) -> None:
    """The exit status (and the signal ``kill -l`` names) of a command that kills itself."""
    project, _ = broken
    code = "$PY -c 'import os, signal; print(\"x\", flush=True); os.kill(os.getpid(), 15)'"
    plain, zeus = both(project, code, code)
    assert (plain.stdout, plain.status, plain.signal) == (b"x\n", 143, "TERM"), plain
    assert_same_with_note(plain, zeus, "app", "run", "boot")


PLAN_FILE = """\
from zeuspy.plans import PythonPlan


class Plan(PythonPlan):
    def pytest(self, argv):
        return super().pytest(["-p", "no:randomly", *argv])
"""


def test_a_plan_file_command_is_refused_with_the_crash(tmp_path: Path) -> None:
    """Not a fallback: the legacy answer (the crash's text, status 1, no note) for a command the
    plan file defines; against the same crash, a command it inherits from the built-in plan
    (``run``) falls back as in the built-in plan."""
    code, cause = BREAKAGES["syntax"]
    files = {**BROKEN_FILES, "mypkg/__init__.py": code, "zeus_plan.py": PLAN_FILE,
             "zeus.json": '{"plan": {"boot": {"app": {"run": [], '
                          '"test_environment": {"pytest": []}}}}}\n'}
    with python_project(tmp_path / "planfile", files, QUICK_PYTEST) as project, \
            master_for(project, "boot", "crashed:app"):
        refused = run_one(project, f"{ZEUS} pytest {PYTEST_ARGS}", "zeus")
        assert (refused.status, refused.stdout) == (1, b""), refused
        assert not NOTE.search(refused.stderr), refused
        assert b"phase app could not import 'mypkg'" in refused.stderr, refused
        assert cause in refused.stderr, refused
        plain, zeus = both(project, "$PY -c 'print(1)'", "$PY -c 'print(1)'")
        assert_same_with_note(plain, zeus, "app", "run", "boot")


# -- a broken root conftest: test_environment crashed, app up ---------------------------------

CONFTEST_BROKEN_FILES = {
    "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1"\n',
    "mypkg/__init__.py": "VALUE = 1\n",
    "conftest.py": "import mypkg\n\nraise RuntimeError('conftest is broken')\n",
    "tests/test_ok.py": "def test_ok():\n    assert True\n",
}


@pytest.fixture(scope="module")
def conftest_broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyProject]:
    folder = tmp_path_factory.mktemp("conftest-broken") / "proj"
    with python_project(folder, CONFTEST_BROKEN_FILES, QUICK_PYTEST) as project, \
            master_for(project, "boot", "app", "crashed:test_environment"):
        yield project


def test_pytest_with_a_broken_conftest_runs_in_app(conftest_broken: PyProject) -> None:
    plain, zeus = both(conftest_broken, f"{PYTEST} {PYTEST_ARGS}", f"{ZEUS} pytest {PYTEST_ARGS}")
    assert plain.status == 4, plain
    reason = assert_same_with_note(normalised(plain), normalised(zeus), "test_environment",
                                   "pytest", "app")
    assert reason == b"RuntimeError: conftest is broken", reason


def test_a_command_of_a_ready_phase_gets_no_note(conftest_broken: PyProject) -> None:
    plain, zeus = both(conftest_broken, "$PY -c 'import mypkg; print(mypkg.VALUE)'",
                       "$PY -c 'import mypkg; print(mypkg.VALUE)'")
    assert plain == zeus
    assert (zeus.stdout, zeus.stderr, zeus.status) == (b"1\n", b"", 0), zeus


# -- Django: a models.py that does not compile ------------------------------------------------

DJANGO_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def django_broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyProject]:
    parent = tmp_path_factory.mktemp("django-broken")
    admin = VENV_BIN / "django-admin"
    command = [str(admin)] if admin.exists() else [sys.executable, "-m", "django"]
    subprocess.run([*command, "startproject", "mysite"], cwd=parent, check=True,
                   capture_output=True, timeout=DJANGO_TIMEOUT)
    root = parent / "mysite"
    subprocess.run([sys.executable, "manage.py", "startapp", "polls"], cwd=root, check=True,
                   capture_output=True, timeout=DJANGO_TIMEOUT)
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace("INSTALLED_APPS = [\n",
                                                     "INSTALLED_APPS = [\n    'polls',\n", 1))
    files = {"polls/models.py": "from django.db import models\n\n\nclass Q(models.Model:\n"
                                "    pass\n"}
    # PyProject's environment has no DJANGO_SETTINGS_MODULE: manage.py's default chooses.
    with python_project(root, files, QUICK_PYTEST) as project, \
            master_for(project, "boot", "crashed:django"):
        yield project


@pytest.mark.parametrize("args", ["check", "migrate --plan", "shell -c 'print(1)'"])
def test_manage_shows_djangos_own_error(django_broken: PyProject, args: str) -> None:
    plain, zeus = both(django_broken, f"$PY manage.py {args}", f"{ZEUS} manage {args}")
    assert plain.status == 1 and b"SyntaxError" in plain.stderr, plain
    assert_same_with_note(plain, zeus, "django", "manage", "boot")


def test_django_run_code_that_needs_no_app_prints(django_broken: PyProject) -> None:
    plain, zeus = both(django_broken, "$PY -c 'print(1)'", "$PY -c 'print(1)'")
    assert (plain.stdout, plain.status) == (b"1\n", 0), plain
    assert_same_with_note(plain, zeus, "django", "run", "boot")


def test_the_note_is_one_line_naming_the_root_cause(broken: tuple[PyProject, str]) -> None:
    project, key = broken
    zeus = run_one(project, "$PY -c pass", "zeus")
    note, _ = split_note(zeus)
    assert note.count(b"\n") == 1, note
    assert NOTE.match(note) is not None
    assert f"({BREAKAGES[key][1].decode()})".encode() in note, note

