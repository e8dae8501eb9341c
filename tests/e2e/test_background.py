"""Background masters: `zeus start --detach`, `zeus stop`, `zeus restart` (and both with no
master), autostart (zeus.json and ZEUS_AUTOSTART), and the idle timeout. Every test stops what
it started (tests.e2e._cli_support.background) and checks no process is left."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.e2e._cli_support import status_json
from tests.harness.master import background, pid_file, socket_file
from tests.harness.plans import DEFAULT_PLAN, DEFAULT_TREE
from tests.harness.processes import alive, processes_in, wait_no_processes
from tests.harness.project import Project
from tests.harness.waits import EXIT_TIMEOUT, wait_for

#: `zeus start --detach` returns once the master listens: well within this.
DETACH_TIMEOUT = 25.0
IDLE = 1.5
#: The master checks for idleness every second (zeuspy.master.app.IDLE_CHECK).
IDLE_CHECK = 1.0


def detach(project: Project, *args: str) -> int:
    """`zeus start --detach`; the master's pid."""
    result = project.run("start", "--detach", *args, timeout=DETACH_TIMEOUT)
    assert result.returncode == 0, result
    out = result.stdout.decode()
    m = re.fullmatch(r"zeus: master started in the background \(pid (\d+)\); log: (.+)\n", out)
    assert m, out
    assert m.group(2) == str(project.root / ".zeus" / "master.log")
    return int(m.group(1))


def master_gone(project: Project, pid: int) -> bool:
    return (not alive(pid) and not os.path.exists(pid_file(project))
            and not os.path.exists(socket_file(project)))


def stopped(project: Project, pid: int) -> None:
    """Right after `zeus stop`: pid file and socket gone, no phase left; the master's own process
    may exit a moment later (it releases the pid file just before)."""
    assert not os.path.exists(pid_file(project))
    assert not os.path.exists(socket_file(project))
    others = [p for p in processes_in(mark=project.mark) if p[0] != pid]
    assert not others, others
    wait_for(lambda: not alive(pid), 5, what=f"master {pid} gone")
    assert not (left := wait_no_processes(mark=project.mark, timeout=EXIT_TIMEOUT)), left


def test_detach_then_stop(project: Project) -> None:
    with background(project):
        started = time.monotonic()
        pid = detach(project)
        assert time.monotonic() - started < DETACH_TIMEOUT
        # Listening when --detach returns: a command works right away.
        assert os.path.exists(socket_file(project))
        result = project.run("hello", "now")
        assert result.returncode == 0, result
        assert result.stdout == b"hello now\n"
        assert alive(pid)
        code, data = status_json(project)
        assert code == 0 and data["master"]["pid"] == pid
        # Its output goes to the log.
        log = project.log
        assert re.search(r"^\d\d:\d\d:\d\d app: ready in \d+\.\d\d s$", log, re.MULTILINE), log
        assert "listening on" in log
        stop = project.run("stop", timeout=25)
        assert stop.returncode == 0, stop
        assert stop.stdout.decode() == f"zeus: stopped the master (pid {pid})\n"
        stopped(project, pid)


@pytest.mark.parametrize("form", ["--log=FILE", "--log FILE"])
def test_detach_keeps_a_relative_log_where_it_was_given(project: Project, form: str) -> None:
    """The background master runs in the project root: a relative --log, in either form, is
    made absolute first, so the trace lands beside the user's cwd (here a subfolder)."""
    import subprocess

    from tests.harness.project import ZEUS

    sub = project.root / "sub"
    sub.mkdir()
    log = ["--log=trace.log"] if form == "--log=FILE" else ["--log", "trace.log"]
    with background(project):
        started = subprocess.run([ZEUS, "start", "--detach", *log], cwd=sub, capture_output=True,
                                 timeout=DETACH_TIMEOUT, env=project.env())
        assert started.returncode == 0, started
        wait_for(lambda: (sub / "trace.log").exists(), 10, what="the trace in sub/")
        assert not (project.root / "trace.log").exists()
        assert project.run("stop", timeout=25).returncode == 0


def test_detach_twice_is_refused(project: Project) -> None:
    with background(project):
        pid = detach(project)
        again = project.run("start", "--detach", timeout=DETACH_TIMEOUT)
        assert alive(pid)
        assert project.run("hello").returncode == 0
        assert again.returncode == 1, again
        assert b"already running" in again.stderr, again
        assert b"started" not in again.stdout, again


# -- autostart ------------------------------------------------------------------------------------

AUTOSTART_NOTE = b"no master was running here; starting one in the background"


@pytest.mark.parametrize("how", ["zeus.json", "ZEUS_AUTOSTART=1"])
def test_autostart(project: Project, how: str) -> None:
    env = project.env()
    if how == "zeus.json":
        project.write(DEFAULT_TREE, DEFAULT_PLAN, extra={"autostart": True})
    else:
        env["ZEUS_AUTOSTART"] = "1"
    with background(project):
        result = project.run("hello", "auto", env=env, timeout=DETACH_TIMEOUT)
        assert result.returncode == 0, result
        assert result.stdout == b"hello auto\n"
        assert AUTOSTART_NOTE in result.stderr
        assert result.stderr.count(b"\n") == 1, result.stderr
        code, data = status_json(project)
        assert code == 0 and data["master"] is not None
        pid = data["master"]["pid"]
        # The next command finds it: no second start.
        result = project.run("hello", "again", env=env)
        assert result.stdout == b"hello again\n" and result.stderr == b""
        assert project.run("stop", timeout=25).returncode == 0
        stopped(project, pid)


def test_no_autostart_by_default_or_when_turned_off(project: Project) -> None:
    result = project.run("hello")
    assert result.returncode == 1
    assert result.stderr == b"Can't connect to master. Run zeus start first.\n"
    project.write(DEFAULT_TREE, DEFAULT_PLAN, extra={"autostart": True})
    with background(project):
        result = project.run("hello", env=project.env(ZEUS_AUTOSTART="0"))
        assert result.returncode == 1
        assert AUTOSTART_NOTE not in result.stderr
        assert not os.path.exists(pid_file(project))


# -- idle timeout ---------------------------------------------------------------------------------

def test_idle_timeout_stops_a_detached_master(project: Project) -> None:
    project.write(DEFAULT_TREE, DEFAULT_PLAN, extra={"idle_timeout": IDLE})
    with background(project):
        pid = detach(project)
        # Commands closer together than the timeout keep it alive well past the timeout.
        deadline = time.monotonic() + 2 * IDLE + IDLE_CHECK
        while time.monotonic() < deadline:
            result = project.run("hello")
            assert result.returncode == 0, result
            assert alive(pid), "stopped while commands kept coming"
            time.sleep(IDLE / 3)
        last = time.monotonic()
        # Then, without commands, it stops itself: IDLE after the last one (checked each second).
        wait_for(lambda: master_gone(project, pid), IDLE + IDLE_CHECK + 5,
                 what="the idle master to stop")
        assert time.monotonic() - last >= IDLE - 0.1
        assert f"no command for {IDLE:g} s: stopping (idle_timeout)" in project.log
        assert not (left := wait_no_processes(mark=project.mark, timeout=EXIT_TIMEOUT)), left


def test_idle_timeout_is_off_by_default(project: Project) -> None:
    with background(project):
        pid = detach(project)
        time.sleep(2 * IDLE + IDLE_CHECK)
        assert alive(pid)
        assert project.run("hello").returncode == 0


def test_idle_timeout_counts_from_the_end_of_the_last_command(project: Project) -> None:
    project.write(DEFAULT_TREE, DEFAULT_PLAN, extra={"idle_timeout": IDLE})
    with background(project):
        pid = detach(project)
        result = project.run("sleep", str(IDLE + IDLE_CHECK), timeout=20)
        assert result.returncode == 0, result
        ended = time.monotonic()
        # Idle for less than IDLE since the command ended: still there.
        time.sleep(IDLE * 0.6)
        assert time.monotonic() - ended < IDLE
        assert alive(pid), "stopped less than idle_timeout after the last command ended"
