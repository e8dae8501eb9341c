"""Liveness end to end (docs/architecture.md, Trust, Liveness): every death of a phase is seen at
once, even when the phase's code forked helpers (a multiprocessing pool, a daemon child) that
would otherwise keep its control socket open; and a stopped or wedged master is named as such by
``zeus status``, ``restart`` and ``stop``, which stops it anyway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.master import Master, running_master
from tests.harness.processes import alive, fd_targets, proc_state, project_leftovers
from tests.harness.project import Project
from tests.harness.waits import EXIT_TIMEOUT, wait_for

#: A phase's death must show in ``zeus status`` within this (it took 10 s and more when a
#: helper the phase forked kept its socket open).
DEATH_SEEN_WITHIN = 1.0
#: ``zeus status`` and ``restart`` must name a stopped master within this (no 5 s query timeout).
STOPPED_SEEN_WITHIN = 2.0
#: Exit status of ``zeus status`` (and ``restart``) when a master runs but does not answer.
EXIT_NO_ANSWER = 5

HELPERS_PLAN = """
import ctypes, json, multiprocessing, os, subprocess, sys, time
import zeuspy


def square(x):
    return x * x


class TestPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        # Helpers forked by the phase's own code: a child forked by C code, which runs no
        # Python fork hook and so keeps the phase's socket (the master learns of the death from
        # the kernel), a pool (fork start method) and a daemon child.
        raw = ctypes.CDLL(None).fork()
        if raw == 0:
            time.sleep(600)
            os._exit(0)
        self.pool = multiprocessing.get_context("fork").Pool(2)
        assert self.pool.map(square, range(4)) == [0, 1, 4, 9]
        daemon = os.fork()
        if daemon == 0:
            time.sleep(600)
            os._exit(0)
        # Written whole, then renamed: the test reads the file as soon as it exists.
        with open("helpers.json.part", "w") as f:
            json.dump({"phase": os.getpid(), "daemon": daemon, "raw": raw,
                       "pool": [p.pid for p in self.pool._pool]}, f)
        os.replace("helpers.json.part", "helpers.json")

    def hello(self, argv):
        print("hello", *argv)

    def pooled(self, argv):
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(sum(pool.map(square, range(10))))

    def spawned(self, argv):
        subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
"""

HELPERS_TREE: dict[str, Any] = {"boot": {"app": {"hello": None, "pooled": None,
                                                 "spawned": None}}}


def status_json(project: Project) -> tuple[int, dict[str, Any]]:
    result = project.run("status", "--json")
    return result.returncode, json.loads(result.stdout)


def phase_entry(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in snapshot["phases"] if p["name"] == name)


def death_logged(project: Project, pid: int) -> float:
    """When the master logged the unexpected death of phase process ``pid`` (Unix time)."""
    needle = f"(pid {pid}) died unexpectedly"
    line = wait_for(lambda: next((line for line in project.log.splitlines() if needle in line),
                                 None), timeout=2.0, what="the death in the master's log")
    stamp, millis = line[:23].split(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000


def read_helpers(project: Project) -> dict[str, Any]:
    path = project.root / "helpers.json"
    wait_for(path.exists, what="the app phase to write helpers.json")
    return json.loads(path.read_text())


def test_killed_phase_with_forked_helpers_is_seen_dead_at_once(project: Project) -> None:
    project.write(HELPERS_TREE, HELPERS_PLAN)
    with running_master(project, "boot", "app") as master:
        helpers = read_helpers(project)
        old = helpers["phase"]
        app = phase_entry(status_json(project)[1], "app")
        assert (app["state"], app["pid"]) == ("ready", old)
        os.remove(project.root / "helpers.json")
        killed = time.time()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not alive(old), timeout=2.0, what="the phase to die")
        changed = False
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            _, snapshot = status_json(project)
            app = phase_entry(snapshot, "app")
            assert not (app["pid"] == old and app["state"] == "ready"), (
                f"zeus status shows the dead phase (pid {old}) as ready: {app}")
            changed = changed or app["pid"] != old
            time.sleep(0.02)
        assert changed, f"zeus status still shows pid {old} 2 s after its death"
        seen = death_logged(project, old) - killed
        assert seen < DEATH_SEEN_WITHIN, f"the death of the phase was seen after {seen:.2f} s"
        # The helpers of the dead phase went with it (its process group), and the phase came
        # back with new ones.
        for pid in (helpers["raw"], helpers["daemon"], *helpers["pool"]):
            wait_for(lambda pid=pid: not alive(pid), timeout=3.0,
                     what=f"helper {pid} of the dead phase to exit")
        fresh = read_helpers(project)
        assert fresh["phase"] != old
        wait_for(lambda: phase_entry(status_json(project)[1], "app")["state"] == "ready",
                 what="app ready again")
        # Forks of the user's code keep working, in phases and commands.
        pooled = project.run("pooled")
        assert (pooled.returncode, pooled.stdout) == (0, b"285\n"), pooled.stderr
        spawned = project.run("spawned")
        assert (spawned.returncode, spawned.stdout) == (0, b"from a subprocess\n"), spawned.stderr
        assert master.proc.poll() is None
    project_leftovers(project)


def test_helpers_do_not_hold_the_phase_fds(project: Project) -> None:
    """A helper forked by the phase's code holds none of the phase's sockets (its stream to the
    master, the bootstrap socket) nor pipes shared with the master (the feature pipe)."""
    project.write(HELPERS_TREE, HELPERS_PLAN)
    with running_master(project, "boot", "app") as master:
        helpers = read_helpers(project)
        phase_sockets = {link for link in fd_targets(helpers["phase"])
                         if link.startswith("socket:")}
        master_pipes = {link for link in fd_targets(master.proc.pid) if link.startswith("pipe:")}
        assert phase_sockets and master_pipes
        for pid in (helpers["daemon"], *helpers["pool"]):
            held = set(fd_targets(pid)) & (phase_sockets | master_pipes)
            assert not held, f"helper {pid} holds the phase's {held}"
    project_leftovers(project)





CRASHING_PLAN = """
import ctypes, os, sys, time
import zeuspy


class TestPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        # A helper forked by C code keeps the phase's socket open; then the action fails.
        raw = ctypes.CDLL(None).fork()
        if raw == 0:
            time.sleep(600)
            os._exit(0)
        with open("helper.pid", "w") as f:
            f.write(str(raw))
        raise RuntimeError("kaboom-with-a-helper")

    def hello(self, argv):
        print("hello")
"""

RETURNING_CHILD_PLAN = """
import os, sys
import zeuspy


class TestPlan(zeuspy.Plan):
    def boot(self):
        import json

    def app(self):
        child = os.fork()
        if child == 0:
            return  # a bug: the child falls off the action, back into the shim
        with open("child.pid", "w") as f:
            f.write(str(child))

    def hello(self, argv):
        print("hello")
"""

SMALL_TREE: dict[str, Any] = {"boot": {"app": {"hello": None}}}


def test_crash_with_a_helper_keeps_its_traceback_and_ends_the_helper(project: Project) -> None:
    """The kernel reports the death before the socket's EOF (a helper holds it): the boot result
    the phase sent before it died is still read, and the helper is ended."""
    project.write(SMALL_TREE, CRASHING_PLAN)
    with running_master(project, "boot"):
        app = wait_for(lambda: (entry := phase_entry(status_json(project)[1], "app"))["state"]
                       == "crashed" and entry["pid"] is None and entry,
                       what="app crashed, its process gone")
        assert "kaboom-with-a-helper" in app["error"]
        helper = int(wait_for(lambda: (project.root / "helper.pid").read_text(), timeout=2.0))
        wait_for(lambda: not alive(helper), timeout=3.0, what="the helper to be ended")
    project_leftovers(project)


REAPED_FIRST_PLAN = """
import ctypes, os, sys, time
import zeuspy


def hold_until_go():
    # In the app phase, before it registers: wait (bounded) for the test's go.
    deadline = time.monotonic() + 20
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.01)
    with open("app.pid.part", "w") as f:
        f.write(str(os.getpid()))
    os.replace("app.pid.part", "app.pid")


class TestPlan(zeuspy.Plan):
    def boot(self):
        os.register_at_fork(after_in_child=hold_until_go)

    def app(self):
        raw = ctypes.CDLL(None).fork()
        if raw == 0:
            time.sleep(600)
            os._exit(0)
        with open("helper.pid", "w") as f:
            f.write(str(raw))
        raise RuntimeError("kaboom-reaped-first")

    def hello(self, argv):
        print("hello")
"""


def test_a_phase_dead_and_reaped_before_its_registration_is_read_is_seen_dead(
        project: Project) -> None:
    """The app phase registers, crashes and is reaped by its parent phase while the master is
    stopped: no pidfd can be opened on it and its helper holds its socket (no EOF), yet the
    master, once it reads the registration, sees the crash and ends the helper (it waited for
    the helper's 600 s before)."""
    project.write(SMALL_TREE, REAPED_FIRST_PLAN)
    with running_master(project, "boot") as master:
        with stopped(master):
            (project.root / "go").touch()
            app = int(wait_for(lambda: (project.root / "app.pid").exists()
                               and (project.root / "app.pid").read_text(), what="the app pid"))
            wait_for(lambda: proc_state(app) is None, what="the app phase to be reaped by boot")
        entry = wait_for(lambda: (entry := phase_entry(status_json(project)[1], "app"))["state"]
                         == "crashed" and entry["pid"] is None and entry,
                         what="app crashed, its process gone")
        assert "kaboom-reaped-first" in entry["error"]
        helper = int((project.root / "helper.pid").read_text())
        wait_for(lambda: not alive(helper), timeout=EXIT_TIMEOUT, what="the helper to be ended")
    project_leftovers(project)


def test_a_child_returning_into_the_shim_exits(project: Project) -> None:
    """A child forked by the action that returns from it ends there; the phase is unaffected."""
    project.write(SMALL_TREE, RETURNING_CHILD_PLAN)
    with running_master(project, "boot", "app"):
        child = int(wait_for(lambda: (project.root / "child.pid").read_text(), timeout=2.0))
        wait_for(lambda: not alive(child), timeout=3.0, what="the returning child to exit")
        result = project.run("hello")
        assert (result.returncode, result.stdout) == (0, b"hello\n"), result.stderr
        app = phase_entry(status_json(project)[1], "app")
        assert app["state"] == "ready" and app["pid"] != child
        assert "Traceback" not in project.log
    project_leftovers(project)


# -- a stopped or wedged master -------------------------------------------------------------------

@contextmanager
def stopped(master: Master) -> Iterator[int]:
    """The master stopped (as by ^Z in its terminal) for the block; continued after it."""
    pid = master.proc.pid
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", timeout=2.0, what="the master to stop")
    try:
        yield pid
    finally:
        if master.proc.poll() is None:
            os.kill(pid, signal.SIGCONT)


def timed(project: Project, *args: str) -> tuple[subprocess.CompletedProcess[bytes], float]:
    start = time.monotonic()
    result = project.run(*args)
    return result, time.monotonic() - start


def test_status_and_restart_name_a_stopped_master(project: Project) -> None:
    with running_master(project, "boot", "app") as master:
        with stopped(master) as pid:
            result, took = timed(project, "status")
            assert result.returncode == EXIT_NO_ANSWER, result.stderr
            text = result.stderr.decode()
            assert f"(pid {pid}) is stopped" in text, text
            assert "fg" in text and f"kill -CONT {pid}" in text, text
            assert "no master is running" not in text
            assert took < STOPPED_SEEN_WITHIN, f"zeus status took {took:.2f} s"

            result, took = timed(project, "status", "--json")
            assert result.returncode == EXIT_NO_ANSWER
            snapshot = json.loads(result.stdout)
            assert snapshot["master"] is None and snapshot["phases"] == []
            assert snapshot["unresponsive"] == {"pid": pid, "reason": "stopped"}
            assert took < STOPPED_SEEN_WITHIN

            result, took = timed(project, "restart")
            assert result.returncode == EXIT_NO_ANSWER
            assert f"kill -CONT {pid}" in result.stderr.decode()
            assert took < STOPPED_SEEN_WITHIN
            assert proc_state(pid) == "T", "zeus restart must leave a stopped master stopped"
        # Continued, it answers again, and says all is well.
        result = project.run("status", "--json")
        assert result.returncode == 0, result.stderr
        assert "unresponsive" not in json.loads(result.stdout)


def test_stop_stops_a_stopped_master(project: Project) -> None:
    master = Master(project)
    try:
        master.wait_ready("boot", "app")
        pid = master.proc.pid
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(pid) == "T", timeout=2.0, what="the master to stop")
        result, took = timed(project, "stop")
        assert result.returncode == 0, result.stderr
        assert f"(pid {pid}) was stopped" in result.stderr.decode(), result.stderr
        assert f"stopped the master (pid {pid})" in result.stdout.decode()
        assert took < 8.0, f"zeus stop took {took:.2f} s"
        assert master.proc.wait(EXIT_TIMEOUT) == 0
    finally:
        master.stop()
    project_leftovers(project)
    after = project.run("status")
    assert after.returncode == 3 and b"no master is running" in after.stderr


#: A master that holds the project (its locked pid file and a listening socket) and never
#: answers: a wedged event loop.
WEDGED = """
import os, socket, sys, time
sys.path.insert(0, {src!r})
from zeuspy.master.lock import PidLock
root = {root!r}
lock = PidLock(os.path.join(root, ".zeus", "master.pid"))
lock.acquire()
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(os.path.join(root, ".zeus.sock"))
server.listen(8)
print("listening", flush=True)
time.sleep(120)
"""


def test_status_and_stop_name_a_wedged_master(project: Project) -> None:
    import zeuspy

    src = str(Path(zeuspy.__file__).parent.parent)
    code = textwrap.dedent(WEDGED).format(src=src, root=str(project.root))
    wedged = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              env=project.env())
    try:
        assert wedged.stdout is not None
        assert wedged.stdout.readline() == b"listening\n"
        result, took = timed(project, "status")
        assert result.returncode == EXIT_NO_ANSWER, result.stderr
        text = result.stderr.decode()
        assert f"(pid {wedged.pid}) runs but did not answer within 5 s" in text, text
        assert took < 8.0

        result, took = timed(project, "stop")
        assert result.returncode == 0, result.stderr
        assert f"stopped the master (pid {wedged.pid})" in result.stdout.decode()
        assert took < 10.0
        assert wedged.wait(EXIT_TIMEOUT) == -signal.SIGTERM
    finally:
        if wedged.poll() is None:
            wedged.kill()
            wedged.wait(EXIT_TIMEOUT)
