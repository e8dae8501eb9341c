"""The launcher's direct form (zeuspy/launcher.py): rewritten once, only where it is safe, and it
still runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zeuspy import launcher

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "bin" / "zeus"


@pytest.fixture
def venv_bin(tmp_path: Path) -> Path:
    """A venv's layout around a copy of the launcher: ``bin/python``, ``pyvenv.cfg`` and the
    real venv's site-packages (so that the copy finds zeuspy as the installed one does)."""
    real = Path(sys.prefix)
    root = tmp_path / "venv"
    folder = root / "bin"
    folder.mkdir(parents=True)
    (folder / "python").symlink_to(sys.executable)
    (root / "pyvenv.cfg").write_bytes((real / "pyvenv.cfg").read_bytes())
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (root / "lib" / version).mkdir(parents=True)
    (root / "lib" / version / "site-packages").symlink_to(real / "lib" / version / "site-packages")
    target = folder / "zeus"
    target.write_bytes(SOURCE.read_bytes())
    target.chmod(0o755)
    return folder


def run_version(script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), "version"], capture_output=True, text=True, timeout=30)


def test_the_sh_form_runs(venv_bin: Path) -> None:
    done = run_version(venv_bin / "zeus")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("zeuspy ")


def test_make_direct_rewrites_the_first_line_only(venv_bin: Path) -> None:
    script = venv_bin / "zeus"
    before = script.read_bytes()
    python = str(venv_bin / "python")
    assert launcher.make_direct(str(script), python)
    after = script.read_bytes()
    first, _, rest = after.partition(b"\n")
    assert first == f"#!{python} -IS".encode()
    assert rest == before.partition(b"\n")[2]
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert [p.name for p in venv_bin.iterdir() if p.name.endswith(".tmp")] == []


def test_the_direct_form_runs_and_skips_sh(venv_bin: Path) -> None:
    script = venv_bin / "zeus"
    assert launcher.make_direct(str(script), str(venv_bin / "python"))
    done = run_version(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("zeuspy ")
    assert launcher.make_direct(str(script), str(venv_bin / "python")) is False  # once only


def test_a_python_that_is_not_beside_the_launcher_is_not_written(venv_bin: Path) -> None:
    script = venv_bin / "zeus"
    before = script.read_bytes()
    assert launcher.make_direct(str(script), sys.executable) is False
    assert script.read_bytes() == before


def test_a_path_too_long_for_the_kernel_is_not_written(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120) / "bin"
    deep.mkdir(parents=True)
    (deep / "python").symlink_to(sys.executable)
    script = deep / "zeus"
    script.write_bytes(SOURCE.read_bytes())
    assert launcher.make_direct(str(script), str(deep / "python")) is False
    assert script.read_bytes() == SOURCE.read_bytes()


def test_another_file_is_not_written(venv_bin: Path) -> None:
    other = venv_bin / "other"
    other.write_bytes(b"#!/bin/sh\necho hello\n")
    assert launcher.make_direct(str(other), str(venv_bin / "python")) is False
    assert other.read_bytes() == b"#!/bin/sh\necho hello\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_install_is_left_alone(venv_bin: Path) -> None:
    script = venv_bin / "zeus"
    before = script.read_bytes()
    venv_bin.chmod(0o555)
    try:
        assert launcher.make_direct(str(script), str(venv_bin / "python")) is False
    finally:
        venv_bin.chmod(0o755)
    assert script.read_bytes() == before


def test_a_symlinked_launcher_is_written_at_its_real_place(venv_bin: Path,
                                                          tmp_path: Path) -> None:
    link = tmp_path / "zeus-link"
    link.symlink_to(venv_bin / "zeus")
    assert launcher.make_direct(str(link), str(venv_bin / "python"))
    assert link.is_symlink()
    assert (venv_bin / "zeus").read_bytes().startswith(f"#!{venv_bin / 'python'} -IS".encode())
