"""A project whose socket path is longer than the OS allows still gets a private socket."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.harness.master import Master
from tests.harness.processes import check_no_leftovers, new_mark
from tests.harness.project import Project, short_folder
from zeuspy import paths


def test_long_project_path_uses_a_private_runtime_socket(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    project = Project(deep, new_mark()).write()
    with short_folder() as runtime:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # the Master helper takes os.environ
        expected = os.fsdecode(paths.socket_path(os.fsencode(deep)))
        assert expected.startswith(str(runtime / "zeuspy") + "/")
        assert len(expected) <= paths.MAX_SOCKET_PATH
        master = Master(project)
        try:
            master.wait_ready("boot", "app")
            result = project.run("hello", "deep", env=project.env(XDG_RUNTIME_DIR=str(runtime)))
            assert (result.returncode, result.stdout) == (0, b"hello deep\n"), result.stderr
            folder = os.stat(runtime / "zeuspy")
            assert stat.S_IMODE(folder.st_mode) == 0o700
            assert stat.S_IMODE(os.stat(expected).st_mode) == 0o600
        finally:
            assert master.stop() == 0
        assert not os.path.exists(expected)
        check_no_leftovers(deep, mark=project.mark)
