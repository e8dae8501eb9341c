"""Which environment reads count as the boot's (shim/world.py ``record_reads``): one variable
read by the project's own code, not a library's reads nor whole-environment copies; and which
variables never warn (``per_terminal``). Run in a child interpreter: recording patches
``os.environ``'s class."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from zeuspy.shim import world

#: A module of the project: each way of reading one variable, and copies of the whole environment.
PROJECT_MODULE = """
import os
A = os.environ["BY_SUBSCRIPT"]
B = os.environ.get("BY_GET")
C = os.getenv("BY_GETENV")
D = "BY_IN" in os.environ
E = os.environ.setdefault("BY_SETDEFAULT", "x")
COPIES = (dict(os.environ), os.environ.copy(), {**os.environ}, list(os.environ.items()))
"""
#: A library (in a site-packages folder inside the project, as a venv would be): not the project.
LIBRARY_MODULE = """
import os
LIB = os.environ.get("BY_LIBRARY"), os.environ["BY_LIBRARY_SUBSCRIPT"]
"""
CHILD = """
import json, os, sys, wsgiref.handlers
from zeuspy.shim import world
os.chdir({root!r})
sys.path[:0] = [{root!r}, {site!r}]
world.record_reads()
world.reading(True)
import projmod, libmod
import wsgiref.simple_server  # the standard library copies os.environ at import
os.environ.get("AFTER_DIRECT_CODE")  # -c code: no file of the project
world.reading(False)
import projmod2
print(json.dumps(sorted(world._read_at_boot)))
"""
READ = ["BY_GET", "BY_GETENV", "BY_IN", "BY_SETDEFAULT", "BY_SUBSCRIPT"]


def test_only_single_reads_by_the_projects_own_files_count(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    site = root / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (root / "projmod.py").write_text(textwrap.dedent(PROJECT_MODULE))
    # Imported after reading stopped: recorded nothing.
    (root / "projmod2.py").write_text("import os\nos.environ.get('AFTER_STOP')\n")
    (site / "libmod.py").write_text(textwrap.dedent(LIBRARY_MODULE))
    env = {"PATH": "/usr/bin:/bin", "BY_SUBSCRIPT": "1", "BY_LIBRARY_SUBSCRIPT": "1",
           "UNRELATED": "1", "VIRTUAL_ENV": "/venv"}
    code = CHILD.format(root=str(root), site=str(site))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == READ


def test_drift_leaves_out_what_every_shell_sets_its_own_way() -> None:
    for name in ("VIRTUAL_ENV", "PYENV_SHELL", "CONDA_PREFIX", "CONDA_PREFIX_1",
                 "CONDA_DEFAULT_ENV", "TERM", "DIRENV_DIFF", "PATH"):
        assert world.per_terminal(name), name
    for name in ("DATABASE_URL", "LANG", "HOME", "MYAPP_ENV"):
        assert not world.per_terminal(name), name
