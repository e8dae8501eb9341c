"""Which project a client talks to (paths.master_root), and which built-in a typo meant
(suggest.near)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from zeuspy import cli, paths, suggest

BUILTINS = cli.RESERVED


def root_of(folder: Path) -> Path:
    return Path(os.fsdecode(paths.master_root(os.fsencode(folder))))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """repo/pyproject.toml, repo/vendor/lib/setup.py, and repo/vendor/lib/sub/deep."""
    (tmp_path / "repo" / "vendor" / "lib" / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    (tmp_path / "repo" / "vendor" / "lib" / "setup.py").write_text("")
    return tmp_path / "repo"


def test_without_a_master_the_nearest_marker(tree: Path) -> None:
    deep = tree / "vendor" / "lib" / "sub" / "deep"
    assert root_of(deep) == tree / "vendor" / "lib"
    assert root_of(tree / "vendor") == tree
    assert paths.master_root(os.fsencode(deep)) == paths.project_root(os.fsencode(deep))


def test_a_master_socket_above_a_marker_wins(tree: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(tree / ".zeus.sock"))
        assert root_of(tree / "vendor" / "lib" / "sub" / "deep") == tree
        # `zeus start` keeps its project: the nearest marker.
        assert paths.project_root(os.fsencode(tree / "vendor" / "lib")) == \
            os.fsencode(tree / "vendor" / "lib")
    finally:
        listener.close()


def test_a_regular_file_named_like_the_socket_is_no_master(tree: Path) -> None:
    (tree / ".zeus.sock").write_text("")
    assert root_of(tree / "vendor" / "lib" / "sub") == tree / "vendor" / "lib"


def test_a_pid_file_marks_a_master_whose_socket_is_elsewhere(tree: Path) -> None:
    (tree / ".zeus").mkdir()
    (tree / ".zeus" / "master.pid").write_text("1\n")
    assert root_of(tree / "vendor" / "lib" / "sub") == tree


def test_zeus_json_still_comes_first(tree: Path) -> None:
    (tree / ".zeus").mkdir()
    (tree / ".zeus" / "master.pid").write_text("1\n")
    (tree / "vendor" / "zeus.json").write_text("{}")
    assert root_of(tree / "vendor" / "lib" / "sub") == tree / "vendor"


def test_the_pid_file_lives_in_the_state_folder() -> None:
    assert paths.pid_path(b"/p") == b"/p/.zeus/master.pid"
    assert paths.legacy_pid_path(b"/p") == b"/p/.zeus.pid"


@pytest.mark.parametrize(("typed", "meant"), [
    ("staus", ["status"]), ("stauts", ["status"]), ("Status", ["status"]), ("stpo", ["stop"]),
    ("restrat", ["restart"]), ("comands", ["commands"]), ("inti", ["init"]),
    ("verison", ["version"]), ("hepl", ["help"]), ("stat", ["start", "status"]),
    ("res", ["restart"]), ("comnads", ["commands"]),
    # a plan's own command names are not typos
    ("shell", []), ("test", []), ("run", []), ("pytest", []), ("manage", []), ("st", []),
])
def test_near(typed: str, meant: list[str]) -> None:
    assert suggest.near(typed, BUILTINS) == meant


def test_distance() -> None:
    assert suggest.distance("staus", "status") == 1
    assert suggest.distance("stpo", "stop") == 1  # a swap is one edit
    assert suggest.distance("", "stop") == 4
    assert suggest.distance("kitten", "sitting") == 3
