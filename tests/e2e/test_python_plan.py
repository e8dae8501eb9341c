"""The built-in Python plan, end to end: a project with pyproject.toml, a src/ package and tests but
no zeus.json, a real master, real clients and real processes.

- zero-config start (the tree, the commands, the note), ``[tool.zeus] preload`` and its errors;
- ``zeus run X`` against ``python X``, one table row per case (stdout, stderr, exit status);
- terminals: isatty, the console (``zeus shell``, ``zeus run`` with no program);
- the client's world: cwd, environment (added, changed, removed), boot-shaping variables, and
  a legacy client's world read from /proc;
- fork hygiene: random generators, import caches, exit handlers, threads, ``zeuspy.after_fork``;
- ``zeus init`` writing the plan out.

Two masters are shared by many tests (module-scoped fixtures, leak-checked at teardown); the
others start their own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from tests.harness.legacy_client import run_in_own_process
from tests.harness.master import Master, master_for, phase_pid
from tests.harness.project import PyProject, python_project
from tests.harness.terminal import exit_code, finish, spawn
from zeuspy.plans import PythonPlan

# -- python versus zeus run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a run showed: exit status, stdout, stderr (bytes, after normalisation)."""

    status: int
    stdout: bytes
    stderr: bytes


#: ``python: can't open file …`` and runpy's ``<sys.executable>: No module named …`` start with
#: the interpreter as it was invoked (the test runs the venv's python by its full path; zeus run
#: prints its interpreter's name or path): the same program, so the name is not compared.
_PROGRAM = re.compile(rb"^\S*python[0-9.]*(?=: )", re.MULTILINE)


def outcome(result: subprocess.CompletedProcess[bytes]) -> Outcome:
    status = result.returncode
    if status < 0:
        # python dies of an uncaught KeyboardInterrupt by SIGINT (what a shell shows as 130);
        # a zeus client always exits with the status the master reports (130): the same to a
        # caller that looks at $?.
        status = 128 - status
    return Outcome(status, result.stdout, _PROGRAM.sub(b"python", result.stderr))


@dataclass(frozen=True)
class LegacyResult:
    status: int
    stdout: str
    stderr: str


def legacy_run(project: PyProject, command: str, *args: str, cwd: str = "",
               env: dict[str, str] | None = None) -> LegacyResult:
    """Run ``command ARGS`` through the master as a legacy client (pipe mode) in a process of its
    own, in ``cwd`` with ``env`` (the shim reads both from /proc)."""
    result = run_in_own_process(project.root / ".zeus.sock", command, list(args),
                                project.root / cwd, project.env() if env is None else env).checked()
    assert result.status is not None
    return LegacyResult(result.status, result.stdout.decode(), result.stderr.decode())


def line_of(path: Path, marker: str) -> int:
    """The 1-based number of the line of ``path`` that contains ``marker``."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {path}")


HAS_NUMPY = importlib.util.find_spec("numpy") is not None
NOTE = "no zeus.json, using the built-in python plan"
#: Auxiliary masters do not need pytest's installed plugins in test_environment (faster boots).
QUICK_PYTEST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

# -- the shared zero-config project -------------------------------------------------------------

#: Prints what `python` gives a program: argv, __name__, __file__, sys.path[0] (only [0]: zeus
#: run keeps the project's folders on sys.path after it, by design; see plans/pyrun.py).
SHOW = """\
import json, sys
print(json.dumps({"argv": sys.argv, "name": __name__, "file": __file__,
                  "path0": sys.path[0]}))
"""
CLI = """\
import json, sys
print(json.dumps({"argv": sys.argv, "name": __name__, "file": __file__,
                  "package": __package__, "path0": sys.path[0]}))
if "boom" in sys.argv:
    def fail():
        raise LookupError("raised in a module run with -m")
    fail()
"""
BOOM = """\
import sys
print("before the error")
sys.stdout.flush()


def inner(word):
    raise ValueError(f"kaboom {word} \u00e9\u2713")


def outer():
    inner("deep")


outer()
"""
#: The __main__ module as python makes it for a script (__builtins__ the module, not its dict).
NAMESPACE = """\
print(type(__builtins__).__name__, __cached__, type(__loader__).__name__, __spec__,
      __package__, __doc__, __builtins__.len("abc"))
"""
#: The interpreter's command line and the __main__ namespace's __annotations__ (python gives
#: __main__ one from the start).
ORIG_ARGV = """\
import json, sys
print(json.dumps([sys.orig_argv, sys.executable, "__annotations__" in globals()]))
"""
ECHO_STDIN = """\
import json, sys
data = sys.stdin.read()
print(json.dumps({"lines": data.splitlines(), "isatty": sys.stdin.isatty()}))
print(f"read {len(data)} characters", file=sys.stderr)
"""

ZERO_CONFIG_FILES = {
    "pyproject.toml": """\
        [project]
        name = "demo"
        version = "0.1"
        """,
    "src/mypkg/__init__.py": """\
        import os
        GREETING = "hello"
        IMPORTED_IN = os.getpid()
        """,
    "src/mypkg/cli.py": CLI,
    "tests/test_demo.py": """\
        import mypkg

        def test_greeting():
            assert mypkg.GREETING == "hello"
        """,
    "show.py": SHOW,
    "scripts/show.py": SHOW,
    "boom.py": BOOM,
    "bad.py": "x = 1\ndef (:\n    pass\n",
    "appdir/__main__.py": "import sys\nprint('dir', sys.argv, __name__)\nraise SystemExit(4)\n",
    "appdir/helper.py": "",
    "echo_stdin.py": ECHO_STDIN,
    "namespace.py": NAMESPACE,
    "here.py": "print('root here')\n",
    "orig.py": ORIG_ARGV,
    "src/mypkg/orig.py": ORIG_ARGV,
    "sub/here.py": "print('sub here')\n",
}
#: The master's own environment: the client tests change and remove these.
ZERO_CONFIG_ENV = {"FROM_MASTER": "master", "CHANGE_ME": "old"}


@pytest.fixture(scope="module")
def zero(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PyProject, Master]]:
    """The zero-config project (no zeus.json, no [tool.zeus]) with every phase ready."""
    folder = tmp_path_factory.mktemp("zero") / "demo"
    with python_project(folder, ZERO_CONFIG_FILES, ZERO_CONFIG_ENV) as project, \
            master_for(project, "boot", "app", "test_environment") as master:
        yield project, master


@pytest.fixture
def project(zero: tuple[PyProject, Master]) -> PyProject:
    """In this module: the shared zero-config project (instead of conftest.py's zeus.json one)."""
    return zero[0]


# -- 1. zero config -----------------------------------------------------------------------------


def test_zero_config_boots_the_python_plan(zero: tuple[PyProject, Master]) -> None:
    project, master = zero
    assert not (project.root / "zeus.json").exists()
    assert NOTE in master.output, master.output
    status = project.zeus("status", "--json")
    assert status.returncode == 0, status
    state = json.loads(status.stdout)
    assert [(p["name"], p["parent"], p["state"]) for p in state["phases"]] == [
        ("boot", None, "ready"), ("app", "boot", "ready"), ("test_environment", "app", "ready")]
    assert state["master"]["root"] == str(project.root), state
    listing = project.zeus("commands")
    assert listing.returncode == 0, listing
    text = listing.stdout.decode()
    for command, phase, alias in (("run", "app", "python"), ("shell", "app", "console"),
                                  ("pytest", "test_environment", "test")):
        assert re.search(rf"^{command}\s+in {phase}\s+\(alias: {alias}\)$", text, re.M), text


def test_zero_config_boot_imports_the_projects_own_packages(project: PyProject) -> None:
    code = "import sys, mypkg; print('mypkg' in sys.modules, mypkg.IMPORTED_IN)"
    result = project.zeus("run", "-c", code)
    assert result.returncode == 0, result
    # Imported by boot itself (src/ layout found without any setting), not by the command.
    assert result.stdout == f"True {phase_pid(project, 'boot')}\n".encode(), result


def test_zero_config_pytest_command(project: PyProject) -> None:
    for word in ("pytest", "test"):
        result = project.zeus(word, "-q", "-p", "no:cacheprovider", "tests")
        assert result.returncode == 0, result
        assert b"1 passed" in result.stdout, result


# -- 2. python X versus zeus run X --------------------------------------------------------------

#: (arguments after `python` / `zeus run`, cwd relative to the root, stdin; the id names the case).
#: Each row must give the same exit status, stdout and stderr, after outcome()'s explicit
#: normalisation. `-m mypkg…` rows run in src/: plain python only finds a src/-layout package
#: there (zeus run finds it anywhere, the plan puts src/ on sys.path: not a difference to test).
CODE_ARGV = "import json, sys; print(json.dumps([sys.argv, sys.path[0], __name__]))"
#: A fork (CPython 3.12+ warns before one when it counts more than one thread).
FORK_CODE = ("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n"
             "os.waitpid(pid, 0)\nprint('forked')")
UNICODE = ("import sys; print('h\u00e9llo \u2713 \u65e5\u672c \U0001f40d', sys.argv[1:]); "
           "print('\u043e\u0448\u0438\u0431\u043a\u0430 \u2717', file=sys.stderr)")
EQUIVALENCE = [
    pytest.param(["show.py", "a", "b c", ""], "", b"", id="script-with-args"),
    pytest.param(["scripts/show.py", "x"], "", b"", id="script-in-subfolder"),
    pytest.param(["-m", "mypkg.cli", "a", "--flag"], "src", b"", id="module-with-args"),
    pytest.param(["-m", "mypkg"], "src", b"", id="package-without-main"),
    pytest.param(["-m", "no_such_module"], "", b"", id="missing-module"),
    pytest.param(["-c", CODE_ARGV, "a", "-b"], "", b"", id="code-with-args"),
    pytest.param(["-", "a", "b"], "", SHOW.encode(), id="dash-script-on-stdin"),
    pytest.param([], "", SHOW.encode(), id="no-args-script-on-stdin"),
    pytest.param(["echo_stdin.py"], "", b"one\ntwo\n\nthree", id="stdin-piped-to-script"),
    pytest.param(["-c", "import sys; print('out'); sys.exit(3)"], "", b"", id="exit-int"),
    pytest.param(["-c", "import sys; sys.exit('fatal: gave up')"], "", b"", id="exit-str"),
    pytest.param(["-c", "import sys; print('bye'); sys.exit(None)"], "", b"", id="exit-none"),
    pytest.param(["-c", UNICODE, "\u00fcn\u00ef"], "", b"", id="unicode-output"),
    pytest.param(["missing.py", "a"], "", b"", id="missing-script"),
    pytest.param(["boom.py"], "", b"", id="uncaught-exception"),
    pytest.param(["-c", "print('start', flush=True); raise KeyboardInterrupt"], "", b"",
                 id="keyboard-interrupt"),
    pytest.param(["-m", "mypkg.cli", "boom"], "src", b"", id="module-uncaught-exception"),
    pytest.param(["bad.py"], "", b"", id="syntax-error-in-script"),
    pytest.param(["namespace.py"], "", b"", id="main-module-namespace"),
    pytest.param(["appdir", "x"], "", b"", id="folder-with-main"),
    pytest.param(["orig.py", "a", "b c"], "", b"", id="orig-argv-script"),
    pytest.param(["-m", "mypkg.orig", "-x"], "src", b"", id="orig-argv-module"),
    pytest.param(["-c", ORIG_ARGV, "c"], "", b"", id="orig-argv-code"),
    pytest.param(["-", "d"], "", ORIG_ARGV.encode(), id="orig-argv-stdin"),
    pytest.param(["-W", "ignore", "orig.py"], "", b"", id="orig-argv-option"),
    pytest.param(["-W", "error", "-c", FORK_CODE], "", b"", id="fork-under-W-error"),
]


@pytest.mark.parametrize(("args", "cwd", "stdin"), EQUIVALENCE)
def test_zeus_run_is_python(project: PyProject, args: list[str], cwd: str, stdin: bytes) -> None:
    expected = outcome(project.python(*args, cwd=cwd, stdin=stdin))
    got = outcome(project.zeus("run", *args, cwd=cwd, stdin=stdin))
    # Decoded first, for readable diffs; then byte for byte.
    assert got.stderr.decode(errors="replace") == expected.stderr.decode(errors="replace")
    assert got.stdout.decode(errors="replace") == expected.stdout.decode(errors="replace")
    assert got == expected


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc")
def test_stat_reads_as_cpython_reads_it(project: PyProject) -> None:
    """CPython 3.12+ counts a process's threads before ``os.fork`` from ``/proc/self/stat``
    split on spaces (its 20th field): a command's short name has no spaces, so that count is
    right (1 thread) and its forks do not warn "multi-threaded" where python's do not."""
    got = project.zeus("run", "-c", "print(open('/proc/self/stat').read().split(' ')[19])")
    assert (got.returncode, got.stdout) == (0, b"1\n"), got


def test_equivalence_table_checks_what_it_should(project: PyProject) -> None:
    """The table's expectations are python's, so check a few of them are what the rows claim
    (a broken row would otherwise compare two equal failures)."""
    show = json.loads(project.python("scripts/show.py", "x").stdout)
    assert show == {"argv": ["scripts/show.py", "x"], "name": "__main__",
                    "file": str(project.root / "scripts" / "show.py"),
                    "path0": os.path.realpath(project.root / "scripts")}
    module = json.loads(project.python("-m", "mypkg.cli", "a", cwd="src").stdout)
    assert module["argv"] == [str(project.root / "src/mypkg/cli.py"), "a"]
    assert (module["name"], module["package"]) == ("__main__", "mypkg")
    for args, status in ((["missing.py"], 2), (["-m", "mypkg"], 1),
                         (["-c", "import sys; sys.exit('x')"], 1)):
        assert project.python(*args, cwd="src" if args[0] == "-m" else "").returncode == status
    interrupted = outcome(project.python("-c", "raise KeyboardInterrupt"))
    assert interrupted.status == 130


def test_uncaught_exception_status_and_user_frames(project: PyProject) -> None:
    """What works despite the traceback bug above: the status, the output before the error, and
    python's user frames ending the traceback."""
    expected = project.python("boom.py")
    got = project.zeus("run", "boom.py")
    assert (got.returncode, got.stdout) == (1, b"before the error\n"), got
    python_frames = expected.stderr.split(b"Traceback (most recent call last):\n", 1)[1]
    assert got.stderr.endswith(python_frames), got.stderr.decode()
    interrupted = project.zeus("run", "-c", "raise KeyboardInterrupt")
    # python dies of SIGINT after an uncaught KeyboardInterrupt, and so does the client.
    assert interrupted.returncode == -signal.SIGINT, interrupted
    assert project.python("-c", "raise KeyboardInterrupt").returncode == -signal.SIGINT
    assert interrupted.stderr.endswith(b"KeyboardInterrupt\n"), interrupted


# -- 3. terminals -------------------------------------------------------------------------------

ISATTY = "import sys; print(sys.stdin.isatty(), sys.stdout.isatty())"


def test_isatty_through_a_pty_and_through_pipes(project: PyProject) -> None:
    child = spawn(project, "run", "-c", ISATTY)
    out = finish(child)
    status = exit_code(child)
    assert (status, out.strip()) == (0, b"True True"), out
    piped = project.zeus("run", "-c", ISATTY)
    assert (piped.returncode, piped.stdout) == (0, b"False False\n"), piped


def console_env(project: PyProject) -> dict[str, str]:
    # No IPython (it is not installed anyway); the history file of the standard console goes
    # to a home of the test's own, never the user's.
    home = project.root / "home"
    home.mkdir(exist_ok=True)
    return {"ZEUSPY_NO_IPYTHON": "1", "HOME": str(home)}


def expect_console(child: pexpect.spawn) -> None:
    child.expect_exact(f"Python {sys.version.split()[0]}".encode())
    child.expect_exact(b'Type "help", "copyright", "credits" or "license" for more information.')
    child.expect_exact(b">>> ")


def test_shell_is_pythons_console(project: PyProject) -> None:
    child = spawn(project, "shell", **console_env(project))
    try:
        expect_console(child)
        child.sendline(b"6*7")
        child.expect(rb"\r\n42\r\n")
        child.expect_exact(b">>> ")
        child.sendcontrol("d")
        out = finish(child)
        status = exit_code(child)
    finally:
        child.close(force=True)
    assert status == 0, out


FAKE_IPYTHON = """
import sys

def start_ipython(argv=None, user_ns=None):
    print("fake IPython", argv, sys.stdin.isatty())
"""


def test_shell_uses_ipython_when_installed(project: PyProject) -> None:
    # A stand-in IPython on the project's path (created after boot: the command finds it) shows
    # that `shell` hands IPython the arguments and the terminal; ZEUSPY_NO_IPYTHON opts out.
    package = project.root / "IPython"
    package.mkdir()
    try:
        (package / "__init__.py").write_text(FAKE_IPYTHON)
        child = spawn(project, "shell", "--no-banner")
        try:
            child.expect_exact(b"fake IPython ['--no-banner'] True")
            out = finish(child)
            status = exit_code(child)
        finally:
            child.close(force=True)
        assert status == 0, out
        opted_out = project.zeus("shell", "--no-banner", env=project.env(ZEUSPY_NO_IPYTHON="1"))
        assert opted_out.returncode == 2, opted_out
        assert b"install IPython" in opted_out.stderr
    finally:
        for path in sorted(package.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        package.rmdir()


def test_run_without_a_program_on_a_terminal_is_the_console(project: PyProject) -> None:
    child = spawn(project, "run", **console_env(project))
    try:
        expect_console(child)
        child.sendline(b"import sys; sys.argv")
        child.expect_exact(b"['']")
        child.expect_exact(b">>> ")
        child.sendline(b"raise SystemExit(3)")
        out = finish(child)
        status = exit_code(child)
    finally:
        child.close(force=True)
    assert status == 3, out


# -- 5. the client's world ----------------------------------------------------------------------

WORLD = ("import json, os; print(json.dumps({'cwd': os.getcwd(), "
         "'vars': [os.environ.get(n) for n in ('ADDED', 'CHANGE_ME', 'FROM_MASTER')]}))")


def client_env(project: PyProject) -> dict[str, str]:
    """The client's environment: one variable added, one changed, one the master has removed."""
    env = project.env(ADDED="added", CHANGE_ME="new")
    del env["FROM_MASTER"]
    return env


def test_command_runs_in_the_clients_cwd(project: PyProject) -> None:
    result = project.zeus("run", "-c", "import os; print(os.getcwd())", cwd="sub")
    assert result.returncode == 0, result
    assert result.stdout.decode() == os.path.realpath(project.root / "sub") + "\n"


def test_command_gets_the_clients_environment(project: PyProject) -> None:
    same = project.zeus("run", "-c", WORLD)
    assert json.loads(same.stdout)["vars"] == [None, "old", "master"], same
    result = project.zeus("run", "-c", WORLD, env=client_env(project))
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["vars"] == ["added", "new", None], result


@pytest.mark.parametrize("size", [20_000, 100_000])
def test_a_large_environment_still_arrives(project: PyProject, size: int) -> None:
    # 20 kB: the world is sent, longer than one read on each hop; 100 kB: over the limit, the
    # shim reads it from /proc instead. Both, several times: the spare and fresh runners.
    env = client_env(project)
    env["BIG"] = "x" * size
    code = "import os; print(len(os.environ.get('BIG', '')), os.environ.get('ADDED'))"
    for _ in range(3):
        result = project.zeus("run", "-c", code, env=env)
        assert (result.returncode, result.stdout) == (0, f"{size} added\n".encode()), result


def test_runtime_variables_take_effect(project: PyProject) -> None:
    # What python reads at start-up but a running interpreter can follow: the time zone and
    # warning filters of the client's shell apply, as they would to `python`.
    code = ("import sys, time, warnings; print(time.tzname[0], sys.warnoptions[-1:]); "
            "warnings.warn('boom')")
    env = project.env(TZ="Asia/Tokyo", PYTHONWARNINGS="error")
    expected = project.python("-c", code, env=env)
    result = project.zeus("run", "-c", code, env=env)
    assert expected.stdout == b"JST ['error']\n", expected
    assert (result.returncode, result.stdout) == (expected.returncode, expected.stdout), result
    assert b"UserWarning: boom" in result.stderr


def test_detached_master_with_the_builtin_plan(tmp_path: Path) -> None:
    # `zeus start --detach` has no zeus.json to pass on: the background master finds the project.
    with python_project(tmp_path / "detached", {
        "pyproject.toml": "[project]\nname = 'detached'\nversion = '0'\n",
        "src/pk/__init__.py": "VALUE = 7\n",
    }) as project:
        started = project.zeus("start", "--detach")
        try:
            assert started.returncode == 0, started
            result = project.zeus("run", "-c", "import pk; print(pk.VALUE)")
            assert (result.returncode, result.stdout) == (0, b"7\n"), result
        finally:
            stopped = project.zeus("stop")
        assert stopped.returncode == 0, stopped


def test_pytest_missing_is_one_clear_message(tmp_path: Path) -> None:
    # Without pytest, test_environment is ready anyway (a no-op) and `zeus pytest` says what is
    # missing. The plan file stands in for an environment without pytest.
    tree = json.dumps({"plan": PythonPlan.TREE})
    plan = ("from zeuspy.plans import PythonPlan, pytest_support\n"
            "pytest_support.installed = lambda: False\n\n"
            "class Plan(PythonPlan):\n    pass\n")
    with python_project(tmp_path / "nopytest", {
        "pyproject.toml": "[project]\nname = 'nopytest'\nversion = '0'\n",
        "zeus.json": tree, "zeus_plan.py": plan,
    }) as project, master_for(project, "boot", "app", "test_environment"):
        result = project.zeus("pytest", "-q")
    assert result.returncode == 1, result
    assert b"pytest is not installed" in result.stderr, result
    assert b"Traceback" not in result.stderr, result


LOCAL_MODULES = """\
import os, sys
root = os.getcwd() + os.sep
print(sorted(name for name, module in list(sys.modules.items())
             if str(getattr(module, "__file__", None) or "").startswith(root)))
"""


def test_the_plan_files_module_is_not_listed(tmp_path: Path) -> None:
    """A program sees in ``sys.modules`` the project's modules python would list, not the plan
    file's (hypothesis, for one, draws examples from the constants of every module whose file
    is in the project)."""
    tree = json.dumps({"plan": PythonPlan.TREE})
    plan = "from zeuspy.plans import PythonPlan\n\nclass Plan(PythonPlan):\n    VALUE = 12345\n"
    with python_project(tmp_path / "planned", {
        "pyproject.toml": "[project]\nname = 'planned'\nversion = '0'\n",
        "zeus.json": tree, "zeus_plan.py": plan, "local_modules.py": LOCAL_MODULES,
    }) as project, master_for(project, "boot", "app"):
        ran = project.zeus("run", "local_modules.py")
        plain = project.python("local_modules.py")
    assert (ran.returncode, ran.stdout, ran.stderr) == (
        plain.returncode, plain.stdout, plain.stderr), (ran, plain)
    assert plain.stdout == b"['__main__']\n", plain


def test_relative_script_is_resolved_from_the_clients_cwd(project: PyProject) -> None:
    here = project.zeus("run", "here.py", cwd="sub")
    assert (here.returncode, here.stdout) == (0, b"sub here\n"), here
    up = project.zeus("run", "../here.py", cwd="sub")
    assert (up.returncode, up.stdout) == (0, b"root here\n"), up


def test_pythonpath_other_than_the_boots_is_refused(project: PyProject) -> None:
    marker = project.root / "pythonpath-ran"
    code = f"open({str(marker)!r}, 'w').close(); print('RAN')"
    result = project.zeus("run", "-c", code, env=project.env(PYTHONPATH="/x"))
    err = result.stderr.decode()
    assert result.returncode != 0, result
    assert b"RAN" not in result.stdout and not marker.exists(), result
    assert "PYTHONPATH: '/x' here, unset when the phases booted" in err, err
    assert "zeus stop" in err and "zeus start" in err, err


# -- 6. a legacy client -------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the shim reads /proc")
def test_legacy_client_gets_its_cwd_and_environment(project: PyProject) -> None:
    result = legacy_run(project, "run", "-c", WORLD, cwd="sub", env=client_env(project))
    assert result.status == 0, result
    assert json.loads(result.stdout) == {"cwd": os.path.realpath(project.root / "sub"),
                                         "vars": ["added", "new", None]}, result
    alias = legacy_run(project, "python", "here.py", cwd="sub")
    assert (alias.status, alias.stdout) == (0, "sub here\n"), alias


# -- 7. fork hygiene (zero-config master) -------------------------------------------------------


def test_random_differs_between_commands(project: PyProject) -> None:
    code = "import random; print(random.random())"
    values = {project.zeus("run", "-c", code).stdout for _ in range(2)}
    assert len(values) == 2, values


def test_module_created_after_boot_is_importable(project: PyProject) -> None:
    """Boot listed src/ when it imported mypkg, and importlib caches that listing until the
    folder's mtime changes. Restoring the mtime after adding the file makes the cached listing
    look fresh: only the command's invalidate_caches() finds the new module."""
    app = phase_pid(project, "app")
    src = project.root / "src"
    before = src.stat()
    (src / "late_module.py").write_text("VALUE = 'late'\n")
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = project.zeus("run", "-c", "import late_module; print(late_module.VALUE)")
    assert (result.returncode, result.stdout) == (0, b"late\n"), result
    assert phase_pid(project, "app") == app  # no restart


# -- the shared project with [tool.zeus] --------------------------------------------------------

PRELOAD_MOD = """\
import atexit, os
import zeuspy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "preloaded-by"), "w") as f:
    f.write(str(os.getpid()))


def _boot_exit_handler():
    with open(os.path.join(ROOT, "boot-atexit-ran"), "a") as f:
        f.write(f"{os.getpid()}\\n")
    print("BOOT EXIT HANDLER RAN", flush=True)


atexit.register(_boot_exit_handler)
HOOK_PIDS = []
DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite://")  # settings read at import


@zeuspy.after_fork
def _record():
    HOOK_PIDS.append(os.getpid())
"""
PRELOAD = ["preload_mod", *(["numpy"] if HAS_NUMPY else [])]
TUNED_FILES = {
    "pyproject.toml": f"""\
        [project]
        name = "tuned"
        version = "0.1"

        [tool.zeus]
        preload = {json.dumps(PRELOAD)}
        boot_env = ["MY_MODE"]
        """,
    "src/mypkg/__init__.py": "",
    "src/preload_mod.py": PRELOAD_MOD,
}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyProject]:
    """A project whose pyproject.toml has [tool.zeus] preload and boot_env; boot and app ready."""
    folder = tmp_path_factory.mktemp("tuned") / "tuned"
    with python_project(folder, TUNED_FILES, {"MY_MODE": "fast", **QUICK_PYTEST}) as project, \
            master_for(project, "boot", "app"):
        yield project


def test_a_variable_the_boot_read_warns_when_it_differs(tuned: PyProject) -> None:
    code = "import preload_mod; print(preload_mod.DATABASE_URL)"
    same = tuned.zeus("run", "-c", code)
    assert (same.returncode, same.stdout, same.stderr) == (0, b"sqlite://\n", b""), same
    other = tuned.zeus("run", "-c", code, env=tuned.env(DATABASE_URL="postgres://x"))
    assert (other.returncode, other.stdout) == (0, b"sqlite://\n"), other
    assert other.stderr.startswith(b"zeus: warning: DATABASE_URL differ"), other
    assert b"Restart the master from this shell" in other.stderr, other
    # What every terminal sets differently is not worth a warning, even if the boot read it.
    moved = tuned.zeus("run", "-c", "pass", env=tuned.env(COLUMNS="31", TERM="vt100"))
    assert (moved.returncode, moved.stderr) == (0, b""), moved


def test_tool_zeus_preload_is_imported_by_boot(tuned: PyProject) -> None:
    code = "import sys; print('preload_mod' in sys.modules, 'mypkg' in sys.modules)"
    result = tuned.zeus("run", "-c", code)
    # The listed module, and not the project's own packages (the list replaces the default).
    assert (result.returncode, result.stdout) == (0, b"True False\n"), result
    boot = phase_pid(tuned, "boot")
    assert (tuned.root / "preloaded-by").read_text() == str(boot)


def test_plan_listed_boot_variable_is_checked(tuned: PyProject) -> None:
    ok = tuned.zeus("run", "-c", "import os; print(os.environ['MY_MODE'])")
    assert (ok.returncode, ok.stdout) == (0, b"fast\n"), ok
    for env in (tuned.env(MY_MODE="slow"), {k: v for k, v in tuned.env().items()
                                            if k != "MY_MODE"}):
        result = tuned.zeus("run", "-c", "print('RAN')", env=env)
        err = result.stderr.decode()
        assert result.returncode != 0 and b"RAN" not in result.stdout, result
        shown = repr(env["MY_MODE"]) if "MY_MODE" in env else "unset"
        assert f"MY_MODE: {shown} here, 'fast' when the phases booted" in err, err
        assert "zeus stop" in err and "zeus start" in err, err


@pytest.mark.skipif(not HAS_NUMPY, reason="numpy is not installed")
def test_numpy_random_differs_between_commands(tuned: PyProject) -> None:
    code = "import sys; print('numpy' in sys.modules); import numpy; print(numpy.random.random())"
    first, second = (tuned.zeus("run", "-c", code) for _ in range(2))
    assert first.returncode == second.returncode == 0, (first, second)
    assert first.stdout.startswith(b"True\n"), first  # numpy came from boot, not the command
    assert first.stdout != second.stdout, first


def test_exit_handlers_of_boot_do_not_run_in_commands(tuned: PyProject) -> None:
    code = "import atexit; atexit.register(print, 'command exit handler'); print('body')"
    result = tuned.zeus("run", "-c", code)
    assert (result.returncode, result.stdout) == (0, b"body\ncommand exit handler\n"), result
    assert not (tuned.root / "boot-atexit-ran").exists()


def test_after_fork_registered_in_boot_runs_in_every_command(tuned: PyProject) -> None:
    code = "import os, preload_mod; print(preload_mod.HOOK_PIDS[-1] == os.getpid())"
    for _ in range(2):
        result = tuned.zeus("run", "-c", code)
        assert (result.returncode, result.stdout) == (0, b"True\n"), result


# -- a broken preload ---------------------------------------------------------------------------


def test_broken_preload_crashes_boot_with_a_message(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": """\
            [project]
            name = "broken"
            version = "0.1"

            [tool.zeus]
            preload = ["json", "broken_mod"]
            """,
        "src/broken_mod.py": "raise RuntimeError('broken on purpose')\n",
    }
    with python_project(tmp_path / "broken", files, QUICK_PYTEST) as project, \
            master_for(project, "crashed:boot") as master:
        assert NOTE in master.output, master.output
        expected = "could not import 'broken_mod' (listed in [tool.zeus] preload)"
        assert expected in project.log, project.log
        result = project.zeus("run", "-c", "pass")
        err = result.stderr.decode()
        assert result.returncode == 1, result
        assert expected in err and "broken on purpose" in err, err


# -- 7. threads and after_fork order in a plan file subclassing PythonPlan ----------------------

HYGIENE_PLAN = """\
import os
import signal
import threading

import zeuspy
from zeuspy.plans import PythonPlan

ORDER = []
STOP = threading.Event()


class Plan(PythonPlan):
    def boot(self):
        super().boot()
        zeuspy.after_fork(lambda: ORDER.append(("registered", os.getpid())))
        threading.Thread(target=STOP.wait, name="boot-helper", daemon=True).start()  # START

    def after_fork(self):
        ORDER.append(("method", os.getpid()))
"""


def test_thread_warning_and_after_fork_order(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": '[project]\nname = "threads"\nversion = "0.1"\n',
        "zeus.json": json.dumps({"plan": PythonPlan.TREE}),
        "zeus_plan.py": HYGIENE_PLAN,
        "src/mypkg/__init__.py": "",
    }
    with python_project(tmp_path / "threads", files, QUICK_PYTEST) as project, \
            master_for(project, "boot", "app") as master:
        assert NOTE not in master.output
        plan = project.root / "zeus_plan.py"
        line = line_of(plan, "# START")
        warning = (f"zeus: warning: phase boot forks with threads alive: 'boot-helper' "
                   f"(started by phase boot at {plan}:{line})")
        assert warning in project.log, project.log
        code = ("import os, zeus_plan; "
                "print([what for what, pid in zeus_plan.ORDER if pid == os.getpid()])")
        for _ in range(2):
            result = project.zeus("run", "-c", code)
            assert (result.returncode, result.stdout) == (0, b"['registered', 'method']\n"), \
                result


# -- 8. zeus init -------------------------------------------------------------------------------


def test_init_writes_the_python_plan_and_it_runs(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": '[project]\nname = "fresh"\nversion = "0.1"\n',
        "src/fresh/__init__.py": "X = 42\n",
        "tests/test_fresh.py": "def test_x():\n    pass\n",
    }
    with python_project(tmp_path / "fresh", files, QUICK_PYTEST) as project:
        result = project.zeus("init")
        assert result.returncode == 0, result
        assert json.loads((project.root / "zeus.json").read_text()) == {"plan": PythonPlan.TREE}
        plan = (project.root / "zeus_plan.py").read_text()
        assert "from zeuspy.plans import PythonPlan" in plan, plan
        assert re.search(r"^class \w+\(PythonPlan\):", plan, re.M), plan
        with master_for(project, "boot", "app") as master:
            assert NOTE not in master.output, master.output
            result = project.zeus("run", "-c", "import sys, fresh; print(fresh.X, sys.argv)", "a")
            assert (result.returncode, result.stdout) == (0, b"42 ['-c', 'a']\n"), result
            listing = project.zeus("commands").stdout.decode()
            assert re.search(r"^run\s+in app\s+\(alias: python\)$", listing, re.M), listing


def test_outcome_normalises_only_the_program_name() -> None:
    """outcome() must not hide real differences: only a leading interpreter name/path and a
    death by SIGINT are rewritten."""
    result = subprocess.CompletedProcess(
        [], -2, b"", b"/usr/bin/python3.11: can't open file 'x'\nvalue: python: kept\n")
    assert outcome(result) == Outcome(130, b"", b"python: can't open file 'x'\n"
                                                b"value: python: kept\n")
