"""plans/pytest_rewrite.py's phase side: what a lesson must be for the phase to hold a file's
rewritten code, and the bounds (the end-to-end behaviour is in tests/e2e/test_pytest_rewrite.py).
pytest's own rewrite function is used, never installed over this process's pytest."""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import Any

import pytest
from _pytest.assertion import rewrite

from zeuspy.plans import pytest_rewrite

SOURCE = "def test_x():\n    assert [1] == [2]\n"


@pytest.fixture(autouse=True)
def phase(monkeypatch: pytest.MonkeyPatch) -> None:
    """A phase's state: pytest's function as the rewrite, nothing held."""
    monkeypatch.setattr(pytest_rewrite, "_rewrite", rewrite._rewrite_test)
    monkeypatch.setattr(pytest_rewrite, "_held", {})
    monkeypatch.setattr(pytest_rewrite, "_held_bytes", 0)


def test_a_file_is_held_as_pytest_rewrites_it(tmp_path: Path) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(SOURCE)
    assert pytest_rewrite.learn(f"0 {path}")
    held = pytest_rewrite._held[(str(path), False)]
    setting: Any = pytest_rewrite._PassHookSetting(False)
    _, code = rewrite._rewrite_test(path, setting)
    assert held.source == SOURCE.encode()
    assert marshal.dumps(held.code) == marshal.dumps(code)  # pytest's code, to the byte
    assert "@pytest_ar" in held.code.co_names  # the asserts are rewritten
    assert not pytest_rewrite.learn(f"0 {path}")  # the same bytes again: nothing new
    assert pytest_rewrite.learn(f"1 {path}")  # the other setting is held beside it
    with_hook = pytest_rewrite._held[(str(path), True)].code
    assert marshal.dumps(with_hook) != marshal.dumps(held.code)
    assert pytest_rewrite._held_bytes == 2 * len(SOURCE)


@pytest.mark.parametrize("payload", [
    "", "0", "2 /x/test_a.py", "0 relative/test_a.py", "0 /x/test_a.txt", "0 /x/../x/test_a.py",
    "0 /no/such/folder/test_a.py", "true /x/test_a.py",
])
def test_malformed_lessons_are_refused(payload: str) -> None:
    assert not pytest_rewrite.learn(payload)
    assert pytest_rewrite._held == {}


@pytest.mark.parametrize("text", [
    pytest.param("def test_bad(:\n", id="syntax-error"),
    pytest.param("x = 1\x00\n", id="null-byte"),
    pytest.param("def test_t():\n    assert (1, 'always true')\n", id="rewrite-warns"),
    pytest.param("PATTERN = '\\d'\n", id="compile-warns"),
])
def test_a_file_that_fails_or_warns_is_not_held(tmp_path: Path, text: str) -> None:
    path = tmp_path / "test_bad.py"
    path.write_text(text)
    assert not pytest_rewrite.learn(f"0 {path}")
    assert pytest_rewrite._held == {}


def test_only_a_regular_file_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "test_fifo.py"
    os.mkfifo(fifo)  # nobody writes: reading it would wait forever
    assert not pytest_rewrite.learn(f"0 {fifo}")
    folder = tmp_path / "test_folder.py"
    folder.mkdir()
    assert not pytest_rewrite.learn(f"0 {folder}")


def test_the_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = []
    for i in range(3):
        files.append(tmp_path / f"test_{i}.py")
        files[-1].write_text(SOURCE)
    monkeypatch.setattr(pytest_rewrite, "FILE_BYTES_LIMIT", len(SOURCE) - 1)
    assert not pytest_rewrite.learn(f"0 {files[0]}")  # too big
    monkeypatch.setattr(pytest_rewrite, "FILE_BYTES_LIMIT", len(SOURCE))
    monkeypatch.setattr(pytest_rewrite, "FILES_LIMIT", 2)
    assert pytest_rewrite.learn(f"0 {files[0]}") and pytest_rewrite.learn(f"0 {files[1]}")
    assert not pytest_rewrite.learn(f"0 {files[2]}")  # too many files
    monkeypatch.setattr(pytest_rewrite, "FILES_LIMIT", 10)
    monkeypatch.setattr(pytest_rewrite, "TOTAL_BYTES_LIMIT", 2 * len(SOURCE))
    assert not pytest_rewrite.learn(f"0 {files[2]}")  # too many bytes in all
    files[0].write_text(SOURCE.replace("[2]", "[3]"))  # the same size: replaces its old code
    assert pytest_rewrite.learn(f"0 {files[0]}")
    assert len(pytest_rewrite._held) == 2 and pytest_rewrite._held_bytes == 2 * len(SOURCE)
    files[1].unlink()  # a file that is gone makes room
    assert pytest_rewrite.learn(f"0 {files[2]}")
    assert sorted(path for path, _ in pytest_rewrite._held) == [str(files[0]), str(files[2])]
    assert pytest_rewrite._held_bytes == 2 * len(SOURCE)
