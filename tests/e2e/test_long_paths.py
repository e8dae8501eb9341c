"""A project whose socket path is longer than the OS allows still gets a private socket."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.helpers import Master, Project, leftover_processes, wait_for
from zeuspy import paths


def test_long_project_path_uses_a_private_runtime_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    project = Project(deep, "long-" + os.urandom(4).hex()).write()
    env_backup = os.environ.get("XDG_RUNTIME_DIR")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
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
        wait_for(lambda: not leftover_processes(project.mark), timeout=5,
                 what="no process of the test left")
    finally:
        if env_backup is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = env_backup
