"""One settings registry (zeuspy/settings.py): the README's table, `zeus start`'s flags and what
zeus.json and [tool.zeus] accept all come from it, and a value is taken from the flag, else the
environment, else zeus.json, else [tool.zeus], else the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zeuspy import config, settings
from zeuspy.cli import start
from zeuspy.errors import ConfigError
from zeuspy.plans import project

REPO = Path(__file__).resolve().parents[2]
#: A valid value of each setting as TOML and JSON write it.
SAMPLES = {"autostart": True, "idle_timeout": 30, "file_change_delay": 0.5, "poll": 2,
           "simple_status": True, "no_color": True, "log": "trace.log", "preload": ["json"],
           "app": ["mypkg"], "boot_env": ["MODE"], "learn_imports": False}


def toml_value(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def test_the_readme_table_is_the_registry() -> None:
    assert settings.markdown_table() in (REPO / "README.md").read_text()


def test_every_setting_has_a_sample() -> None:
    assert set(SAMPLES) == set(settings.BY_NAME)


def test_every_setting_is_accepted_in_tool_zeus(tmp_path: Path) -> None:
    lines = "".join(f"{name} = {toml_value(value)}\n" for name, value in SAMPLES.items())
    (tmp_path / "pyproject.toml").write_text(f"[tool.zeus]\n{lines}")
    values = project.tool_settings(tmp_path).values
    assert set(values) == set(settings.BY_NAME)
    assert values["log"] == "trace.log" and values["poll"] == 2.0


@pytest.mark.parametrize("name", [s.name for s in settings.SETTINGS if s.json_key])
def test_a_wrong_value_is_one_line_naming_the_key(tmp_path: Path, name: str) -> None:
    (tmp_path / "zeus.json").write_text(json.dumps({"plan": {"boot": {}}, name: [[]]}))
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path / "zeus.json")
    assert caught.value.message.startswith(f'{tmp_path / "zeus.json"}: "{name}" must be ')
    assert "\n" not in caught.value.message


def test_every_visible_flag_is_in_start_help() -> None:
    text = start.parser().format_help()
    for setting in settings.SETTINGS:
        if setting.flag is not None and not setting.hidden:
            assert setting.flag in text, setting.name


def test_the_first_place_that_gives_a_value_wins(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.zeus]\nfile_change_delay = 0.7\npoll = 5\nsimple_status = true\n"
        "no_color = false\n")
    (tmp_path / "zeus.json").write_text(json.dumps(
        {"plan": {"boot": {}}, "poll": 4, "no_color": False}))
    (tmp_path / "zeus_plan.py").write_text(
        "import zeuspy\nclass P(zeuspy.Plan):\n    def boot(self): pass\n")
    plan = config.load(tmp_path / "zeus.json")
    monkeypatch.delenv("NO_COLOR", raising=False)
    values = start.resolve(start.parser().parse_args([]), plan)
    assert values["file_change_delay"] == 0.7  # [tool.zeus]
    assert values["poll"] == 4.0  # zeus.json over [tool.zeus]
    assert values["simple_status"] is True
    assert values["no_color"] is False
    assert values["log"] is None  # the default
    monkeypatch.setenv("NO_COLOR", "1")
    values = start.resolve(start.parser().parse_args(["--poll", "--file-change-delay", "0"]),
                           plan)
    assert values["no_color"] is True  # the environment over the files
    assert values["poll"] == 1.0  # the flag, without a value
    assert values["file_change_delay"] == 0.0
