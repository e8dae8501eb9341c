"""The rewritten test modules the test_environment phase holds (zeuspy.plans.pytest_rewrite):
taken only for a file whose bytes are those the code was made from, with the same
``enable_assertion_pass_hook``, and then the run is plain pytest's to the byte.

Every process of the module (the master, plain pytest, zeus pytest) runs with
PYTHONDONTWRITEBYTECODE=1 unless a test says otherwise: pytest keeps no ``__pycache__`` file, so
it rewrites every module in every run, and the phase is taught the files. The root conftest.py
writes, in a zeus run, the names of the files whose held code the command took
(``pytest_rewrite.taken``) to the file named by REWRITE_PROBE; a plain run writes nothing.

The changes: a test file's edit that keeps its size and modification time, the pass-hook setting
(``-o enable_assertion_pass_hook=true``, with a hook that prints each passing assert), a file
that does not compile, a file whose rewrite warns (every run must warn, and fail under ``-W
error``), and a run that writes ``__pycache__`` files (the phase is not taught). And the phase,
once it has handled its lessons, forks its spare again.

With a pytest whose rewrite the phase cannot hold (tests.harness.pytest_api: before pytest 9.2)
the documented fallback is asserted instead: no command takes held code, every module is
rewritten by pytest itself, and each run is still plain pytest's.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.test_pytest_plan import (
    PHASES,
    PytestProject,
    Run,
    assert_same,
    check_no_leaks,
    plain,
    reset_cache,
    zeus,
)
from tests.e2e.test_pytest_warm import phase_pid
from tests.harness import pytest_api
from tests.harness.master import running_master
from tests.harness.processes import new_mark, parent_of, titled
from tests.harness.project import write_files
from tests.harness.waits import wait_for

#: Bound of waiting for the phase to hold a file (it rewrites it once the teaching command ends).
HELD_TIMEOUT = 30.0
#: How long a test gives the phase to learn what it must not have learned.
SETTLE = 1.0
#: Bound of waiting for the phase's spare (due 15 ms after a request, once no lesson waits).
SPARE_TIMEOUT = 10.0
#: Whether the phase can hold rewritten modules with this pytest (else pytest rewrites each).
HELD = "held-rewrites" not in pytest_api.MISSING

FILES = {
    "pyproject.toml": """
        [project]
        name = "rewriteproj"
        version = "0.1"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """,
    "conftest.py": """
        import os
        import sys


        def pytest_unconfigure(config):
            held = sys.modules.get("zeuspy.plans.pytest_rewrite")
            target = os.environ.get("REWRITE_PROBE")
            if held is not None and target:
                with open(target, "w") as probe:
                    probe.write("\\n".join(os.path.relpath(path) for path in held.taken))


        def pytest_assertion_pass(item, lineno, orig, expl):
            print(f"assert passed: {orig}")
        """,
    "tests/conftest.py": """
        import pytest


        @pytest.fixture
        def checked():
            value = {"a": 1}
            assert value["a"] == 1
            return value
        """,
    "tests/test_sample.py": """
        def test_list():
            assert [1, 2, 3] == [1, 2, 4]


        def test_fixture(checked):
            assert checked == {"a": 1}
        """,
}
SAMPLE = os.path.join("tests", "test_sample.py")
NESTED_CONFTEST = os.path.join("tests", "conftest.py")


class RewriteProject(PytestProject):
    """Every process gets PYTHONDONTWRITEBYTECODE=1 (unless ``bytecode``) and REWRITE_PROBE."""

    def __init__(self, root: Path, mark: str) -> None:
        super().__init__(root, mark)
        self.probe = root.parent / "probe.txt"

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(REWRITE_PROBE=str(self.probe), PYTHONDONTWRITEBYTECODE="1", **extra)

    def env_writing_bytecode(self) -> dict[str, str]:
        env = self.env()
        del env["PYTHONDONTWRITEBYTECODE"]
        return env


@contextmanager
def extra_files(proj: RewriteProject, files: dict[str, str]) -> Iterator[list[str]]:
    """``files`` written into the project for a test (their paths, with the platform's
    separator, as the probe writes them), removed after it."""
    write_files(proj.root, files)
    try:
        yield [os.path.normpath(rel) for rel in files]
    finally:
        for rel in files:
            (proj.root / rel).unlink(missing_ok=True)


def drop_pycache(root: Path) -> None:
    for folder in root.rglob("__pycache__"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RewriteProject]:
    project = RewriteProject(tmp_path_factory.mktemp("pytest_rewrite") / "proj", new_mark())
    write_files(project.root, FILES)
    try:
        with running_master(project, *PHASES):
            yield project
    finally:
        check_no_leaks(project)


def zeus_taken(proj: RewriteProject, *args: str, bytecode: bool = False) -> tuple[Run, set[str]]:
    """``zeus pytest ARGS`` and the files whose held code its command took."""
    reset_cache(proj.root)
    proj.probe.unlink(missing_ok=True)
    got = zeus(proj, *args, env=proj.env_writing_bytecode() if bytecode else proj.env())
    taken = proj.probe.read_text().split("\n") if proj.probe.exists() else []
    return got, {path for path in taken if path}


def compare(proj: RewriteProject, *args: str) -> tuple[Run, set[str]]:
    """Plain pytest, then zeus pytest, with ``args``; asserts they match."""
    reset_cache(proj.root)
    proj.probe.unlink(missing_ok=True)
    expected = plain(proj, *args, env=proj.env())
    assert not proj.probe.exists()
    got, taken = zeus_taken(proj, *args)
    assert_same(expected, got)
    return got, taken


def wait_held(proj: RewriteProject, *args: str, files: set[str]) -> None:
    """Run ``zeus pytest ARGS`` until its command takes held code for every one of ``files``.
    Where the phase cannot hold them (not :data:`HELD`), the fallback instead: a command that
    teaches them, then, once the phase had :data:`SETTLE` to learn, one that takes nothing."""
    if HELD:
        wait_for(lambda: files <= zeus_taken(proj, *args)[1], HELD_TIMEOUT, interval=0.2,
                 what=f"the phase to hold {sorted(files)}")
        return
    zeus_taken(proj, *args)
    time.sleep(SETTLE)
    _, taken = zeus_taken(proj, *args)
    assert not taken, taken


def assert_took(taken: set[str], files: set[str]) -> None:
    """The command took the held code of ``files``; where the phase holds none (not
    :data:`HELD`), it took nothing at all."""
    if HELD:
        assert files <= taken, (sorted(files), sorted(taken))
    else:
        assert not taken, taken


def test_held_code_is_taken_and_the_run_is_pytests(proj: RewriteProject) -> None:
    got, _ = compare(proj)
    assert got.code == 1 and got.counts == {"failed": 1, "passed": 1}, got.out
    wait_held(proj, files={SAMPLE, NESTED_CONFTEST, "conftest.py"})
    got, taken = compare(proj)
    assert_took(taken, {SAMPLE, NESTED_CONFTEST, "conftest.py"})
    assert "At index 2 diff: 3 != 4" in got.out  # rewritten (from the held code where HELD)
    assert "assert passed" not in got.out


def test_an_edit_that_keeps_size_and_mtime_is_not_taken(proj: RewriteProject) -> None:
    wait_held(proj, files={SAMPLE})
    path = proj.root / SAMPLE
    before = path.stat()
    text = path.read_text()
    edited = text.replace("[1, 2, 3] == [1, 2, 4]", "[1, 2, 3] == [1, 2, 5]")
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    got, taken = compare(proj)
    assert SAMPLE not in taken
    assert "At index 2 diff: 3 != 5" in got.out, got.out
    wait_held(proj, files={SAMPLE})  # the phase learned the new bytes
    got, taken = compare(proj)
    assert_took(taken, {SAMPLE})
    assert "At index 2 diff: 3 != 5" in got.out


def test_the_pass_hook_setting_is_part_of_what_is_held(proj: RewriteProject) -> None:
    wait_held(proj, files={SAMPLE})
    args = ("-s", "-o", "enable_assertion_pass_hook=true", SAMPLE)
    got, taken = compare(proj, *args)
    assert SAMPLE not in taken
    assert 'assert passed: checked == {"a": 1}' in got.out, got.out
    wait_held(proj, *args, files={SAMPLE})
    got, taken = compare(proj, *args)
    assert_took(taken, {SAMPLE})
    assert 'assert passed: checked == {"a": 1}' in got.out
    got, taken = compare(proj, "-s", SAMPLE)  # the other setting's code is still held
    assert_took(taken, {SAMPLE})
    assert "assert passed" not in got.out


def test_a_file_that_does_not_compile_is_pytests_error_every_time(proj: RewriteProject) -> None:
    with extra_files(proj, {"tests/test_broken.py": "def test_broken(:\n    pass\n"}) as (broken,):
        for _ in range(2):
            got, taken = compare(proj, broken)
            assert got.code == 2 and "SyntaxError" in got.out, got.out
            assert broken not in taken
            time.sleep(SETTLE)


def test_a_file_whose_rewrite_warns_warns_in_every_run(proj: RewriteProject) -> None:
    with extra_files(proj, {"tests/test_warns.py": """
            def test_tuple():
                assert (1, "always true")
            """}) as (warns,):
        for _ in range(3):
            got, taken = compare(proj, warns)
            assert got.code == 0 and "PytestAssertRewriteWarning" in got.out, got.out
            assert warns not in taken
            got, _ = compare(proj, "-W", "error::pytest.PytestAssertRewriteWarning", warns)
            assert got.code == 2, got.out
            time.sleep(SETTLE / 2)


# Only about lessons the phase learns: where it holds nothing, a refused lesson keeps the spare.
@pytest_api.needs("held-rewrites")
def test_the_phase_forks_its_spare_after_its_lessons(proj: RewriteProject) -> None:
    """Lessons that each take longer than the spare's delay, then the spare is back."""
    big = "def test_big():\n    x = 1\n" + "    assert x == 1, 'one'\n" * 1500
    with extra_files(proj, {f"tests/test_big_{i}.py": big for i in range(3)}) as names:
        phase = phase_pid(proj)
        assert phase is not None
        got, taken = zeus_taken(proj, *names)  # teaches the three; no request after it
        assert got.code == 0 and not taken & set(names), got.out

        def spares() -> set[int]:
            return {pid for pid in titled(proj, "zeus command: (ready)")
                    if parent_of(pid) == phase}

        # The spare forked while the command ran goes with the first lesson; a new one must
        # come once the last is handled, with no request to ask for it.
        before = spares()
        wait_for(lambda: spares() - before, SPARE_TIMEOUT, interval=0.05,
                 what="a new spare of test_environment after its lessons")
        wait_held(proj, *names, files=set(names))


def test_a_run_that_keeps_pycache_files_teaches_nothing(proj: RewriteProject) -> None:
    kept_file = {"tests/test_kept.py": "def test_kept():\n    assert 1 + 1 == 2\n"}
    try:
        with extra_files(proj, kept_file) as (kept,):
            for _ in range(2):
                got, taken = zeus_taken(proj, kept, bytecode=True)
                assert got.code == 0 and kept not in taken, got.out
            assert list((proj.root / "tests" / "__pycache__").glob("test_kept.*pytest*.pyc"))
            time.sleep(SETTLE)
            drop_pycache(proj.root)
            got, taken = zeus_taken(proj, kept)
            assert got.code == 0 and kept not in taken  # the phase was not taught it
    finally:
        drop_pycache(proj.root)
