"""The built-in Django plan, end to end, on a real project: ``django-admin startproject mysite``
and ``manage.py startapp polls`` (SQLite), with a model, a view behind a URL, a Django
``TestCase`` and a pytest-django test file. There is no zeus.json, so the master must pick the
built-in plan (boot → django → test_environment) from manage.py.

One master serves the whole module (booting Django and pytest takes seconds); it is started
without ``DJANGO_SETTINGS_MODULE`` in its environment, as from a plain shell, so that manage.py's
default chooses the settings. Tests run in file order: the migrations made by
``test_makemigrations_and_migrate`` are used by the later ones (the ``migrated`` fixture makes them
when a test runs alone), and ``test_editing_a_view_restarts_django_not_boot`` changes the view's
text. Every process started carries the module's mark; the module's teardown fails if one
outlives the master.
"""

from __future__ import annotations

import ast
import json
import re
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.harness.master import Master
from tests.harness.processes import (
    LEAK_GRACE,
    children_of,
    is_dead,
    new_mark,
    processes_in,
    project_leftovers,
)
from tests.harness.project import VENV_BIN, ZEUS, Project
from tests.harness.terminal import exit_code, finish, spawn
from tests.harness.waits import wait_for
from zeuspy.plans import DjangoPlan


def command_children(pid: int) -> list[int]:
    """The children of a command process other than its guard (shim/guard.py)."""
    found = []
    for child in children_of(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if f.read().startswith(b"zeus guard: "):
                    continue
        except OSError:
            continue
        found.append(child)
    return found

SETTINGS_ENV = "DJANGO_SETTINGS_MODULE"
PHASES = ("boot", "django", "test_environment")
#: Each command of the plan: (its phase, its aliases).
COMMANDS = {
    "manage": ("django", ()),
    "runserver": ("django", ()),
    "shell": ("django", ("console",)),
    "run": ("django", ("python",)),
    "test": ("test_environment", ()),
    "pytest": ("test_environment", ()),
}
GREETING = "Hello from polls v1"
THIRD_GREETING = "Hello from polls v3"
#: A save seen by Django's reloader (it polls every second), the phases rebooted, served again.
RELOAD_TIMEOUT = 30.0
RELOADER_FIRST_LOOK = 1.5
NEW_GREETING = "Hello from polls v2"
#: Bounds: Django's boot and pytest's plugins take ~3 s; one test run or command ~1-3 s.
MASTER_BOOT_TIMEOUT = 45.0
RESTART_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0
SERVER_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PYTEST_ARGS = ("-q", "-p", "no:cacheprovider")

PROJECT_FILES = {
    "mysite/other_settings.py": "from mysite.settings import *  # noqa: F403\n",
    "polls/management/__init__.py": "",
    "polls/management/commands/__init__.py": "",
    # The command line and __main__ a management command sees.
    "polls/management/commands/argv.py": """
        import json
        import sys

        from django.core.management.base import BaseCommand


        class Command(BaseCommand):
            def handle(self, *args, **options):
                main = sys.modules["__main__"]
                print(json.dumps([sys.argv, sys.orig_argv, main.__file__]))
        """,
    "mysite/urls.py": """
        from django.urls import include, path

        urlpatterns = [path("polls/", include("polls.urls"))]
        """,
    "polls/models.py": """
        from django.db import models


        class Question(models.Model):
            text = models.CharField(max_length=200)
        """,
    "polls/views.py": f"""
        from django.http import HttpResponse

        GREETING = {GREETING!r}


        def index(request):
            return HttpResponse(GREETING)
        """,
    "polls/urls.py": """
        from django.urls import path

        from polls import views

        urlpatterns = [path("", views.index, name="index")]
        """,
    "polls/tests.py": """
        from django.test import TestCase

        from polls.models import Question


        class QuestionTests(TestCase):
            def test_create(self):
                Question.objects.create(text="q?")
                self.assertEqual(Question.objects.count(), 1)

            def test_view(self):
                response = self.client.get("/polls/")
                self.assertEqual(response.status_code, 200)
                self.assertContains(response, "Hello from polls")
        """,
    # Found by `manage.py test -p 'failing_*.py'` only (not by the default test*.py, nor pytest).
    "polls/failing_checks.py": """
        from django.test import TestCase


        class FailingTests(TestCase):
            def test_fails(self):
                self.assertEqual(1, 2)
        """,
    # No __init__.py: Django's runner does not look here; pytest (testpaths) does.
    "pytests/test_polls_pytest.py": """
        from polls.models import Question


        def test_orm(db):
            Question.objects.create(text="p?")
            assert Question.objects.count() == 1


        def test_view(client):
            response = client.get("/polls/")
            assert response.status_code == 200
            assert b"Hello from polls" in response.content


        def test_plain():
            assert 1 + 1 == 2
        """,
    "pytest.ini": """
        [pytest]
        DJANGO_SETTINGS_MODULE = mysite.settings
        testpaths = pytests
        pythonpath = .
        """,
}


class DjangoProject(Project):
    """A Django project folder; its environment has no DJANGO_SETTINGS_MODULE unless given."""

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env()
        env.pop(SETTINGS_ENV, None)
        env.update(extra)
        return env

    def plain(self, *args: str, timeout: float = COMMAND_TIMEOUT
              ) -> subprocess.CompletedProcess[bytes]:
        """``python ARGS`` in the project, without zeus: what the zeus command must match."""
        return subprocess.run([sys.executable, *args], cwd=self.root, capture_output=True,
                              timeout=timeout, env=self.env())


def create_site(parent: Path, env: dict[str, str]) -> Path:
    """``django-admin startproject mysite`` and ``manage.py startapp polls``, then our files."""
    admin = VENV_BIN / "django-admin"
    command = [str(admin)] if admin.exists() else [sys.executable, "-m", "django"]
    subprocess.run([*command, "startproject", "mysite"], cwd=parent, env=env, check=True,
                   capture_output=True, timeout=COMMAND_TIMEOUT)
    root = parent / "mysite"
    subprocess.run([sys.executable, "manage.py", "startapp", "polls"], cwd=root, env=env,
                   check=True, capture_output=True, timeout=COMMAND_TIMEOUT)
    settings = root / "mysite" / "settings.py"
    text = settings.read_text()
    assert "INSTALLED_APPS = [\n" in text
    settings.write_text(text.replace("INSTALLED_APPS = [\n", "INSTALLED_APPS = [\n    'polls',\n",
                                     1))
    for rel, body in PROJECT_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip())
    assert not (root / "zeus.json").exists()
    return root


def new_site(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[DjangoProject]:
    """A generated Django project in a new temp folder; checks for leftovers once done."""
    mark = new_mark()
    parent = tmp_path_factory.mktemp(name)
    project = DjangoProject(create_site(parent, DjangoProject(parent, mark).env()), mark)
    yield project
    project_leftovers(project)


def site_master(site: DjangoProject, then: Callable[[DjangoProject], object] | None = None,
                ) -> Iterator[Master]:
    """A master for ``site`` with every phase ready (and ``then(site)`` done), stopped after."""
    m = Master(site)
    try:
        m.wait_ready(*PHASES, timeout=MASTER_BOOT_TIMEOUT)
        if then is not None:
            then(site)
        yield m
    finally:
        m.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoProject]:
    yield from new_site(tmp_path_factory, "django")


@pytest.fixture(scope="module")
def master(site: DjangoProject) -> Iterator[Master]:
    yield from site_master(site)


# -- helpers --------------------------------------------------------------------------------------


def status(project: Project) -> tuple[int, dict[str, Any]]:
    result = project.run("status", "--json")
    return result.returncode, json.loads(result.stdout)


def phase_pids(project: Project) -> dict[str, int | None]:
    return {phase["name"]: phase["pid"] for phase in status(project)[1]["phases"]}


def all_ready(project: Project) -> bool:
    code, answer = status(project)
    return code == 0 and [p["state"] for p in answer["phases"]] == ["ready"] * len(PHASES)


@pytest.fixture
def ready(master: Master, site: DjangoProject) -> Master:
    """The module's master with every phase ready (a previous test may have restarted some)."""
    assert master.proc.poll() is None, master.output
    wait_for(lambda: all_ready(site), RESTART_TIMEOUT, interval=0.1,
             what=f"every phase ready\n{master.output[-2000:]}")
    return master


def migrate(project: DjangoProject) -> None:
    for args in (("makemigrations", "polls"), ("migrate",)):
        result = project.run("manage", *args, timeout=COMMAND_TIMEOUT)
        assert result.returncode == 0, result


@pytest.fixture
def migrated(ready: Master, site: DjangoProject) -> DjangoProject:
    """The project with its migrations made and applied (test_makemigrations_and_migrate does it
    first in file order; this is for a test run alone)."""
    if not (site.root / "polls" / "migrations" / "0001_initial.py").exists():
        migrate(site)
    return site


def text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace")


def zeus_run(project: DjangoProject, code: str) -> subprocess.CompletedProcess[bytes]:
    """``zeus run -c CODE``: Python in a fork of the django phase (django.setup() done)."""
    return project.run("run", "-c", code, timeout=COMMAND_TIMEOUT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str) -> str | None:
    """The body at ``url``, or None while nothing answers."""
    try:
        with _NO_PROXY.open(url, timeout=2) as response:
            return str(response.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def marked(project: Project, needle: str) -> list[int]:
    """Live processes of the module whose command line (title) contains ``needle``."""
    return [pid for pid, line in processes_in(mark=project.mark) if needle in line]


@contextmanager
def server(project: DjangoProject, out: Path, *args: str) -> Iterator[tuple[
        subprocess.Popen[bytes], int]]:
    """``zeus ARGS 127.0.0.1:PORT`` as a background client with its output in ``out``; yields
    (client, port) once the polls URL answers. Stopped with SIGINT (then killed) at the end."""
    port = free_port()
    with open(out, "wb") as sink:
        client = subprocess.Popen([ZEUS, *args, f"127.0.0.1:{port}"], cwd=project.root,
                                  stdin=subprocess.DEVNULL, stdout=sink,
                                  stderr=subprocess.STDOUT, env=project.env())
    try:
        url = f"http://127.0.0.1:{port}/polls/"
        wait_for(lambda: fetch(url) is not None or client.poll() is not None, SERVER_TIMEOUT,
                 interval=0.05, what=f"{url} to answer")
        assert client.poll() is None, (
            f"the server exited with {client.returncode}:\n{out.read_text(errors='replace')}")
        yield client, port
    finally:
        if client.poll() is None:
            client.send_signal(signal.SIGINT)
            try:
                client.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait(STOP_TIMEOUT)


def interrupt(client: subprocess.Popen[bytes]) -> int:
    """^C to a server's client, as a user would stop it; its exit status (bounded wait)."""
    client.send_signal(signal.SIGINT)
    try:
        return client.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the client did not exit within {STOP_TIMEOUT} s of SIGINT")


# -- 1. the tree ------------------------------------------------------------------------------


def test_builtin_tree_boots_and_lists_the_commands(ready: Master, site: DjangoProject) -> None:
    assert not (site.root / "zeus.json").exists()
    assert "using the built-in django plan" in ready.output, ready.output
    code, answer = status(site)
    assert code == 0, answer
    phases = [(p["name"], p["parent"], p["state"]) for p in answer["phases"]]
    assert phases == [("boot", None, "ready"), ("django", "boot", "ready"),
                      ("test_environment", "django", "ready")]
    pids = [p["pid"] for p in answer["phases"]]
    assert all(isinstance(pid, int) for pid in pids) and len(set(pids)) == 3, pids
    # The leak check sees the phases (their title did not wipe the mark from their environment).
    live = {pid for pid, _ in processes_in(mark=site.mark)}
    assert set(pids) <= live, (pids, processes_in(mark=site.mark))
    assert {(c["name"], c["phase"], tuple(c["aliases"])) for c in answer["commands"]} == {
        (name, phase, aliases) for name, (phase, aliases) in COMMANDS.items()}

    result = site.run("commands")
    assert result.returncode == 0, result
    listed = {}
    for line in result.stdout.decode().splitlines():
        found = re.match(r"^(\S+)\s+in (\S+)(?:\s+\(alias(?:es)?: ([^)]*)\))?$", line.strip())
        assert found, line
        listed[found.group(1)] = (found.group(2), found.group(3) or "")
    assert set(listed) == set(COMMANDS), result.stdout
    for name, (phase, aliases) in COMMANDS.items():
        assert listed[name][0] == phase
        for alias in aliases:
            assert alias in listed[name][1]


# -- 2. manage, test, pytest ----------------------------------------------------------------------


def test_manage_check_matches_manage_py(ready: Master, site: DjangoProject) -> None:
    result = site.run("manage", "check", timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result
    assert b"System check identified no issues" in result.stdout, result
    plain = site.plain("manage.py", "check")
    assert plain.returncode == 0, plain
    assert result.stdout == plain.stdout


def test_a_commands_command_line_is_manage_pys(ready: Master, site: DjangoProject) -> None:
    """``sys.argv``, ``sys.orig_argv`` and ``__main__`` as under ``python manage.py``, not the
    shim's: a command that starts its program again from them starts manage.py."""
    result = site.run("manage", "argv", timeout=COMMAND_TIMEOUT)
    plain = site.plain("manage.py", "argv")
    assert (result.returncode, plain.returncode) == (0, 0), (result, plain)
    assert result.stdout == plain.stdout
    assert b'[["manage.py", "argv"]' in result.stdout, result.stdout


def test_djangos_time_zone_wins_over_the_shells(ready: Master, site: DjangoProject) -> None:
    """Django's settings put TIME_ZONE (UTC here) into TZ at start-up, over a TZ of the user's
    shell: a command that took the client's environment gets the same."""
    code = "import os, time; print(os.environ['TZ'], time.tzname[0])"
    env = site.env(TZ="Asia/Tokyo")
    result = site.run("manage", "shell", "-c", code, env=env, timeout=COMMAND_TIMEOUT)
    plain = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=site.root,
                           env=env, capture_output=True, timeout=COMMAND_TIMEOUT)
    assert (result.returncode, plain.returncode) == (0, 0), (result, plain)
    assert result.stdout == plain.stdout
    assert plain.stdout.endswith(b"\nUTC UTC\n"), plain.stdout


def test_makemigrations_and_migrate(ready: Master, site: DjangoProject) -> None:
    db = site.root / "db.sqlite3"
    migration = site.root / "polls" / "migrations" / "0001_initial.py"
    assert not db.exists() and not migration.exists(), "another test migrated first"
    result = site.run("manage", "makemigrations", "polls", timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result
    assert b"Create model Question" in result.stdout, result
    assert migration.is_file()

    result = site.run("manage", "migrate", timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result
    out = result.stdout.decode()
    assert "Applying polls.0001_initial... OK" in out, out
    assert "Applying auth.0001_initial... OK" in out, out
    assert db.is_file() and db.stat().st_size > 0

    # The same state as manage.py sees it, told the same way.
    for args in (("showmigrations",), ("migrate",), ("makemigrations", "--check", "--dry-run")):
        zeus = site.run("manage", *args, timeout=COMMAND_TIMEOUT)
        plain = site.plain("manage.py", *args)
        assert (zeus.returncode, zeus.stdout) == (plain.returncode, plain.stdout), (zeus, plain)
    assert b"No migrations to apply." in zeus.stdout or b"No changes detected" in zeus.stdout


RAN = re.compile(rb"^Ran (\d+) tests? in ", re.MULTILINE)


def test_test_runs_djangos_runner_like_manage_py(migrated: DjangoProject) -> None:
    zeus = migrated.run("test", timeout=COMMAND_TIMEOUT)
    plain = migrated.plain("manage.py", "test")
    assert zeus.returncode == plain.returncode == 0, (zeus, plain)
    assert RAN.findall(zeus.stderr) == RAN.findall(plain.stderr) == [b"2"], (zeus, plain)
    assert b"\nOK\n" in zeus.stderr, zeus
    assert b"Found 2 test(s)." in zeus.stdout, zeus

    zeus = migrated.run("test", "-p", "failing_*.py", timeout=COMMAND_TIMEOUT)
    plain = migrated.plain("manage.py", "test", "-p", "failing_*.py")
    assert plain.returncode != 0, plain
    assert zeus.returncode == plain.returncode, (zeus, plain)
    assert RAN.findall(zeus.stderr) == [b"1"], zeus
    assert b"FAILED (failures=1)" in zeus.stderr, zeus
    assert b"AssertionError: 1 != 2" in zeus.stderr, zeus


SUMMARY = re.compile(rb"^(\d+ passed)\b.* in [\d.]+s", re.MULTILINE)


def summary(stdout: bytes) -> bytes:
    """pytest's closing line (counts of outcomes and warnings) without its duration."""
    lines = stdout.rstrip().splitlines()
    return re.sub(rb" in [\d.]+s\b.*", b"", lines[-1]) if lines else b""


def test_pytest_with_pytest_django_like_plain_pytest(migrated: DjangoProject) -> None:
    zeus = migrated.run("pytest", *PYTEST_ARGS, timeout=COMMAND_TIMEOUT)
    plain = migrated.plain("-m", "pytest", *PYTEST_ARGS)
    assert plain.returncode == 0, plain
    assert zeus.returncode == plain.returncode, (zeus, plain)
    expected = SUMMARY.search(plain.stdout)
    assert expected and expected.group(1) == b"3 passed", plain.stdout
    # No warning of zeus's own among pytest's (one that it cannot rewrite a plugin of zeus's).
    assert summary(zeus.stdout) == summary(plain.stdout), (zeus.stdout, plain.stdout)


def test_pytest_sees_the_command_line_plain_pytest_sees(migrated: DjangoProject) -> None:
    """The plugin zeus adds in a Django project reaches pytest without a ``-p`` in the command
    line: a test sees the arguments it sees under plain pytest."""
    probe = migrated.root / "polls" / "test_zeus_args.py"
    probe.write_text("import sys\n\n\ndef test_args(request):\n"
                     "    print('ARGS', request.config.invocation_params.args, sys.argv[1:])\n")
    try:
        args = ("-q", "-s", "-p", "no:cacheprovider", "polls/test_zeus_args.py")
        zeus = migrated.run("pytest", *args, timeout=COMMAND_TIMEOUT)
        plain = migrated.plain("-m", "pytest", *args)
    finally:
        probe.unlink()
    line = re.compile(rb"^ARGS .*$", re.M)
    assert plain.returncode == zeus.returncode == 0, (zeus, plain)
    assert line.findall(zeus.stdout) == line.findall(plain.stdout), (zeus.stdout, plain.stdout)


# -- 3. runserver ---------------------------------------------------------------------------------


def test_runserver_serves_the_view_and_stops_on_sigint(migrated: DjangoProject,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "runserver.out"
    with server(migrated, out, "runserver") as (client, port):
        assert fetch(f"http://127.0.0.1:{port}/polls/") == GREETING
        commands = wait_for(lambda: marked(migrated, "zeus command: runserver"), 5,
                            what="the runserver command process")
        assert len(commands) == 1, processes_in(mark=migrated.mark)
        # Django's reloader watches from inside the command: no child process serves.
        assert command_children(commands[0]) == [], processes_in(mark=migrated.mark)
        code = interrupt(client)
    assert code == 0, out.read_text(errors="replace")
    wait_for(lambda: not port_open(port), 5, what=f"port {port} closed")
    wait_for(lambda: all(is_dead(pid) for pid in commands), 5, what="the command to exit")
    wait_for(lambda: not marked(migrated, "runserver"), LEAK_GRACE,
             what=f"no runserver process left: {processes_in(mark=migrated.mark)}")
    output = out.read_text(errors="replace")
    # "Starting WSGI development server" since Django 6.0.
    assert re.search(rf"Starting (WSGI )?development server at http://127\.0\.0\.1:{port}/",
                     output), output
    assert "Watching for file changes with StatReloader" in output, output
    assert '"GET /polls/ HTTP/1.1" 200' in output, output


def test_manage_runserver_serves_too(migrated: DjangoProject, tmp_path: Path) -> None:
    out = tmp_path / "manage-runserver.out"
    with server(migrated, out, "manage", "runserver") as (_, port):
        body = fetch(f"http://127.0.0.1:{port}/polls/")
        assert body is not None and body.startswith("Hello from polls"), body
    wait_for(lambda: not port_open(port), 5, what=f"port {port} closed")


# -- 4. shell -------------------------------------------------------------------------------------


def test_shell_on_a_terminal_uses_the_orm(migrated: DjangoProject) -> None:
    expected = zeus_run(migrated, "from polls.models import Question; "
                                  "print(Question.objects.count())")
    assert expected.returncode == 0, expected
    child = spawn(migrated, "shell", timeout=20)
    try:
        child.expect(rb"\(InteractiveConsole\)")
        child.expect(rb">>> ")
        child.sendline(b"from polls.models import Question; "
                       b"print('COUNT=%d' % Question.objects.count())")
        child.expect(rb"COUNT=(\d+)\r\n")
        assert child.match.group(1) == expected.stdout.strip()
        child.expect(rb">>> ")
        child.sendeof()
        finish(child, timeout=STOP_TIMEOUT)
    finally:
        if child.isalive():
            child.close(force=True)
    assert exit_code(child) == 0


def test_shell_reads_a_snippet_on_stdin_from_a_terminal(migrated: DjangoProject) -> None:
    """`manage.py shell < snippet.py` typed in a terminal runs the snippet (stdin is a file, not a
    terminal) instead of starting a console that waits for input: the same output as manage.py."""
    (migrated.root / "snippet.py").write_text(
        "import sys\nfrom polls.models import Question\n"
        "print('COUNT', Question.objects.count(), sys.stdin.isatty())\n")
    outputs = []
    for command in (f"{ZEUS} manage shell < snippet.py",
                    f"{sys.executable} manage.py shell < snippet.py"):
        child = pexpect.spawn("/bin/sh", ["-c", command], cwd=str(migrated.root),
                              env=migrated.env(), timeout=COMMAND_TIMEOUT)
        try:
            outputs.append(finish(child, timeout=COMMAND_TIMEOUT))
        finally:
            if child.isalive():
                child.close(force=True)
        assert exit_code(child) == 0, outputs[-1]
    assert b"COUNT" in outputs[1] and b"False" in outputs[1], outputs[1]
    assert outputs[0] == outputs[1]


# -- 5. database connections ----------------------------------------------------------------------


def concurrently(project: DjangoProject, commands: list[list[str]]) -> None:
    """Run the zeus commands at once; each must succeed without a database error."""
    clients = [subprocess.Popen([ZEUS, *args], cwd=project.root, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=project.env()) for args in commands]
    results = []
    try:
        for client in clients:
            out, err = client.communicate(timeout=COMMAND_TIMEOUT)
            results.append((client.returncode, out, err))
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait(STOP_TIMEOUT)
    for index, (code, out, err) in enumerate(results):
        assert code == 0, (index, out, err)
        assert f"made {index}".encode() in out, (index, out, err)
        assert b"locked" not in err and b"Error" not in err, (index, err)


def count(project: DjangoProject, prefix: str) -> int:
    result = zeus_run(project, "from polls.models import Question; "
                               f"print(Question.objects.filter(text__startswith={prefix!r})"
                               ".count())")
    assert result.returncode == 0, result
    return int(result.stdout)


def test_concurrent_commands_each_use_their_own_connection(migrated: DjangoProject) -> None:
    create = "from polls.models import Question; Question.objects.create(text='{}-{}'); " \
             "print('made {}')"
    concurrently(migrated, [["manage", "shell", "-c", create.format("viashell", i, i)]
                            for i in range(5)])
    assert count(migrated, "viashell-") == 5
    concurrently(migrated, [["run", "-c", create.format("viarun", i, i)] for i in range(5)])
    assert count(migrated, "viarun-") == 5
    # The rows are in the file manage.py uses.
    plain = migrated.plain("manage.py", "shell", "-c",
                           "from polls.models import Question; "
                           "print(Question.objects.filter(text__startswith='via').count())")
    assert plain.returncode == 0, plain
    assert plain.stdout.strip().splitlines()[-1] == b"10", plain


# -- 6. reload ------------------------------------------------------------------------------------


#: A restart the master logs, with the file that caused it and the phase it restarts.
RESTART_LINE = re.compile(r" INFO (\S+) changed: restarting (\w+)$", re.MULTILINE)


def restart_and_wait(project: DjangoProject, master: Master, edit: Callable[[], object]
                     ) -> tuple[dict[str, int | None], dict[str, int | None], str]:
    """Apply ``edit``; wait until django and test_environment run new processes and every phase
    is ready. (pids before, pids after, the master log written meanwhile)."""
    before = phase_pids(project)
    start = len(project.log)
    edit()

    def restarted() -> dict[str, int | None] | None:
        code, answer = status(project)
        pids = {p["name"]: p["pid"] for p in answer["phases"]}
        if code != 0 or any(pids[name] in (None, before[name]) for name in PHASES[1:]):
            return None
        return pids

    after = wait_for(restarted, RESTART_TIMEOUT, interval=0.1,
                     what=f"django and test_environment restarted\n{master.output[-2000:]}")
    time.sleep(0.3)  # a restart of boot for the same change would have begun by now
    return before, after, project.log[start:]


def test_editing_a_view_restarts_django_not_boot(migrated: DjangoProject, ready: Master,
                                                 tmp_path: Path) -> None:
    views = migrated.root / "polls" / "views.py"
    source = views.read_text().replace(GREETING, NEW_GREETING)
    for attempt in range(3):
        before, after, log = restart_and_wait(
            migrated, ready, lambda n=attempt: views.write_text(source + "#" * n + "\n"))
        causes = RESTART_LINE.findall(log)
        # The master watches zeuspy's own modules too (boot imported them): an edit of zeuspy's
        # source while this runs (a developer at work) restarts boot; try again then.
        if not any(path.startswith("/") and phase == "boot" for path, phase in causes):
            break
    assert ("polls/views.py", "django") in causes, log
    assert all(phase != "boot" for _, phase in causes), log
    assert after["boot"] == before["boot"], (before, after, log)
    assert after["boot"] == phase_pids(migrated)["boot"], log
    assert "phase boot registered: pid" not in log, log

    result = zeus_run(migrated, "from polls.views import index; "
                                "print(index(None).content.decode())")
    assert result.returncode == 0, result
    assert result.stdout == f"{NEW_GREETING}\n".encode()
    with server(migrated, tmp_path / "runserver.out", "runserver") as (_, port):
        assert fetch(f"http://127.0.0.1:{port}/polls/") == NEW_GREETING
    wait_for(lambda: not marked(migrated, "runserver"), LEAK_GRACE,
             what="no runserver process left")


def test_running_server_serves_the_new_code_after_a_save(migrated: DjangoProject,
                                                         tmp_path: Path) -> None:
    # The user's one `zeus runserver` keeps running; the server behind it starts again from
    # the rebooted phases (Django's reloader sees the save; the command runs itself again).
    views = migrated.root / "polls" / "views.py"
    out = tmp_path / "reloading.out"
    with server(migrated, out, "runserver") as (client, port):
        assert fetch(f"http://127.0.0.1:{port}/polls/") == NEW_GREETING
        # Django's reloader records each file's first modification time once a second: a save
        # before its first look would pass for the original, with manage.py as with zeus.
        time.sleep(RELOADER_FIRST_LOOK)
        views.write_text(views.read_text().replace(NEW_GREETING, THIRD_GREETING))
        wait_for(lambda: fetch(f"http://127.0.0.1:{port}/polls/") == THIRD_GREETING,
                 RELOAD_TIMEOUT, what="the running server to serve the saved view")
        assert client.poll() is None, out.read_text(errors="replace")
        code = interrupt(client)
    assert code == 0, out.read_text(errors="replace")
    assert "polls/views.py changed, reloading." in out.read_text(errors="replace")
    wait_for(lambda: not port_open(port), 5, what=f"port {port} closed")
    wait_for(lambda: not marked(migrated, "runserver"), LEAK_GRACE,
             what=f"no runserver process left: {processes_in(mark=migrated.mark)}")


# -- 7. DJANGO_SETTINGS_MODULE --------------------------------------------------------------------

SHOW_SETTINGS = ("import os; from django.conf import settings; "
                 "print('RAN', os.environ.get('DJANGO_SETTINGS_MODULE'), settings.SETTINGS_MODULE)")


def test_other_settings_module_is_refused(ready: Master, site: DjangoProject) -> None:
    refused = site.run("run", "-c", SHOW_SETTINGS,
                       env=site.env(DJANGO_SETTINGS_MODULE="mysite.other_settings"))
    assert refused.returncode != 0, refused
    assert b"RAN" not in refused.stdout, refused
    assert b"DJANGO_SETTINGS_MODULE" in refused.stderr, refused
    assert b"mysite.other_settings" in refused.stderr, refused

    runs = site.run("run", "-c", SHOW_SETTINGS)
    assert runs.returncode == 0, runs
    assert runs.stdout == b"RAN mysite.settings mysite.settings\n", runs


def test_same_settings_module_as_the_boot_runs(ready: Master, site: DjangoProject) -> None:
    result = site.run("run", "-c", SHOW_SETTINGS,
                      env=site.env(DJANGO_SETTINGS_MODULE="mysite.settings"))
    assert result.returncode == 0, result
    assert result.stdout == b"RAN mysite.settings mysite.settings\n", result


def test_other_settings_by_option_are_refused(migrated: DjangoProject) -> None:
    # --settings (manage.py) and --ds (pytest-django) cannot switch a running Django either.
    for args in (("manage", "check", "--settings", "mysite.other_settings"),
                 ("manage", "check", "--settings=mysite.other_settings"),
                 ("test", "--settings=mysite.other_settings")):
        refused = migrated.run(*args, timeout=COMMAND_TIMEOUT)
        assert refused.returncode == 1, refused
        assert b"asks for settings 'mysite.other_settings'" in refused.stderr, refused
        assert b"System check" not in refused.stdout + refused.stderr, refused
    # manage.py run as a script is refused alike.
    for args in (("run", "manage.py", "check", "--settings=mysite.other_settings"),
                 ("python", "manage.py", "check", "--settings", "mysite.other_settings")):
        refused = migrated.run(*args, timeout=COMMAND_TIMEOUT)
        assert refused.returncode == 1, refused
        assert b"asks for settings 'mysite.other_settings'" in refused.stderr, refused
    same = migrated.run("run", "manage.py", "check", "--settings=mysite.settings",
                        timeout=COMMAND_TIMEOUT)
    assert same.returncode == 0, same
    same = migrated.run("manage", "check", "--settings=mysite.settings", timeout=COMMAND_TIMEOUT)
    assert same.returncode == 0, same
    refused = migrated.run("pytest", "--ds", "mysite.other_settings", *PYTEST_ARGS,
                           timeout=COMMAND_TIMEOUT)
    assert refused.returncode == 4, refused
    assert b"asks for settings 'mysite.other_settings'" in refused.stdout + refused.stderr, refused


def test_pytest_django_chooses_the_settings_as_under_plain_pytest(migrated: DjangoProject) -> None:
    """The command's DJANGO_SETTINGS_MODULE came from the phases, not from the user's shell:
    pytest-django chooses as under plain pytest (here from pytest.ini, and says so), and
    other settings named there are refused, not silently replaced by the phases'."""
    result = migrated.run("pytest", *PYTEST_ARGS, "-v", timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result
    assert b"settings: mysite.settings (from ini)" in result.stdout, result.stdout
    refused = migrated.run("pytest", "-o", "DJANGO_SETTINGS_MODULE=mysite.other_settings",
                           *PYTEST_ARGS, timeout=COMMAND_TIMEOUT)
    assert refused.returncode == 4, refused
    assert b"asks for settings 'mysite.other_settings'" in refused.stdout + refused.stderr, refused


# -- 8. zeus init ---------------------------------------------------------------------------------


def test_init_writes_the_django_plan(site: DjangoProject, tmp_path: Path) -> None:
    copy = tmp_path / "mysite"
    shutil.copytree(site.root, copy, ignore=shutil.ignore_patterns(
        ".zeus*", "db.sqlite3", "__pycache__", "*.out", "zeus.json", "zeus_plan.py"))
    project = DjangoProject(copy, site.mark)
    result = project.run("init")
    assert result.returncode == 0, result
    assert result.stdout.decode().splitlines()[0] == f"zeus: a Django project in {copy}", result

    config = json.loads((copy / "zeus.json").read_text())
    assert config["plan"] == DjangoPlan.TREE, config

    source = (copy / "zeus_plan.py").read_text()
    classes = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]
    assert [ast.unparse(base) for node in classes for base in node.bases] == ["DjangoPlan"], source
    namespace = runpy.run_path(str(copy / "zeus_plan.py"))
    plan = namespace[classes[0].name]
    assert issubclass(plan, DjangoPlan) and plan is not DjangoPlan
    assert not (copy / ".zeus").exists()  # no master ran there


# -- 9. manage.py's own code ----------------------------------------------------------------------

#: A manage.py with code of its own, as projects write them: it says something, sets a variable
#: a command reads, and chooses test settings for a command line that holds "test" (named first,
#: so that the first match in its text is not the settings of most commands).
CUSTOM_MANAGE_PY = """
    #!/usr/bin/env python
    import os
    import sys


    def main():
        print("manage.py: loading .env")
        os.environ.setdefault("MANAGE_PY_MARK", "set by manage.py")
        if "test" in sys.argv:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.test_settings")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)


    if __name__ == "__main__":
        main()
    """
CUSTOM_FILES = {
    "manage.py": CUSTOM_MANAGE_PY,
    "mysite/test_settings.py": "from mysite.settings import *  # noqa: F403\n",
    # What manage.py set, and the settings the command runs with.
    "polls/management/commands/mark.py": """
        import os

        from django.conf import settings
        from django.core.management.base import BaseCommand


        class Command(BaseCommand):
            def add_arguments(self, parser):
                parser.add_argument("words", nargs="*")

            def handle(self, *args, **options):
                print("mark:", os.environ.get("MANAGE_PY_MARK"))
                print("settings:", settings.SETTINGS_MODULE,
                      os.environ.get("DJANGO_SETTINGS_MODULE"))
        """,
    # Passes where nothing put the variable in the environment (pytest-django puts pytest.ini's).
    "pytests/test_environment.py": """
        import os


        def test_no_settings_variable():
            assert os.environ.get("DJANGO_SETTINGS_MODULE") is None
        """,
    "polls/management/commands/explode.py": """
        from django.core.management.base import BaseCommand


        class Command(BaseCommand):
            def handle(self, *args, **options):
                raise RuntimeError("boom from a management command")
        """,
}


@pytest.fixture(scope="module")
def custom_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoProject]:
    """A second project, whose manage.py has code of its own (CUSTOM_FILES)."""
    for project in new_site(tmp_path_factory, "django-custom"):
        for rel, body in CUSTOM_FILES.items():
            (project.root / rel).write_text(textwrap.dedent(body).lstrip())
        yield project


@pytest.fixture(scope="module")
def custom_master(custom_site: DjangoProject) -> Iterator[Master]:
    yield from site_master(custom_site)


def same_as_plain(project: DjangoProject, zeus_args: tuple[str, ...],
                  plain_args: tuple[str, ...]) -> subprocess.CompletedProcess[bytes]:
    """Run ``zeus ZEUS_ARGS`` and ``python PLAIN_ARGS``; assert the same status and bytes on
    stdout and stderr; the plain run."""
    zeus = project.run(*zeus_args, timeout=COMMAND_TIMEOUT)
    plain = project.plain(*plain_args)
    assert (zeus.returncode, zeus.stderr.decode(errors="replace"),
            zeus.stdout.decode(errors="replace")) == (
        plain.returncode, plain.stderr.decode(errors="replace"),
        plain.stdout.decode(errors="replace")), (zeus_args, zeus, plain)
    return plain


SHOW_MARK = "import os; print('shell:', os.environ.get('MANAGE_PY_MARK'))"


def test_manage_pys_own_code_runs_as_under_python(custom_master: Master,
                                                  custom_site: DjangoProject) -> None:
    """zeus manage, shell and run manage.py run the project's manage.py, not a stand-in: what
    its code prints and sets is there, and the boot chose the settings manage.py chooses for
    these command lines (of the two it names)."""
    plain = same_as_plain(custom_site, ("manage", "mark"), ("manage.py", "mark"))
    assert plain.stdout == (b"manage.py: loading .env\nmark: set by manage.py\n"
                            b"settings: mysite.settings mysite.settings\n"), plain
    same_as_plain(custom_site, ("run", "manage.py", "mark"), ("manage.py", "mark"))
    plain = same_as_plain(custom_site, ("shell", "-c", SHOW_MARK),
                          ("manage.py", "shell", "-c", SHOW_MARK))
    # (Django 5.2's shell says how many objects it imported, between the two.)
    assert plain.stdout.startswith(b"manage.py: loading .env\n"), plain
    assert plain.stdout.endswith(b"shell: set by manage.py\n"), plain


def test_a_failing_commands_traceback_is_manage_pys(custom_master: Master,
                                                    custom_site: DjangoProject) -> None:
    """The traceback of a command that raises starts in manage.py (<module>, main), as
    python's does, and ends with the error."""
    plain = same_as_plain(custom_site, ("manage", "explode"), ("manage.py", "explode"))
    assert plain.returncode == 1, plain
    assert re.search(rb'^  File "[^"]*manage\.py", line \d+, in <module>\n', plain.stderr,
                     re.MULTILINE), plain.stderr
    assert re.search(rb'manage\.py", line \d+, in main\n', plain.stderr), plain.stderr
    assert plain.stderr.endswith(b"RuntimeError: boom from a management command\n"), plain


def test_settings_manage_py_chooses_by_argv_are_refused(custom_master: Master,
                                                        custom_site: DjangoProject) -> None:
    """manage.py chooses test settings when its command line holds "test": zeus, whose phases
    set up the others, refuses with a message instead of running with the wrong settings."""
    plain = custom_site.plain("manage.py", "mark", "test")
    assert plain.returncode == 0, plain
    assert b"settings: mysite.test_settings mysite.test_settings\n" in plain.stdout, plain
    for args in (("manage", "mark", "test"), ("run", "manage.py", "mark", "test"),
                 ("test", "polls")):
        refused = custom_site.run(*args, timeout=COMMAND_TIMEOUT)
        assert refused.returncode == 1, (args, refused)
        assert refused.stdout == b"manage.py: loading .env\n", (args, refused)
        assert refused.stderr.startswith(b"zeus: manage.py (DJANGO_SETTINGS_MODULE) asks for "
                                         b"settings 'mysite.test_settings', but the phases set "
                                         b"up Django with 'mysite.settings'"), (args, refused)
        assert b"cannot switch" in refused.stderr, refused


def test_pytest_without_pytest_django_like_plain_pytest(custom_master: Master,
                                                        custom_site: DjangoProject) -> None:
    """``-p no:django``: nothing puts pytest.ini's settings, nor the phases', in the
    environment, as under plain pytest (the phases' Django stays set up: docs/plans.md)."""
    args = ("-p", "no:django", *PYTEST_ARGS, "pytests/test_environment.py")
    zeus = custom_site.run("pytest", *args, timeout=COMMAND_TIMEOUT)
    plain = custom_site.plain("-m", "pytest", *args)
    assert plain.returncode == 0, plain
    assert zeus.returncode == plain.returncode, (zeus, plain)
    assert summary(plain.stdout) == b"1 passed, 1 warning", plain.stdout  # pytest.ini's key
    assert summary(zeus.stdout) == summary(plain.stdout), (zeus.stdout, plain.stdout)
