"""Imports learned from commands (shim/learned.py), end to end: a zero-config project whose
libraries live in a ``site-packages`` folder of the test's own (on PYTHONPATH), a real master and
real `zeus run` commands.

Each library writes one line to ``imports.log`` when it is imported: the pid and who imported it
(``command`` when the client's environment has LEARN_ROLE=command, which only commands see,
else ``phase``). So the tests see which process imported what, and how often.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.master import Master, master_for
from tests.harness.project import PyProject, python_project
from tests.harness.waits import wait_for

#: How long a phase may take to import what a command sent it (it does so when idle).
LEARN_TIMEOUT = 10.0
#: How long a test that expects nothing to be learned waits before it looks.
QUIET_WAIT = 1.5

LOGGER = """\
import os
with open(os.path.join({folder!r}, "imports.log"), "a") as log:
    log.write(f"{{__name__}} {{os.environ.get('LEARN_ROLE', 'phase')}} {{os.getpid()}}\\n")
"""

LIBRARIES = {
    "lazylib/__init__.py": "def answer():\n    from lazylib import deep\n    return deep.VALUE\n",
    "lazylib/deep.py": "VALUE = 42\n",
    # Imports only in a command: the phase's attempt fails (and must be made once only).
    "picky.py": ("import os\nif os.environ.get('LEARN_ROLE') != 'command':\n"
                 "    raise ImportError('picky imports only in a command')\n"),
    "threaded.py": "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), "
                   "daemon=True).start()\n",
    "after_thread.py": "",
}


def write_libraries(folder: Path) -> None:
    for rel, body in LIBRARIES.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LOGGER.format(folder=str(folder)) + body)


def imports(folder: Path) -> list[tuple[str, str]]:
    """(module, role) of every import logged so far, in order."""
    log = folder / "imports.log"
    if not log.exists():
        return []
    return [(line.split()[0], line.split()[1]) for line in log.read_text().splitlines()]


@pytest.fixture
def libs(tmp_path: Path) -> Path:
    folder = tmp_path / "libs" / "site-packages"
    write_libraries(folder)
    return folder


def project_for(tmp_path: Path, libs: Path, tool: str = "", learn: str | None = None,
                **env: str) -> Iterator[tuple[PyProject, Master]]:
    """A project and its master (``learn``: ZEUSPY_LEARN_IMPORTS, None: unset, the default:
    on)."""
    if learn is not None:
        env["ZEUSPY_LEARN_IMPORTS"] = learn
    files = {"pyproject.toml": '[project]\nname = "learn"\nversion = "0.1"\n' + tool,
             "ownmod.py": LOGGER.format(folder=str(libs))}
    base = {"PYTHONPATH": str(libs), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **env}
    with python_project(tmp_path / "proj", files, base) as project, \
            master_for(project, "boot", "app") as master:
        yield project, master


@pytest.fixture
def started(tmp_path: Path, libs: Path) -> Iterator[tuple[PyProject, Master]]:
    yield from project_for(tmp_path, libs)


@pytest.fixture
def learning(started: tuple[PyProject, Master]) -> PyProject:
    return started[0]


def command(project: PyProject, code: str) -> bytes:
    result = project.zeus("run", "-c", code, env=project.env(LEARN_ROLE="command"))
    assert result.returncode == 0, result
    return result.stdout


def test_a_library_a_command_imported_is_imported_by_its_phase(learning: PyProject,
                                                               libs: Path) -> None:
    code = "import lazylib; print(lazylib.answer())"
    plain = learning.python("-c", code, env=learning.env(LEARN_ROLE="python"))
    assert command(learning, code) == plain.stdout == b"42\n"
    assert imports(libs)[:4] == [("lazylib", "python"), ("lazylib.deep", "python"),
                                 ("lazylib", "command"), ("lazylib.deep", "command")]
    wait_for(lambda: ("lazylib.deep", "phase") in imports(libs), timeout=LEARN_TIMEOUT,
             what="the phase importing what the command imported")
    # In import order, parent first, once each.
    assert imports(libs)[4:] == [("lazylib", "phase"), ("lazylib.deep", "phase")]
    check = "import sys; print('lazylib' in sys.modules, 'lazylib.deep' in sys.modules)"
    assert command(learning, check) == b"True True\n"
    assert command(learning, code) == b"42\n"
    assert len(imports(libs)) == 6, imports(libs)  # nobody imported them again


def test_the_project_own_modules_are_not_learned(learning: PyProject, libs: Path) -> None:
    command(learning, "import ownmod, lazylib")
    # lazylib's phase import proves the phase read what the command sent.
    wait_for(lambda: ("lazylib", "phase") in imports(libs), timeout=LEARN_TIMEOUT,
             what="the phase importing lazylib")
    assert ("ownmod", "phase") not in imports(libs), imports(libs)
    assert command(learning, "import sys; print('ownmod' in sys.modules)") == b"False\n"


def test_an_import_that_fails_in_the_phase_is_tried_once(learning: PyProject,
                                                         libs: Path) -> None:
    for _ in range(3):
        command(learning, "import picky, lazylib")
        wait_for(lambda: ("lazylib", "phase") in imports(libs), timeout=LEARN_TIMEOUT,
                 what="the phase importing lazylib")
    # Sent after each command, but tried by the phase the first time only (it failed).
    assert imports(libs).count(("picky", "phase")) == 1, imports(libs)
    assert imports(libs).count(("picky", "command")) == 3, imports(libs)
    assert command(learning, "print('still serving')") == b"still serving\n"


def test_an_import_that_starts_a_thread_ends_the_learning(learning: PyProject,
                                                          libs: Path) -> None:
    command(learning, "import threaded")
    wait_for(lambda: "learns no more imports" in learning.log, timeout=LEARN_TIMEOUT,
             what="the phase's note on the thread")
    assert "importing threaded (learned from a command) started a thread" in learning.log
    command(learning, "import after_thread")
    command(learning, "print('a command after it')")  # the phase is serving, so it read the names
    assert ("after_thread", "phase") not in imports(libs), imports(libs)


@pytest.mark.parametrize("where", ["environment", "pyproject"])
def test_the_setting_turns_it_off(tmp_path: Path, libs: Path, where: str) -> None:
    """On by default (every other test here); off when the environment or the project's
    settings say so."""
    learn = "0" if where == "environment" else None
    tool = "[tool.zeus]\nlearn_imports = false\n" if where == "pyproject" else ""
    for project, _ in project_for(tmp_path, libs, tool, learn):
        command(project, "import lazylib; lazylib.answer()")
        time.sleep(QUIET_WAIT)  # nothing to wait for: the phase would import within this
        assert [role for _, role in imports(libs)] == ["command", "command"], imports(libs)
        assert command(project, "import sys; print('lazylib' in sys.modules)") == b"False\n"


def test_a_learned_library_is_tracked(started: tuple[PyProject, Master], libs: Path) -> None:
    """A learned module's file is one the phase loaded: editing it restarts the phase, like any
    module the phase imported itself."""
    learning, master = started
    command(learning, "import lazylib")
    wait_for(lambda: ("lazylib", "phase") in imports(libs), timeout=LEARN_TIMEOUT,
             what="the phase importing lazylib")
    command(learning, "pass")  # the phase reported the file before it forked this command
    before = master.output.count("app: ready")
    path = libs / "lazylib" / "__init__.py"
    path.write_text(path.read_text() + "EDITED = True\n")
    wait_for(lambda: master.output.count("app: ready") > before, timeout=LEARN_TIMEOUT,
             what="app restarting after the learned library changed")
    assert command(learning, "import lazylib; print(lazylib.EDITED)") == b"True\n"


#: A command that sends its phase's learning channel garbage: random bytes, names and lessons of
#: every shape, datagrams as large as the socket takes (it is the user's own code: a fault, not an
#: attack, but the phase must not care).
GARBAGE = """\
import random, socket
from zeuspy.shim import learned
rng = random.Random(7)
lines = [b"@", b"@ ", b"@pytest-rewrite", b"@pytest-rewrite 1 relative.py",
         b"@pytest-rewrite 0 /" + b"x" * 5000, b"@no-such-kind x", b"..", b"a..b", b"\\xff" * 50]
sent = 0
for i in range(400):
    if i % 2:
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    else:
        data = b"\\n".join(rng.choice(lines) for _ in range(rng.randrange(1, 40)))
    try:
        learned._sink.send(data)
        sent += 1
    except OSError:
        pass
print(sent > 0)
"""


def test_garbage_on_the_learning_channel_changes_nothing(learning: PyProject,
                                                         libs: Path) -> None:
    assert command(learning, GARBAGE) == b"True\n"
    assert command(learning, "import lazylib; print(lazylib.answer())") == b"42\n"
    wait_for(lambda: ("lazylib", "phase") in imports(libs), timeout=LEARN_TIMEOUT,
             what="the phase still learning after the garbage")
    assert command(learning, "print('still serving')") == b"still serving\n"
