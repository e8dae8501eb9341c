"""The ``zeus`` script (zeuspy/launcher.py): the installer's entry-point script works anywhere;
``zeus start`` gives it the fast form once, only where that form works, and keeps RECORD true."""

from __future__ import annotations

import importlib.metadata
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from zeuspy import __version__, launcher

REPO = Path(__file__).resolve().parents[2]
VERSION = f"python{sys.version_info[0]}.{sys.version_info[1]}"
#: The script pip writes for ``zeus = "zeuspy.cli:main"`` (distlib's template), after its #! line.
ENTRY_BODY = (
    "# -*- coding: utf-8 -*-\n"
    "import re\n"
    "import sys\n"
    "from zeuspy.cli import main\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    "    sys.exit(main())\n"
)


def install(root: Path, *, zeuspy_in_site_packages: bool = True) -> Path:
    """A venv at ``root`` with zeuspy installed as pip installs it: ``bin/python``,
    ``pyvenv.cfg``, zeuspy in site-packages (a link to the repo's sources; or nowhere the fast
    form looks, as in a ``pip install --user``), a dist-info whose RECORD lists the
    entry-point script ``bin/zeus``. The script's path."""
    folder = root / "bin"
    folder.mkdir(parents=True)
    (folder / "python").symlink_to(sys.executable)
    (root / "pyvenv.cfg").write_text(f"home = {Path(sys.executable).parent}\n"
                                     "include-system-site-packages = false\n")
    site_packages = root / "lib" / VERSION / "site-packages"
    site_packages.mkdir(parents=True)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    home = site_packages if zeuspy_in_site_packages else elsewhere
    (home / "zeuspy").symlink_to(REPO / "src" / "zeuspy")
    script = folder / "zeus"
    script.write_text(f"#!{folder / 'python'}\n{ENTRY_BODY}")
    script.chmod(0o755)
    info = home / f"zeuspy-{__version__}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zeuspy\nVersion: {__version__}\n")
    relative = os.path.relpath(script, home)
    (info / "RECORD").write_text(
        f"zeuspy/__init__.py,,\n{launcher.record_line(relative, script.read_bytes())}\n"
        f"zeuspy-{__version__}.dist-info/RECORD,,\n")
    return script


def make_fast(script: Path, *extra_path: Path) -> bool:
    """``launcher.make_fast`` run by the installed venv's own python (its own site-packages,
    and ``extra_path`` as a PYTHONPATH would add them), as ``zeus start`` runs it."""
    python = script.parent / "python"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, extra_path))}
    env.pop("PYTHONHOME", None)
    done = subprocess.run(
        [str(python), "-c", "import sys; from zeuspy import launcher; "
         "print(launcher.make_fast(sys.argv[1]))", str(script)],
        capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def record_of(script: Path) -> list[str]:
    info = next(script.parent.parent.rglob("zeuspy-*.dist-info"))
    return (info / "RECORD").read_text().splitlines()


def run_version(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), "version"], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env})


def test_the_entry_point_script_runs(tmp_path: Path) -> None:
    done = run_version(install(tmp_path / "venv"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"zeuspy {__version__}\n"


def test_make_fast_rewrites_the_script_and_its_record_line(tmp_path: Path) -> None:
    script = install(tmp_path / "venv")
    relative = next(line for line in record_of(script) if "bin/zeus" in line).partition(",")[0]
    assert make_fast(script)
    content = script.read_bytes()
    assert content.partition(b"\n")[0] == f"#!{script.parent / 'python'} -IS".encode()
    assert launcher.FAST_BODY in content
    assert launcher.record_line(relative, content) in record_of(script)
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert [p.name for p in script.parent.iterdir() if p.name.endswith(".tmp")] == []
    done = run_version(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"zeuspy {__version__}\n"
    assert make_fast(script) is False  # once only
    assert script.read_bytes() == content


def test_the_fast_form_starts_python_without_site(tmp_path: Path) -> None:
    """A sitecustomize in site-packages runs whenever ``site`` does: under the installer's
    script, not under the fast form."""
    script = install(tmp_path / "venv")
    (tmp_path / "venv" / "lib" / VERSION / "site-packages" / "sitecustomize.py").write_text(
        "import sys; sys.stderr.write('SITE LOADED\\n')\n")
    assert "SITE LOADED" in run_version(script).stderr
    assert make_fast(script)
    done = run_version(script)
    assert done.returncode == 0, done.stderr
    assert "SITE LOADED" not in done.stderr


def test_a_user_install_keeps_the_installers_script(tmp_path: Path) -> None:
    """zeuspy where the fast form does not look (``pip install --user``, ``--prefix`` with
    PYTHONPATH, a distro's dist-packages): the installer's script stays, and works."""
    script = install(tmp_path / "venv", zeuspy_in_site_packages=False)
    before = script.read_bytes()
    record = record_of(script)
    elsewhere = tmp_path / "venv" / "elsewhere"
    assert make_fast(script, elsewhere) is False
    assert script.read_bytes() == before
    assert record_of(script) == record
    assert [p.name for p in script.parent.iterdir() if p.name.endswith(".tmp")] == []
    done = run_version(script, PYTHONPATH=str(elsewhere))
    assert done.returncode == 0, done.stderr


def test_a_script_record_does_not_list_is_left_alone(tmp_path: Path) -> None:
    script = install(tmp_path / "venv")
    copy = script.parent / "zeus-copy"
    copy.write_bytes(script.read_bytes())
    copy.chmod(0o755)
    assert make_fast(copy) is False
    assert copy.read_bytes() == script.read_bytes()


@pytest.mark.parametrize("first", [
    "#!/bin/sh",  # pip's form for an interpreter path with spaces (an exec line follows)
    "#!/usr/bin/env python3",
    "#!/" + "d" * 130 + "/python",  # too long for the kernel with -IS
])
def test_other_interpreter_lines_are_not_made_fast(first: str) -> None:
    assert launcher.fast_form(f"{first}\n{ENTRY_BODY}".encode()) is None


def test_someone_elses_script_is_not_made_fast() -> None:
    assert launcher.fast_form(b"#!/usr/bin/python3\nprint('hello')\n") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_install_is_left_alone(tmp_path: Path) -> None:
    script = install(tmp_path / "venv")
    before = script.read_bytes()
    script.parent.chmod(0o555)
    try:
        assert make_fast(script) is False
    finally:
        script.parent.chmod(0o755)
    assert script.read_bytes() == before


def test_this_venv_lists_its_zeus_script() -> None:
    """The project is packaged with the entry point: the installed ``zeus`` is in RECORD."""
    dist = importlib.metadata.distribution("zeuspy")
    scripts = [f for f in dist.files or () if f.name == "zeus"]
    assert scripts, "zeus is not an installed script of zeuspy"
    assert dist.entry_points.select(group="console_scripts", name="zeus")
