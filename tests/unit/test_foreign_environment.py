"""`zeus start` names an interpreter that is not the project's environment (pipx, uv tool, another
venv active) in one line, with the fix, instead of leaving the user to decode import errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zeuspy.cli.start import foreign_environment


def test_the_active_venv_when_it_is_this_one(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    assert foreign_environment(tmp_path) is None


def test_another_active_venv_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    other = tmp_path / "other-venv"
    monkeypatch.setenv("VIRTUAL_ENV", str(other))
    line = foreign_environment(tmp_path)
    assert line is not None and "\n" not in line
    assert str(other) in line and sys.prefix in line
    assert f"{other}/bin/python -m pip install zeuspy" in line


def test_a_project_venv_that_is_not_this_one(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    line = foreign_environment(tmp_path)
    assert line is not None and str(tmp_path / ".venv") in line


def test_a_pipx_environment_without_a_project_venv(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / ".local/pipx/venvs/zeuspy"))
    line = foreign_environment(tmp_path)
    assert line is not None and "pipx or uv tool" in line
