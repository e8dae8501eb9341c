"""`zeus pytest` (the built-in Python plan: no zeus.json) against plain pytest, on a generated
project of 62 tests (tests/e2e/_pytest_fixture.py): the same exit status, outcome counts and output
for the usual command lines (no arguments, -x, -k/-m, -p no:cacheprovider, --lf, a node id, nothing
collected, a usage error), from a subfolder and through the `test` alias; capture; colours on a
terminal and none in a pipe; --pdb on a terminal; no spurious assertion-rewrite warnings.

One master serves the module (booting test_environment costs seconds); every plain run is the
venv's `pytest` script with the same working directory, environment and arguments. Both sides
start from the same `.pytest_cache` state: it is removed before each run unless a test says
otherwise.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from tests.e2e._pytest_fixture import (
    FAIL_MARK,
    FULL_COUNTS,
    HEADER_MARK,
    PASS_MARK,
    write_project,
)
from tests.harness.master import running_master
from tests.harness.processes import new_mark, project_leftovers
from tests.harness.project import VENV_BIN, ZEUS, Project
from tests.harness.terminal import ANSI, exit_code

PYTEST = str(VENV_BIN / "pytest")
#: Bound of one pytest run, plain or through zeus (a plain run costs ~3 s here: plugins load).
RUN_TIMEOUT = 60.0
PHASES = ("boot", "app", "test_environment")
#: Variables of the outer test run (or the user's shell) that would change what pytest does.
SCRUBBED = ("NO_COLOR", "PY_COLORS", "FORCE_COLOR", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST", "PYTEST_VERSION",
            "PYTEST_THEME", "PYTEST_THEME_MODE", "DJANGO_SETTINGS_MODULE", "COLUMNS", "LINES")

#: pytest's final line: "==== 5 failed, 48 passed, ... in 0.26s ====" (or, with -q, bare).
SUMMARY = re.compile(r"^=* ?(.*?) in \d+(?:\.\d+)?s(?: \(\d+:\d\d:\d\d\))? ?=*$")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|deselected|errors?|warnings?)")
PLURAL = {"error": "errors", "warning": "warnings"}
ADDRESS = re.compile(r"0x[0-9a-f]+")


class PytestProject(Project):
    """A project without zeus.json; its environment lacks what would steer pytest."""

    def env(self, **extra: str) -> dict[str, str]:
        env = super().env()
        for name in SCRUBBED:
            env.pop(name, None)
        env.update(extra)
        return env


@dataclass
class Run:
    code: int
    out: str
    err: str
    elapsed: float

    @property
    def counts(self) -> dict[str, int] | None:
        return summary(self.out)

    @property
    def normalized(self) -> tuple[str, str]:
        return normalize(self.out), normalize(self.err)


def summary(text: str) -> dict[str, int] | None:
    """The outcome counts of pytest's final summary line ({} for "no tests ran"), or None when
    there is no such line (a usage error)."""
    for line in reversed(text.splitlines()):
        found = SUMMARY.match(line.strip())
        if found:
            return {PLURAL.get(word, word): int(n) for n, word in COUNT.findall(found.group(1))}
    return None


def normalize(text: str) -> str:
    """``text`` without what differs between two identical runs: durations (and the ``=``
    padding that depends on their width) and object addresses."""
    lines = []
    for line in text.splitlines():
        found = SUMMARY.match(line.strip())
        lines.append(f"SUMMARY: {found.group(1)}" if found else ADDRESS.sub("0xADDR", line))
    return "\n".join(lines)


def reset_cache(root: Path) -> None:
    shutil.rmtree(root / ".pytest_cache", ignore_errors=True)


def execute(proj: PytestProject, argv: list[str], cwd: Path | None,
            env: dict[str, str] | None) -> Run:
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd or proj.root, env=env or proj.env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=RUN_TIMEOUT)
    return Run(done.returncode, done.stdout.decode(errors="replace"),
               done.stderr.decode(errors="replace"), time.monotonic() - started)


def plain(proj: PytestProject, *args: str, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> Run:
    """The venv's ``pytest ARGS`` (pipes)."""
    return execute(proj, [PYTEST, *args], cwd, env)


def zeus(proj: PytestProject, *args: str, cwd: Path | None = None,
         env: dict[str, str] | None = None, command: str = "pytest") -> Run:
    """``zeus pytest ARGS`` (pipes)."""
    return execute(proj, [ZEUS, command, *args], cwd, env)


def assert_same(expected: Run, got: Run) -> None:
    """``got`` (zeus) did what ``expected`` (plain pytest) did: exit status, outcome counts,
    then the whole output (stdout and stderr, normalized)."""
    context = f"\n--- plain stdout:\n{expected.out[-3000:]}\n--- zeus stdout:\n{got.out[-3000:]}" \
              f"\n--- zeus stderr:\n{got.err[-2000:]}"
    assert got.code == expected.code, f"exit status {got.code} != {expected.code}{context}"
    assert got.counts == expected.counts, context
    for name, mine, theirs in zip(("stdout", "stderr"), got.normalized, expected.normalized,
                                  strict=True):
        if mine != theirs:
            diff = "\n".join(difflib.unified_diff(theirs.splitlines(), mine.splitlines(),
                                                  "plain pytest", "zeus pytest", lineterm=""))
            raise AssertionError(f"{name} differs:\n{diff}")


def compare(proj: PytestProject, *args: str, cwd: Path | None = None) -> tuple[Run, Run]:
    """Plain pytest then zeus pytest with ``args``, each from an empty cache; asserts they
    match and returns both runs."""
    reset_cache(proj.root)
    expected = plain(proj, *args, cwd=cwd)
    reset_cache(proj.root)
    got = zeus(proj, *args, cwd=cwd)
    assert_same(expected, got)
    return expected, got


def check_no_leaks(proj: PytestProject) -> None:
    """The leak check (tests.harness.processes.project_leftovers) for a pytest project: its
    processes by mark and by working directory (the root or below: commands run in tests/)."""
    project_leftovers(proj)


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PytestProject]:
    """The fixture project with a master whose test_environment phase is ready."""
    root = write_project(tmp_path_factory.mktemp("pytest_plan") / "proj")
    proj = PytestProject(root, new_mark())
    try:
        with running_master(proj, *PHASES) as master:
            assert "built-in python plan" in master.output, master.output
            yield proj
    finally:
        check_no_leaks(proj)


@pytest.fixture(scope="module")
def baseline(fx: PytestProject) -> Run:
    """Plain ``pytest`` with no arguments, from an empty cache."""
    reset_cache(fx.root)
    return plain(fx)


# -- command lines --------------------------------------------------------------------------------
def test_full_run_matches_plain_pytest(fx: PytestProject, baseline: Run) -> None:
    assert baseline.code == 1, baseline.out
    assert baseline.counts == FULL_COUNTS, baseline.out
    outcomes = sum(n for kind, n in FULL_COUNTS.items() if kind != "warnings")
    assert outcomes >= 50
    reset_cache(fx.root)
    got = zeus(fx)
    assert_same(baseline, got)
    # The root conftest's hook ran, and assertions of test modules are rewritten.
    assert HEADER_MARK in got.out
    assert "At index 2 diff: 3 != 4" in got.out
    assert "assert 2 == 3" in got.out
    print(f"\nfull run: plain pytest {baseline.elapsed:.2f} s, zeus pytest {got.elapsed:.2f} s")


CASES = [
    pytest.param(("-x",), 1, id="exitfirst"),
    pytest.param(("-k", "add or mul or slow", "-m", "not slow"), 0, id="keyword-and-marker"),
    pytest.param(("-k", "fail and not dict"), 1, id="keyword-failing"),
    pytest.param(("-p", "no:cacheprovider"), 1, id="no-cacheprovider"),
    pytest.param(("-q", "tests/test_basic.py::test_fail_introspection"), 1, id="node-id"),
    pytest.param(("-q", "tests/test_params.py::test_add_many[3-4-7]"), 0, id="node-id-param"),
    pytest.param(("-k", "no_test_is_called_this"), 5, id="nothing-collected"),
    pytest.param(("--no-such-option",), 4, id="usage-error"),
]


@pytest.mark.parametrize(("args", "code"), CASES)
def test_command_line_matches_plain_pytest(fx: PytestProject, args: tuple[str, ...],
                                           code: int) -> None:
    expected, got = compare(fx, *args)
    assert expected.code == code, expected.out + expected.err
    if code == 4:
        assert got.counts is None
        assert "unrecognized arguments: --no-such-option" in got.err
    else:
        assert got.counts is not None and sum(got.counts.values()) > 0, got.out
    if "no:cacheprovider" in args:
        assert not (fx.root / ".pytest_cache").exists()


def test_last_failed_matches_plain_pytest(fx: PytestProject) -> None:
    """``--lf`` on the cache a plain full run wrote: plain pytest and zeus pytest start from the
    very same cache folder. And zeus pytest writes the cache plain pytest does."""
    cache = fx.root / ".pytest_cache"
    lastfailed = cache / "v" / "cache" / "lastfailed"
    saved = fx.root.parent / "saved_cache"
    shutil.rmtree(saved, ignore_errors=True)
    reset_cache(fx.root)
    first = plain(fx)
    assert first.code == 1
    written = lastfailed.read_text()
    shutil.copytree(cache, saved)
    expected = plain(fx, "--lf")
    reset_cache(fx.root)
    shutil.copytree(saved, cache)
    got = zeus(fx, "--lf")
    assert_same(expected, got)
    assert "run-last-failure: rerun previous 6 failures" in got.out
    assert got.counts == {"failed": FULL_COUNTS["failed"], "errors": FULL_COUNTS["errors"]}
    # The cache written by a zeus run, and --lf on it.
    reset_cache(fx.root)
    assert zeus(fx).code == 1
    assert lastfailed.read_text() == written
    assert_same(expected, zeus(fx, "--lf"))


def test_subfolder_matches_plain_pytest(fx: PytestProject) -> None:
    """``cd tests && zeus pytest test_params.py``: same rootdir, paths and results."""
    expected, got = compare(fx, "test_params.py", cwd=fx.root / "tests")
    assert expected.code == 1
    assert f"rootdir: {fx.root}" in got.out
    assert got.counts == {"failed": 1, "passed": 29}


def test_alias_test(fx: PytestProject, baseline: Run) -> None:
    reset_cache(fx.root)
    assert_same(baseline, zeus(fx, command="test"))


# -- capture --------------------------------------------------------------------------------------
def test_capture(fx: PytestProject) -> None:
    """A passing test's output is hidden, a failing test's shown in its report."""
    for run in compare(fx, "tests/test_capture.py"):
        assert run.code == 1
        assert PASS_MARK not in run.out + run.err
        assert re.search(rf"-+ Captured stdout call -+\n{FAIL_MARK}\n", run.out), run.out


def test_capture_disabled(fx: PytestProject) -> None:
    """``-s``: output goes straight through, as the tests run (before the failure reports)."""
    for run in compare(fx, "-s", "tests/test_capture.py"):
        assert run.code == 1
        assert "Captured stdout call" not in run.out
        reports = run.out.index("= FAILURES =")
        assert run.out.index(PASS_MARK) < reports, run.out
        assert run.out.index(FAIL_MARK) < reports, run.out
        assert f"{PASS_MARK} on stderr" in run.err


def test_a_tests_command_line_is_the_pytest_scripts(fx: PytestProject) -> None:
    """``sys.argv`` (the script's path first), ``sys.orig_argv`` (the interpreter's command
    line the script's ``#!`` line makes) and ``__main__`` (the script), as under the ``pytest``
    script: a test that starts its program again from them starts pytest, not zeuspy's shim."""
    path = fx.root / "tests" / "test_argv_probe.py"
    path.write_text("import json, sys\n\n\ndef test_argv():\n"
                    "    main = sys.modules['__main__']\n"
                    "    print(json.dumps([sys.argv, sys.orig_argv]))\n"
                    "    print(main.__file__, type(main.__loader__).__name__)\n")
    try:
        runs = compare(fx, "-s", "-q", "tests/test_argv_probe.py")
    finally:
        path.unlink()
    for run in runs:
        assert json.dumps([[PYTEST, "-s", "-q", "tests/test_argv_probe.py"],
                           [sys.executable, PYTEST, "-s", "-q", "tests/test_argv_probe.py"]]) \
            in run.out, run.out
        assert f"{PYTEST} SourceFileLoader" in run.out, run.out


# -- terminal -------------------------------------------------------------------------------------
def spawn(proj: PytestProject, program: str, *args: str) -> pexpect.spawn:
    """``program ARGS`` on a fresh PTY, with TERM=xterm (and no colour overrides)."""
    return pexpect.spawn(program, list(args), cwd=str(proj.root), env=proj.env(TERM="xterm"),
                         timeout=RUN_TIMEOUT, dimensions=(24, 80))


def on_terminal(text: bytes) -> str:
    return ANSI.sub(b"", text).decode(errors="replace").replace("\r\n", "\n")


def test_colours_on_terminal_only(fx: PytestProject) -> None:
    args = ("-p", "no:cacheprovider", "tests/test_basic.py")
    piped = zeus(fx, *args, env=fx.env(TERM="xterm"))
    assert piped.code == 1
    assert "\x1b[" not in piped.out + piped.err
    child = spawn(fx, ZEUS, "pytest", *args)
    try:
        child.expect(pexpect.EOF)
        output = child.before
        child.close()
    finally:
        if child.isalive():
            child.close(force=True)
    assert exit_code(child) == piped.code
    assert ANSI.search(output), output
    assert b"\x1b[31m" in output  # red: the failures
    assert summary(on_terminal(output)) == piped.counts


def pdb_session(proj: PytestProject, program: str, *args: str,
                leave: str) -> tuple[int, bytes]:
    """Run on a PTY until ``(Pdb)``, print 1+1, then ``leave`` (c or q); exit status and
    everything written."""
    child = spawn(proj, program, *args, "tests/test_basic.py::test_fail_simple", "--pdb")
    try:
        child.expect(rb"\(Pdb\) ")
        seen = child.before + child.after
        child.sendline("p 1+1")
        child.expect(rb"\r\n2\r\n", timeout=10)
        seen += child.before + child.after
        child.expect(rb"\(Pdb\) ", timeout=10)
        child.sendline(leave)
        child.expect(pexpect.EOF)
        seen += child.before
        child.close()
        return exit_code(child), seen
    finally:
        if child.isalive():
            child.close(force=True)


@pytest.mark.parametrize(("leave", "code"), [("c", 1), ("q", 2)])
def test_pdb_on_terminal(fx: PytestProject, leave: str, code: int) -> None:
    expected_code, expected = pdb_session(fx, PYTEST, leave=leave)
    got_code, got = pdb_session(fx, ZEUS, "pytest", leave=leave)
    assert expected_code == code, expected
    assert got_code == expected_code, got
    for output in (expected, got):
        text = on_terminal(output)
        assert "entering PDB" in text, text
        assert "test_basic.py(" in text and "test_fail_simple()" in text, text
        assert ("Quitting debugger" in text) == (leave == "q"), text
        assert summary(text) == {"failed": 1}, text
    assert ANSI.search(got) and ANSI.search(expected)


# -- warnings -------------------------------------------------------------------------------------
def warnings_section(text: str) -> str:
    start = text.index("warnings summary")
    return text[start:text.index("-- Docs:", start)]


def test_no_rewrite_warnings(fx: PytestProject, baseline: Run) -> None:
    """Plugins preloaded in the phase were imported through pytest's rewrite hook: no run warns
    that they "cannot be rewritten", even where that warning is an error."""
    reset_cache(fx.root)
    got = zeus(fx)
    for text in (got.out, got.err):
        assert "PytestAssertRewriteWarning" not in text
        assert "cannot be rewritten" not in text
    assert warnings_section(got.out) == warnings_section(baseline.out)
    assert "UserWarning: fixture-project warning" in warnings_section(got.out)
    strict = zeus(fx, "-W", "error::pytest.PytestAssertRewriteWarning", "-p", "no:cacheprovider",
                  "-q", "tests/test_tmp.py")
    assert strict.code == 0, strict.out + strict.err
    assert strict.counts == {"passed": 2}


REWRITE_FILES = {
    "pyproject.toml": '[project]\nname = "rewriteproj"\nversion = "0.1"\n',
    "helpers/__init__.py": "",
    "helpers/checks.py": "def check_sum(a, b, total):\n    assert a + b == total\n",
    # What pytest's documentation recommends for helper modules with asserts.
    "conftest.py": (
        "import pytest\n\n"
        'pytest.register_assert_rewrite("helpers.checks")\n\n'
        "from helpers.checks import check_sum  # noqa: E402\n\n\n"
        "@pytest.fixture\n"
        "def checker():\n"
        "    return check_sum\n"
    ),
    "tests/test_checks.py": (
        "def test_checked(checker):\n"
        "    checker(1, 2, 4)\n\n\n"
        "def test_checked_ok(checker):\n"
        "    checker(1, 2, 3)\n"
    ),
}


@pytest.fixture
def rewrite_project(tmp_path: Path) -> Iterator[PytestProject]:
    root = tmp_path / "rewrite"
    for rel, text in REWRITE_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proj = PytestProject(root, new_mark())
    yield proj
    check_no_leaks(proj)


def test_conftest_registered_helper_is_rewritten(rewrite_project: PytestProject) -> None:
    proj = rewrite_project
    expected = plain(proj, "-p", "no:cacheprovider")
    assert expected.code == 1
    assert "assert (1 + 2) == 4" in expected.out
    with running_master(proj, *PHASES):
        got = zeus(proj, "-p", "no:cacheprovider")
    assert "cannot be rewritten" not in got.out + got.err
    assert_same(expected, got)
