"""master/fallback.py: which commands run in an ancestor of a crashed phase, which ancestor, and
the one line that says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zeuspy import config
from zeuspy.master import fallback
from zeuspy.master.tree import PhaseProcess, PhaseState, ProcessTree
from zeuspy.plans import PythonPlan

S = PhaseState
CHAINED = """\
Traceback (most recent call last):
  File "/p/mypkg/__init__.py", line 1
    def broken(
              ^
SyntaxError: '(' was never closed

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/venv/zeuspy/plans/python.py", line 30, in import_modules
zeuspy.plans.python.PreloadError: phase app could not import 'mypkg' (long hint): it broke"""


def project(tmp_path: Path, plan: dict[str, Any], plan_file: str | None = None,
            **extra: Any) -> config.Config:
    (tmp_path / "zeus.json").write_text(json.dumps({"plan": plan, **extra}))
    if plan_file is not None:
        (tmp_path / "zeus_plan.py").write_text(plan_file)
    return config.load(tmp_path / "zeus.json")


def test_the_builtin_commands_are_the_built_in_plans_commands() -> None:
    assert {"run", "shell", "pytest", "manage", "runserver", "test"} == fallback.BUILTIN_COMMANDS


def test_every_command_of_a_built_in_plan_falls_back(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    builtin = config.load_builtin(tmp_path)
    assert builtin.builtin == "python"
    for command in builtin.commands:
        assert fallback.may_fall_back(builtin, command), command


def test_a_plan_file_falls_back_only_for_inherited_builtin_commands(tmp_path: Path) -> None:
    plan_file = (
        "from zeuspy.plans import PythonPlan\n\n\n"
        "class Plan(PythonPlan):\n"
        "    def pytest(self, argv):\n"
        "        return super().pytest(argv)\n\n"
        "    def greet(self, argv):\n"
        "        print('hi')\n")
    tree = json.loads(json.dumps(PythonPlan.TREE))
    tree["boot"]["app"]["greet"] = None
    cfg = project(tmp_path, tree, plan_file)
    assert fallback.may_fall_back(cfg, "run")  # inherited from PythonPlan
    assert fallback.may_fall_back(cfg, "shell")
    assert not fallback.may_fall_back(cfg, "pytest")  # overridden: the plan file's own
    assert not fallback.may_fall_back(cfg, "greet")  # not a built-in command at all


def test_a_legacy_shim_never_falls_back(tmp_path: Path) -> None:
    cfg = project(tmp_path, {"boot": {"app": {"run": None}}}, command="ruby shim.rb")
    assert not cfg.uses_python_shim
    assert not fallback.may_fall_back(cfg, "run")


def test_an_unreadable_plan_file_does_not_fall_back(tmp_path: Path) -> None:
    cfg = project(tmp_path, {"boot": {"app": {"run": None}}},
                  "import zeuspy\n\nclass P(zeuspy.Plan):\n    def boot(self): pass\n"
                  "    def app(self): pass\n    def run(self, argv): pass\n")
    assert cfg.plan_file is not None
    cfg.plan_file.write_text("class (:\n")  # saved broken after the master read it
    assert fallback.defined_in(cfg.plan_file, "run") is None
    assert not fallback.may_fall_back(cfg, "run")


@pytest.fixture
def tree(tmp_path: Path) -> ProcessTree:
    return ProcessTree(project(tmp_path, {"boot": {"app": {"test_environment": {"t": None}}}},
                               command="true"))


def boot_to(tree: ProcessTree, name: str, state: PhaseState, extensions: bool = True) -> None:
    phase = tree.phases[name]
    tree.transition(phase, S.BOOTING)
    tree.transition(phase, state)
    if state is S.READY:
        phase.process = PhaseProcess(1, None, extensions=extensions)  # type: ignore[arg-type]


def test_the_nearest_ready_ancestor_runs_it(tree: ProcessTree) -> None:
    boot_to(tree, "boot", S.READY)
    boot_to(tree, "app", S.READY)
    boot_to(tree, "test_environment", S.CRASHED)
    assert fallback.fallback_phase(tree.phases["test_environment"]) is tree.phases["app"]


def test_no_ancestor_or_a_legacy_shim_means_no_fallback(tree: ProcessTree) -> None:
    boot_to(tree, "boot", S.CRASHED)
    assert fallback.fallback_phase(tree.phases["boot"]) is None
    tree.transition(tree.phases["boot"], S.UNBOOTED)
    boot_to(tree, "boot", S.READY, extensions=False)
    boot_to(tree, "app", S.CRASHED)
    assert fallback.fallback_phase(tree.phases["app"]) is None


def test_the_note_is_one_line_with_the_root_cause(tree: ProcessTree) -> None:
    app = tree.phases["app"]
    app.error = CHAINED
    assert fallback.note(app, "pytest", tree.phases["boot"]) == (
        "zeus: phase app crashed (SyntaxError: '(' was never closed); running pytest in phase "
        "boot\n")


def test_a_long_reason_is_cut(tree: ProcessTree) -> None:
    app = tree.phases["app"]
    app.error = "RuntimeError: " + "x" * 500
    line = fallback.note(app, "run", tree.phases["boot"])
    assert line.count("\n") == 1 and line.endswith("...); running run in phase boot\n")
    assert len(line) < fallback.NOTE_REASON_LIMIT + 80
    app.error = None
    assert "(no error text)" in fallback.note(app, "run", tree.phases["boot"])
