"""A crashed phase never serves a stale crash (issue 10, item 5): a command issued right after the
fix is saved waits for the reboot and runs the fixed code, at the default file-change delay
(0.3 s), that is while the watcher's report of the save is still being gathered.

The project: ``boot`` imports ``mypkg`` (``mypkg/__init__.py``), ``app`` imports ``mypkg.leaf``;
``show`` (in ``app``) prints both values. These are commands of the plan file: they never run in
another phase, so a crash reaches the client as its error text and status 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.harness.master import Master, master_for
from tests.harness.project import Project, atomic_save, python_project
from tests.harness.waits import wait_for

#: Bound on a crash or a reboot being noticed (a boot here takes ~0.1 s).
CRASH_TIMEOUT = 10.0
#: pytest's installed plugins are not needed in test_environment (a faster boot).
QUICK_PYTEST = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}

PLAN = """
import zeuspy

class CrashPlan(zeuspy.Plan):
    def boot(self):
        import mypkg

    def app(self):
        import mypkg.leaf

    def show(self, argv):
        import mypkg, mypkg.leaf
        print(mypkg.VALUE, mypkg.leaf.LEAF)
"""

TREE: dict[str, Any] = {"boot": {"app": {"show": None}}}


@pytest.fixture
def proj(project: Project) -> Project:
    project.write(TREE, PLAN)
    (project.root / "mypkg").mkdir()
    (project.root / "mypkg" / "__init__.py").write_text("VALUE = 'root1'\n")
    (project.root / "mypkg" / "leaf.py").write_text("LEAF = 'leaf1'\n")
    return project


@contextmanager
def running(project: Project) -> Iterator[Master]:
    """A master at the default file-change delay, with both phases ready."""
    master = Master(project, ("--simple-status",))
    try:
        master.wait_ready("boot", "app")
        yield master
    finally:
        master.stop()


def state_lines(master: Master, phase: str, state: str) -> int:
    return len(re.findall(rf"^\d\d:\d\d:\d\d {re.escape(phase)}: {state}\b", master.output,
                          re.MULTILINE))


def wait_crashed(master: Master, phase: str, before: int) -> None:
    wait_for(lambda: state_lines(master, phase, "crashed") > before, CRASH_TIMEOUT,
             what=f"{phase} crashed\n{master.output[-2000:]}")


def show(project: Project) -> tuple[int, bytes, bytes]:
    result = project.run("show")
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("broken", ["syntax", "runtime"])
def test_a_command_right_after_the_fix_runs_the_fixed_code(proj: Project, broken: str) -> None:
    """Three rounds of break, crash, fix, and the command at once (no pause after the save)."""
    leaf = proj.root / "mypkg" / "leaf.py"
    bad = "LEAF = (\n" if broken == "syntax" else "raise RuntimeError('leaf broken')\n"
    with running(proj) as master:
        for round_ in range(3):
            crashes = state_lines(master, "app", "crashed")
            leaf.write_text(bad)
            wait_crashed(master, "app", crashes)
            status, out, err = show(proj)
            assert (status, out) == (1, b""), err
            assert (b"SyntaxError" if broken == "syntax" else b"leaf broken") in err, err
            leaf.write_text(f"LEAF = 'fixed{round_}'\n")
            assert show(proj) == (0, f"root1 fixed{round_}\n".encode(), b""), master.output


def test_a_crashed_root_is_not_served_stale_either(proj: Project) -> None:
    """boot crashed (no phase above it): the fix of its module, then the command at once."""
    init = proj.root / "mypkg" / "__init__.py"
    with running(proj) as master:
        crashes = state_lines(master, "boot", "crashed")
        init.write_text("VALUE = (\n")
        wait_crashed(master, "boot", crashes)
        status, out, err = show(proj)
        assert (status, out) == (1, b"") and b"SyntaxError" in err, err
        init.write_text("VALUE = 'root-fixed'\n")
        assert show(proj) == (0, b"root-fixed leaf1\n", b""), master.output


def test_a_touch_of_the_broken_file_serves_the_crash_without_a_reboot(proj: Project) -> None:
    """The stale check compares content: a save that changed nothing gets the crash at once."""
    leaf = proj.root / "mypkg" / "leaf.py"
    with running(proj) as master:
        # Saved whole, as editors save (write_text truncates, then writes: under load the
        # watcher can report the two apart, and the second is a real change).
        atomic_save(leaf, "LEAF = (\n")
        wait_crashed(master, "app", 0)
        boots = state_lines(master, "app", "booting")
        atomic_save(leaf, "LEAF = (\n")  # same bytes, new file
        status, out, err = show(proj)
        assert (status, out) == (1, b"") and b"SyntaxError" in err, err
        assert state_lines(master, "app", "booting") == boots, master.output


def test_a_fix_in_a_file_named_only_by_the_traceback(proj: Project) -> None:
    """leaf imports a helper that raises: the helper is known only from the crash's traceback."""
    helper = proj.root / "mypkg" / "helper.py"
    with running(proj) as master:
        helper.write_text("raise RuntimeError('helper broken')\n")
        (proj.root / "mypkg" / "leaf.py").write_text("import mypkg.helper\nLEAF = 'helped'\n")
        wait_crashed(master, "app", 0)
        status, _, err = show(proj)
        assert status == 1 and b"helper broken" in err, err
        helper.write_text("OK = 'now fine'\n")
        assert show(proj) == (0, b"root1 helped\n", b""), master.output


# -- the built-in plan: boot stays up without the broken package ------------------------------

PYPROJECT = '[project]\nname = "demo"\nversion = "0.1"\n'


def test_builtin_plan_fix_of_the_package_then_a_command_at_once(tmp_path: Path) -> None:
    """No preload list: boot leaves the broken package to app, which crashes; the fix, saved,
    restarts boot (it tracked the files of the error) and a command issued at once runs in the
    rebooted app, with the fixed package and no note."""
    files = {"pyproject.toml": PYPROJECT, "mypkg/__init__.py": "VALUE = (\n"}
    code = "import mypkg; print(mypkg.VALUE)"
    with python_project(tmp_path / "builtin", files, QUICK_PYTEST) as project, \
            master_for(project, "boot", "crashed:app") as master:
        assert "zeus: not preloading 'mypkg'" in project.log, project.log
        crashed = project.zeus("run", "-c", code)
        assert crashed.returncode == 1 and crashed.stdout == b"", crashed
        assert b"running run in phase boot" in crashed.stderr, crashed
        (project.root / "mypkg" / "__init__.py").write_text("VALUE = 'fixed'\n")
        fixed = project.zeus("run", "-c", code)
        assert (fixed.returncode, fixed.stdout, fixed.stderr) == (0, b"fixed\n", b""), \
            (fixed, master.output)
        assert master.output.count("boot: ready") == 2, master.output
