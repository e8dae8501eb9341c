"""The built-in plans as the master sees them: project discovery, [tool.zeus], the plan chosen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zeuspy import config, paths, plan
from zeuspy.errors import ConfigError
from zeuspy.plans import BUILTIN, DjangoPlan, PythonPlan, project

MANAGE = 'import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n'


def make(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_own_packages_src_layout_first_and_skips(tmp_path: Path) -> None:
    make(tmp_path, {"src/alpha/__init__.py": "", "beta/__init__.py": "",
                    "tests/__init__.py": "", "docs/__init__.py": "", "_private/__init__.py": "",
                    "not-a-name/__init__.py": "", "plain/readme.txt": "", "single.py": ""})
    assert project.own_packages(tmp_path) == ["alpha", "beta"]


def test_put_on_path_puts_root_before_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    monkeypatch.setattr("sys.path", ["/elsewhere", str(tmp_path)])
    project.put_on_path(tmp_path)
    import sys

    assert sys.path == [str(tmp_path), str(tmp_path / "src"), "/elsewhere"]


def test_django_settings_from_manage_py(tmp_path: Path) -> None:
    assert project.django_settings(tmp_path) is None
    make(tmp_path, {"manage.py": MANAGE})
    assert project.django_settings(tmp_path) == "mysite.settings"


@pytest.mark.parametrize(("toml", "expected"), [
    ("", project.ToolSettings()),
    ("[project]\nname='x'\n", project.ToolSettings()),
    ('[tool.zeus]\npreload = ["numpy"]\n', project.ToolSettings(preload=("numpy",))),
    ('[tool.zeus]\npreload = []\napp = ["a.b"]\nboot_env = ["MODE"]\n',
     project.ToolSettings(preload=(), app=("a.b",), boot_env=("MODE",))),
])
def test_tool_settings(tmp_path: Path, toml: str, expected: project.ToolSettings) -> None:
    if toml:
        make(tmp_path, {"pyproject.toml": toml})
    assert project.tool_settings(tmp_path) == expected


@pytest.mark.parametrize(("toml", "message"), [
    ('[tool.zeus]\npreload = "numpy"\n', "preload must be a list of strings"),
    ("[tool.zeus]\npreload = [1]\n", "preload must be a list of strings"),
    ("[tool.zeus]\nwhat = 1\n", "unknown key(s) in [tool.zeus]: what"),
    ("[tool.zeus\n", "invalid TOML"),
])
def test_tool_settings_errors_name_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    make(tmp_path, {"pyproject.toml": toml})
    with pytest.raises(ConfigError) as caught:
        project.tool_settings(tmp_path)
    assert message in str(caught.value)
    assert str(tmp_path / "pyproject.toml") in str(caught.value)


def test_project_root_prefers_zeus_json_then_nearest_marker(tmp_path: Path) -> None:
    deep = tmp_path / "repo" / "pkg" / "sub"
    deep.mkdir(parents=True)
    assert paths.project_root(os.fsencode(deep)) == os.fsencode(deep)  # nothing: the cwd
    make(tmp_path, {"repo/setup.cfg": "", "repo/pkg/manage.py": MANAGE})
    assert paths.project_root(os.fsencode(deep)) == os.fsencode(tmp_path / "repo" / "pkg")
    make(tmp_path, {"repo/zeus.json": "{}"})
    assert paths.project_root(os.fsencode(deep)) == os.fsencode(tmp_path / "repo")


def test_discover_uses_the_builtin_python_plan(tmp_path: Path) -> None:
    make(tmp_path, {"pyproject.toml": "[project]\nname='x'\n", "sub/x.txt": ""})
    found = config.discover(tmp_path / "sub")
    assert found.builtin == "python"
    assert found.root == tmp_path
    assert found.command[-1] == BUILTIN["python"]
    assert found.command[1:3] == ("-m", "zeuspy.shim")
    assert found.plan_file is None
    assert list(found.phases) == ["boot", "app", "test_environment"]
    assert found.resolve("python").name == "run"  # type: ignore[union-attr]
    assert found.resolve("test").name == "pytest"  # type: ignore[union-attr]
    assert any("no zeus.json" in w and "zeus init" in w for w in found.warnings)


def test_discover_uses_the_django_plan_for_manage_py(tmp_path: Path) -> None:
    make(tmp_path, {"manage.py": MANAGE})
    found = config.discover(tmp_path)
    assert found.builtin == "django"
    assert list(found.phases) == ["boot", "django", "test_environment"]
    assert set(found.commands) == {"manage", "runserver", "shell", "run", "test", "pytest"}


def test_a_django_project_one_folder_down_is_pointed_out(tmp_path: Path) -> None:
    make(tmp_path, {"pyproject.toml": "", "backend/manage.py": MANAGE})
    found = config.discover(tmp_path)
    assert found.builtin == "python"
    assert any("backend/manage.py is a Django project" in w for w in found.warnings)


def test_reload_switches_to_a_zeus_json_once_written(tmp_path: Path) -> None:
    make(tmp_path, {"pyproject.toml": ""})
    builtin = config.discover(tmp_path)
    make(tmp_path, {"zeus.json": '{"command": "x", "plan": {"boot": {"go": null}}}'})
    again = config.reload(builtin)
    assert again.builtin is None and list(again.commands) == ["go"]


@pytest.mark.parametrize("cls", [PythonPlan, DjangoPlan])
def test_builtin_trees_are_valid_and_every_node_has_a_method(tmp_path: Path, cls: type) -> None:
    path = tmp_path / "zeus.json"
    import json

    path.write_text(json.dumps({"plan": cls.TREE}))
    make(tmp_path, {"zeus_plan.py": f"from zeuspy.plans import {cls.__name__}\n\n"
                                    f"class Plan({cls.__name__}):\n    pass\n"})
    loaded = config.load(path)  # the static plan-file check resolves the built-in base
    for node in [*loaded.phases, *loaded.commands]:
        assert callable(getattr(cls, plan.method_name(node))), node


def test_after_fork_hooks_run_in_order_before_the_method() -> None:
    calls: list[str] = []

    class Mine(plan.Plan):
        def after_fork(self) -> None:
            calls.append("method")

    first = plan.after_fork(lambda: calls.append("first"))
    plan.after_fork(lambda: calls.append("second"))
    try:
        plan.run_after_fork(Mine())
    finally:
        del plan._after_fork_hooks[-2:]
    assert calls == ["first", "second", "method"]
    assert callable(first)


def test_boot_variables_include_defaults_and_the_plans_own() -> None:
    class Mine(plan.Plan):
        boot_env = ("MODE", "PYTHONPATH")

    assert plan.boot_variables(Mine()) == (*plan.DEFAULT_BOOT_ENV, "MODE")
    assert plan.DEFAULT_BOOT_ENV[:2] == ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
