"""tests/harness/parallel.py's table of serial tests names tests that exist: a renamed test
would otherwise silently join `make test`'s parallel pass."""

from __future__ import annotations

import ast

import pytest

from tests.harness.parallel import REPOSITORY, SERIAL, is_serial


def _test_names(path: str) -> set[str]:
    tree = ast.parse((REPOSITORY / path).read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


@pytest.mark.parametrize("key", sorted(SERIAL))
def test_every_entry_names_something_that_exists(key: str) -> None:
    path, _, test = key.partition("::")
    assert (REPOSITORY / path).exists(), f"{path} does not exist"
    if test:
        assert test in _test_names(path), f"{path} has no test {test}"
    assert SERIAL[key].strip(), "every entry says why"


def test_is_serial_matches_files_folders_and_tests() -> None:
    assert is_serial("stress/test_soak.py::test_x")
    assert is_serial("tests/e2e/test_reload.py::test_anything[param]")
    assert is_serial("tests/unit/test_watchers.py::test_stop_returns_promptly[polling]")
    assert not is_serial("tests/unit/test_watchers.py::test_something_else")
    assert not is_serial("tests/e2e/test_reload_more.py::test_x")
