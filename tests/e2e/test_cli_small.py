"""Small things users meet (issue 10, item 9): a mistyped built-in (`zeus staus`), `status --json`
of a project without zeus.json, the master found from any subfolder of a zero-config project, and
zeuspy's state files kept out of `git status` (the pid file in `.zeus/`, a master of an earlier
zeuspy with `.zeus.pid` still detected)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e._cli_support import validate_status
from tests.harness.master import running_master, stop_everything
from tests.harness.plans import DEFAULT_PLAN, DEFAULT_TREE
from tests.harness.processes import alive
from tests.harness.project import Project, PyProject, python_project, short_folder
from tests.harness.waits import BOOT_TIMEOUT, EXIT_TIMEOUT, wait_for

#: Bound of `zeus start --detach` (it returns once the master listens).
DETACH_TIMEOUT = 30.0
#: A zero-config project: a root marker and a module, no zeus.json.
FILES = {"pyproject.toml": "[project]\nname = 'small'\nversion = '0'\n",
         "small.py": "VALUE = 42\n"}
WHERE = "import os; print(os.getcwd())"


def pid_file(root: Path) -> Path:
    return root / ".zeus" / "master.pid"


@contextmanager
def zero_config(folder: Path) -> Iterator[PyProject]:
    """A project without zeus.json in ``folder`` whose background master (if a test starts one)
    is stopped."""
    with python_project(folder, FILES) as project:
        try:
            yield project
        finally:
            stop_everything(project)


def detach(project: PyProject) -> int:
    """`zeus start --detach` in the project root; the master's pid."""
    result = project.zeus("start", "--detach")
    assert result.returncode == 0, result
    found = re.search(rb"\(pid (\d+)\)", result.stdout)
    assert found, result
    return int(found.group(1))


def stop(project: PyProject, pid: int, cwd: str = "") -> None:
    result = project.zeus("stop", cwd=cwd)
    assert result.returncode == 0, result
    assert result.stdout.decode() == f"zeus: stopped the master (pid {pid})\n"
    assert not alive(pid)


# -- zeus staus -----------------------------------------------------------------------------------

#: The default plan plus `stats`, a command one edit away from `status` that exits with argv[0].
TREE = {"boot": {"app": {**DEFAULT_TREE["boot"]["app"], "stats": None}}}
PLAN = DEFAULT_PLAN + """
    def stats(self, argv):
        return int(argv[0])
"""


def test_a_mistyped_builtin_is_suggested_by_name(project: Project) -> None:
    project.write(TREE, PLAN)
    with running_master(project, "boot", "app"):
        for typo, meant in (("staus", "status"), ("stpo", "stop"), ("restrat", "restart"),
                            ("Status", "status"), ("comands", "commands")):
            result = project.run(typo)
            err = result.stderr.decode()
            assert result.returncode == 127, result
            assert result.stdout == b""
            # The master's answer, then the built-in it did not know of.
            assert err.startswith(f'Could not find command "{typo}".'), err
            assert err.endswith(f"Did you mean {meant}? (a zeus subcommand)\n"), err
        assert "Did you mean start or status? (zeus subcommands)" in \
            project.run("stat").stderr.decode()
        # Commands of the plan are untouched: one that runs, one that fails (status 1, as a
        # client without master) and one that is near a built-in but is the plan's.
        assert project.run("hello").stderr == b""
        for code in ("0", "1", "3"):
            result = project.run("stats", code)
            assert (result.returncode, result.stderr) == (int(code), b""), result
        unrelated = project.run("xyzzy")
        assert unrelated.returncode == 127 and b"Did you mean" not in unrelated.stderr


def test_a_mistyped_builtin_without_a_master(project: Project) -> None:
    result = project.run("staus")
    assert result.returncode == 1, result
    err = result.stderr.decode()
    assert "Can't connect to master" in err, err
    assert err.endswith("\nDid you mean status? (a zeus subcommand)\n"), err
    assert b"Did you mean" not in project.run("hello").stderr
    option = project.run("--status")
    assert option.returncode == 2
    assert option.stderr.decode() == \
        "zeus: unknown option --status. Did you mean status? (a zeus subcommand)\n"


# -- status --json without zeus.json --------------------------------------------------------------

def status(project: PyProject, cwd: str = "") -> tuple[int, dict[str, object]]:
    result = project.zeus("status", "--json", cwd=cwd)
    data = json.loads(result.stdout)
    validate_status(data)  # config, when named, is a file that exists
    return result.returncode, data


def test_status_names_the_builtin_plan_not_a_missing_zeus_json(tmp_path: Path) -> None:
    with zero_config(tmp_path / "zero") as project:
        pid = detach(project)
        wait_for(lambda: status(project)[0] == 0, BOOT_TIMEOUT, what="every phase ready")
        master = status(project)[1]["master"]
        assert isinstance(master, dict)
        assert master["pid"] == pid and master["root"] == str(project.root)
        assert (master["config"], master["builtin"]) == (None, "python")
        text = project.zeus("status").stdout.decode()
        assert text.startswith(f"master pid {pid} · {project.root} · built-in python plan "
                               "(no zeus.json) · watching files by"), text
        # `zeus init` writes zeus.json: the master takes it over, and status names it.
        assert project.zeus("init").returncode == 0

        def named() -> bool:
            master = status(project)[1]["master"]
            return isinstance(master, dict) and master["config"] is not None

        wait_for(named, BOOT_TIMEOUT, what="status to name the new zeus.json")
        master = status(project)[1]["master"]
        assert isinstance(master, dict)
        assert (master["config"], master["builtin"]) == (str(project.root / "zeus.json"), None)
        assert "built-in" not in project.zeus("status").stdout.decode()
        stop(project, pid)


# -- the project root from a subfolder ------------------------------------------------------------

#: Subfolders of the project: plain ones, and one with a root marker of its own (a vendored
#: package), which used to be taken for the project.
SUBFOLDERS = ("src/pkg/deep", "vendor/lib", "vendor/lib/sub", "docs/app")


@pytest.mark.parametrize("where", ["short", "long"])
def test_the_master_is_found_from_any_subfolder(tmp_path: Path, where: str) -> None:
    # A long root has its socket in the runtime folder: its pid file in .zeus/ marks the root.
    folder = tmp_path / "zero" if where == "short" else tmp_path / ("d" * 60) / ("e" * 40)
    with short_folder() as runtime, zero_config(folder) as project:
        if where == "long":
            project.base_env["XDG_RUNTIME_DIR"] = str(runtime)
            assert len(str(project.root / ".zeus.sock")) > 103
        for sub in SUBFOLDERS:
            (project.root / sub).mkdir(parents=True, exist_ok=True)
        (project.root / "vendor/lib/setup.py").write_text("")
        (project.root / "docs/app/manage.py").write_text("")
        pid = detach(project)
        # --detach returns before the phases boot: the first command may print that it waits.
        assert project.zeus("run", "-c", "pass").returncode == 0
        for sub in SUBFOLDERS:
            result = project.zeus("run", "-c", WHERE, cwd=sub)
            assert (result.returncode, result.stderr) == (0, b""), (sub, result)
            assert result.stdout.decode() == f"{project.root / sub}\n"
            _, data = status(project, cwd=sub)
            master = data["master"]
            assert isinstance(master, dict) and master["pid"] == pid, (sub, data)
        restart = project.zeus("restart", cwd="vendor/lib/sub")
        assert restart.returncode == 0, restart
        stop(project, pid, cwd="vendor/lib/sub")
        # Without a master, the nearest marker is the project again (`zeus start` there starts
        # that project's own master).
        alone = project.zeus("status", cwd="vendor/lib/sub")
        assert alone.returncode == 3
        assert f"no master is running for {project.root / 'vendor/lib'};" in alone.stderr.decode()


# -- state files and git --------------------------------------------------------------------------

def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                            timeout=EXIT_TIMEOUT, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1",
                                                       "GIT_CONFIG_GLOBAL": os.devnull})
    assert result.returncode == 0, result
    return result.stdout


def test_git_status_shows_nothing_of_zeuspy(tmp_path: Path) -> None:
    with zero_config(tmp_path / "zero") as project:
        git(project.root, "init", "-q")
        # Python's own bytecode is the project's business (every project ignores it), not zeuspy's.
        (project.root / ".gitignore").write_text("__pycache__/\n")
        before = git(project.root, "status", "--porcelain", "--untracked-files=all")
        assert "pyproject.toml" in before
        pid = detach(project)
        result = project.zeus("run", "-c", "print('ran')")
        assert (result.returncode, result.stdout) == (0, b"ran\n"), result
        assert project.zeus("status").returncode in (0, 4)
        assert pid_file(project.root).read_text() == f"{pid}\n"
        assert not (project.root / ".zeus.pid").exists()
        assert (project.root / ".zeus.sock").is_socket()  # where the protocol puts it
        assert git(project.root, "status", "--porcelain", "--untracked-files=all") == before
        stop(project, pid)
        assert not pid_file(project.root).exists()
        assert git(project.root, "status", "--porcelain", "--untracked-files=all") == before


def test_signal_fallback_uses_the_pid_file_in_zeus_dir(project: Project) -> None:
    """No socket to ask (removed under the master): restart and stop signal the pid in
    `.zeus/master.pid`."""
    with running_master(project, "boot", "app") as master:
        assert pid_file(project.root).read_text() == f"{master.proc.pid}\n"
        (project.root / ".zeus.sock").unlink()
        result = project.run("restart")
        assert result.returncode == 0, result
        assert f"(pid {master.proc.pid})" in result.stdout.decode()
        wait_for(lambda: "restarting every phase (SIGUSR1)" in project.log, EXIT_TIMEOUT,
                 what="the master to restart on SIGUSR1")
        result = project.run("stop", timeout=EXIT_TIMEOUT + 20)
        assert result.returncode == 0, result
        assert result.stdout.decode() == f"zeus: stopped the master (pid {master.proc.pid})\n"
        assert master.proc.wait(EXIT_TIMEOUT) == 0
    assert not pid_file(project.root).exists()


#: A master of an earlier zeuspy, as far as the pid file goes: `.zeus.pid` in the root, locked,
#: holding its pid; SIGUSR1 noted in a file, SIGTERM ends it. Bounded: it exits after 60 s.
LEGACY_MASTER = """
import fcntl, os, signal, sys, time
fd = os.open(".zeus.pid", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, f"{os.getpid()}\\n".encode())
signal.signal(signal.SIGUSR1, lambda *a: open("usr1.got", "w").close())
print("locked", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_a_master_of_an_earlier_zeuspy_is_still_detected(project: Project) -> None:
    legacy = subprocess.Popen([sys.executable, "-c", LEGACY_MASTER], cwd=project.root,
                              env=project.env(), stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    try:
        assert legacy.stdout is not None and legacy.stdout.readline() == b"locked\n"
        for args in (("start",), ("start", "--detach")):
            result = project.run(*args, timeout=DETACH_TIMEOUT)
            err = result.stderr.decode()
            assert result.returncode == 1, result
            assert f"already running for {project.root} (pid {legacy.pid})" in err, err
            assert not (project.root / ".zeus.sock").exists()
            assert not pid_file(project.root).exists()
        result = project.run("restart")
        assert result.returncode == 0, result
        wait_for(lambda: (project.root / "usr1.got").exists(), EXIT_TIMEOUT,
                 what="SIGUSR1 to reach the legacy master")
        result = project.run("stop", timeout=EXIT_TIMEOUT + 20)
        assert result.returncode == 0, result
        assert result.stdout.decode() == f"zeus: stopped the master (pid {legacy.pid})\n"
        assert legacy.wait(EXIT_TIMEOUT) == -signal.SIGTERM
    finally:
        if legacy.poll() is None:
            legacy.kill()
            legacy.wait(EXIT_TIMEOUT)
        if legacy.stdout is not None:
            legacy.stdout.close()


@pytest.mark.parametrize("option", [["--poll", "inf"], ["--poll", "nan"], ["--poll", "0"],
                                    ["--file-change-delay", "nan"],
                                    ["--file-change-delay", "-1"],
                                    ["--file-change-delay", "1e9"]])
def test_start_refuses_delays_that_are_not_seconds(project: Project, option: list[str]) -> None:
    """One line and exit 2, before anything starts (inf or nan once killed the watcher thread
    with a traceback)."""
    result = project.run("start", *option)
    assert result.returncode == 2, result
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"zeus start: error: {option[0]} must be a number of seconds"), last
    assert b"Traceback" not in result.stderr
    assert not (project.root / ".zeus.sock").exists()  # no master started


@pytest.mark.parametrize("config", ["--config=zeus.json", "zeus.json"])
def test_config_in_a_folder_whose_name_is_not_utf8(tmp_path: Path, config: str) -> None:
    """A relative ``--config`` is resolved against the cwd as bytes: a folder name that is not
    UTF-8 (``café`` in Latin-1) is a path like any other, not a crash (issue 13)."""
    folder = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(folder)
    with open(folder + b"/zeus.json", "w") as f:
        f.write('{"plan": {"boot": {"hello": null}}}')
    args = [config] if config.startswith("--config=") else ["--config", config]
    done = subprocess.run([sys.executable, "-m", "zeuspy", *args, "hello"], cwd=folder,
                          capture_output=True, timeout=EXIT_TIMEOUT,
                          env={**os.environ, "ZEUS_AUTOSTART": "0"})
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.returncode != 0
    assert done.stderr.count(b"\n") == 1, done.stderr
