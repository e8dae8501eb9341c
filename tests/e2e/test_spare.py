"""Commands served by the phase's spare (shim/spare.py) and its guard (shim/guard.py): the
spare leads a session, takes the client's terminal itself, stays a job ^Z can stop, and is
reported and cleaned up as a forked command is.

Each test first runs a command (the first request of a phase forks a runner; the phase keeps a
spare from then on), waits for the spare, and checks that the command under test ran in it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pexpect
import pytest

from tests.harness.clients import (
    client_master,
    client_pid_under,
    held_request,
    sleeping_client,
    suspend_and_resume,
    warm_spare,
)
from tests.harness.master import running_master
from tests.harness.processes import (
    check_no_leftovers,
    children_of,
    is_dead,
    kill_quietly,
    proc_state,
    titled,
)
from tests.harness.project import ZEUS, Project, atomic_save
from tests.harness.terminal import exit_code, finish, spawn
from tests.harness.waits import wait_for


@pytest.fixture(autouse=True)
def no_leftovers(project: Project) -> Iterator[None]:
    yield
    check_no_leftovers(project.root)


def session_info(output: bytes) -> dict[str, object]:
    line = output.split(b"SESSION ", 1)[1].splitlines()[0]
    info: dict[str, object] = json.loads(line)
    return info


def stat_fields(pid: int) -> list[bytes]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def test_a_terminal_command_from_the_spare_owns_the_terminal(project: Project) -> None:
    with client_master(project):
        spare = warm_spare(project)
        child = spawn(project, "session")
        info = session_info(finish(child))
        assert exit_code(child) == 0
    assert info["pid"] == spare
    assert info["sid"] == info["pgrp"] == spare  # it leads its session
    assert info["tcpgrp"] == spare  # its group is the terminal's foreground group
    assert info["devtty"] is True  # the client's PTY is its controlling terminal


def test_a_piped_command_from_the_spare_has_no_terminal(project: Project) -> None:
    with client_master(project):
        spare = warm_spare(project)
        done = project.run("session")
    assert done.returncode == 0, done.stderr
    info = session_info(done.stdout)
    assert info["pid"] == info["sid"] == spare
    assert info["tcpgrp"] is None
    assert info["devtty"] is False  # as for a program started without a terminal


def test_the_guard_keeps_the_spare_a_job_and_goes_with_it(project: Project) -> None:
    with client_master(project):
        spare = warm_spare(project)
        def settled() -> list[int] | None:
            # The member shows the keeper's title from its spawn on (its memory is the keeper's
            # until it execs), before it joins the spare's group: wait for the join.
            found = titled(project, f"zeus guard: {spare}")
            try:
                joined = [pid for pid in found if int(stat_fields(pid)[2]) == spare]
            except OSError:  # gone meanwhile
                return None
            return found if len(found) == 2 and len(joined) == 1 else None

        guard = wait_for(settled, timeout=5, what="the guard")
        # fields after the name: state, ppid, pgrp, session
        keeper = next(pid for pid in guard if int(stat_fields(pid)[2]) == pid)
        member = next(pid for pid in guard if pid != keeper)
        assert int(stat_fields(keeper)[3]) == spare  # a group of its own in the spare's session
        assert int(stat_fields(keeper)[1]) != spare  # not the command's child (os.wait())
        assert int(stat_fields(member)[1]) == keeper  # its parent is in the session...
        assert int(stat_fields(member)[2]) == spare  # ...and it is in the spare's group
        with sleeping_client(project, "sleep", "30") as (proc, pid):
            assert pid == spare
            proc.send_signal(signal.SIGTERM)  # forwarded to the command
            proc.communicate(timeout=10)
            wait_for(lambda: is_dead(pid), timeout=5, what="the command to end")
            wait_for(lambda: not any(map(proc_state, (keeper, member))), timeout=5,
                     what="the guard to end with its command")


def test_sigtstp_stops_a_piped_spare_command(project: Project) -> None:
    """The client forwards SIGTSTP and stops itself; the kernel would ignore the signal in an
    orphaned group, which the guard prevents."""
    with client_master(project):
        spare = warm_spare(project)
        with sleeping_client(project, "sleep", "30") as (proc, pid):
            assert pid == spare
            time.sleep(0.2)  # let the master's pid message reach the client
            proc.send_signal(signal.SIGTSTP)
            wait_for(lambda: proc_state(pid) == "T", timeout=5, what="the command to stop")
            # As a shell does: continue the client once it has stopped itself.
            wait_for(lambda: proc_state(proc.pid) == "T", timeout=5, what="the client to stop")
            proc.send_signal(signal.SIGCONT)
            wait_for(lambda: proc_state(pid) not in ("T", None), timeout=5,
                     what="the command to continue")
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)


def test_ctrl_z_stops_a_terminal_spare_command_and_fg_resumes(project: Project) -> None:
    env = project.env(PS1="ZP> ", TERM="dumb")
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "--noediting", "-i"],
                          cwd=str(project.root), env=env, timeout=10, dimensions=(24, 80))
    try:
        with client_master(project):
            spare = warm_spare(project)
            shell.expect_exact(b"ZP> ")
            shell.sendline(f"{ZEUS} resume")
            shell.expect(rb"pid (\d+)\r\n", timeout=10)
            pid = int(shell.match.group(1))
            assert pid == spare
            time.sleep(0.2)
            suspend_and_resume(shell, pid, client_pid_under(shell.pid))
    finally:
        shell.close(force=True)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_spare_command_killed_by_a_signal_kills_the_client(project: Project,
                                                        signum: int) -> None:
    """It cannot report itself: its phase, which reaps it, does."""
    with client_master(project):
        spare = warm_spare(project)
        done = project.run("suicide", str(int(signum)))
    assert done.returncode == -signum, done.stderr  # it reports the signal too
    assert done.stdout == b"dying\n"
    assert is_dead(spare)


def test_a_spare_command_outlives_a_restart_of_its_phases(project: Project) -> None:
    with client_master(project) as master:
        spare = warm_spare(project)
        with sleeping_client(project, "sleep", "1.5") as (proc, pid):
            assert pid == spare
            assert project.run("restart", timeout=30).returncode == 0
            master.wait_ready("boot", "app")
            _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_master_killed_while_a_spare_command_runs_ends_it(project: Project) -> None:
    """The client is stopped, so it cannot end the command itself: the guard's keeper does."""
    with client_master(project) as master:
        spare = warm_spare(project)
        with sleeping_client(project, "sleep", "30") as (proc, pid):
            assert pid == spare
            proc.send_signal(signal.SIGSTOP)
            master.proc.kill()
            wait_for(lambda: is_dead(pid), timeout=5, what="the keeper to end the command")


def outcome(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    """The client's status and output (EOF: once every process holding its pipes closed them)."""
    try:
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()  # a no-op once reaped (its pid may be another process's by then)
        proc.communicate(timeout=5)
    return proc.returncode, out, err


def test_a_request_handed_to_a_spare_survives_a_restart_of_its_phase(project: Project) -> None:
    """A runner, forked at the request, outlives its phase; so must a spare that was handed the
    request."""
    with client_master(project) as master:
        with held_request(project) as (proc, _):
            app = master.phase_pid("app")
            assert project.run("restart", timeout=30).returncode == 0
            wait_for(lambda: is_dead(app), timeout=5, what="the old app phase to die")
        got = outcome(proc)
        master.wait_ready("boot", "app")
    assert got[:2] == (0, b"hello x\n"), got


def test_a_request_whose_spare_dies_before_the_command_starts_is_placed_again(
        project: Project) -> None:
    """A spare killed after the phase handed it the request, before its command registered:
    its phase reports the death on the runner socket, nothing of the command ran, so the
    master places the request again, and it runs once, in a new process."""
    with client_master(project):
        with held_request(project) as (proc, spare):
            kill_quietly(spare, signal.SIGKILL)
        got = outcome(proc)
        log = project.log
    assert got == (0, b"hello x\n", b""), got
    assert "placing hello again" in log, log


def test_a_request_whose_phase_ends_before_the_command_starts_runs_once(
        project: Project) -> None:
    """The phase that handed the request to the held spare is restarted: STATUS_GRACE after it
    died the master shuts the runner socket for reading and places the request again, with the
    new phase. When the old spare runs at last, its registration fails and it ends without
    running the command: the output is there once."""
    with client_master(project) as master:
        with held_request(project) as (proc, spare):
            assert project.run("restart", timeout=30).returncode == 0
            wait_for(lambda: "placing hello again" in project.log,
                     timeout=10, what="the request to be placed again")
            # The client is answered by the new phase's command, while the old spare waits.
            assert proc.wait(timeout=10) == 0
        got = outcome(proc)
        wait_for(lambda: is_dead(spare), timeout=5, what="the old spare to end")
        master.wait_ready("boot", "app")
    assert got == (0, b"hello x\n", b""), got


def test_a_command_that_registers_while_the_master_stops_is_hung_up(project: Project) -> None:
    """The master begins to stop while a request's command has not registered yet (a busy
    master reads it late; here its spare is held stopped): once it registers, it is hung up as
    the commands running at the stop were (one line, SIGHUP, the client dies of SIGHUP), not
    SIGKILLed when their grace ends."""
    with client_master(project) as master:
        with held_request(project, "sleep", "30") as (proc, spare):
            master.proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # the master is stopping, within its commands' grace
            os.kill(spare, signal.SIGCONT)
            assert master.stop() == 0
        got = outcome(proc)
        wait_for(lambda: is_dead(spare), timeout=5, what="the command to end")
    assert got[0] == -signal.SIGHUP, got
    assert got[2].decode().splitlines() == [
        "zeus: the master is stopping; ending the command (SIGHUP)"], got


#: A plan whose app phase makes each child it forks itself (a runner, a spare; not theirs, such as
#: a spare's guard) wait right after the fork, before a spare's setsid, while the marker file
#: exists (5 s at most; also once the phase is gone): a spare the scheduler has not run yet.
SLOW_FORK_PLAN = r"""
import json, os, time
import zeuspy

APP = []

def _slow_child():
    if os.getppid() not in APP:
        return
    deadline = time.monotonic() + 5
    while os.path.exists(%(marker)r) and time.monotonic() < deadline:
        time.sleep(0.01)


class Plan(zeuspy.Plan):
    def boot(self):
        pass

    def app(self):
        import appmod  # saving it restarts this phase alone: SIGTERM to its process group
        APP.append(os.getpid())
        os.register_at_fork(after_in_child=_slow_child)

    def hello(self, argv):
        print("hello", *argv)

    def session(self, argv):
        print("SESSION", json.dumps({"pid": os.getpid(), "sid": os.getsid(0)}), flush=True)
"""


def sigterm_held(pid: int) -> bool:
    """Whether SIGTERM is blocked in process ``pid`` and waits there (pending for the process:
    a signal sent to its group)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("ShdPnd", "SigBlk"):
                    fields[name] = int(value, 16)
    except (OSError, ValueError):
        return False
    bit = 1 << (signal.SIGTERM - 1)
    return len(fields) == 2 and all(mask & bit for mask in fields.values())


def not_in_own_session(phase: int) -> list[int]:
    """The children of ``phase`` still in its session: spares forked and not yet past setsid."""
    found = []
    for pid in children_of(phase):
        try:
            if os.getsid(pid) == os.getsid(phase):
                found.append(pid)
        except ProcessLookupError:
            pass
    return found


def test_a_request_handed_to_a_spare_before_its_setsid_survives_a_restart(
        project: Project) -> None:
    """Between its fork and its setsid a spare is in its phase's process group, which a restart
    (here: saving a module the phase imported) signals; the phase may hand it a request
    meanwhile (it forks the next spare 15 ms after a request). Such a spare must not die of the
    restart's SIGTERM: nobody would report the command (the client waited 10 s for status 1)."""
    marker = project.root / "slow-forks"
    # Learning off: a learned import makes the phase replace its spare, and this test must know
    # which spare takes the request.
    project.write(tree={"boot": {"app": {"hello": None, "session": None}}},
                  plan=SLOW_FORK_PLAN % {"marker": str(marker)}, extra={"learn_imports": False})
    module = project.root / "appmod.py"
    module.write_text("VERSION = 1\n")
    with running_master(project, "boot", "app") as master:
        warm_spare(project)
        app = master.phase_pid("app")
        marker.touch()
        assert project.run("hello", "a").returncode == 0  # the warm spare runs it
        young = wait_for(lambda: not_in_own_session(app), timeout=5,
                         what="the next spare, before its setsid")[0]
        proc = subprocess.Popen([ZEUS, "session"], cwd=project.root, env=project.env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            try:
                # Handed over: the phase forks yet another spare 15 ms later.
                wait_for(lambda: len(not_in_own_session(app)) >= 2, timeout=5,
                         what="the phase to hand the request to the young spare")
                assert not is_dead(young) and os.getsid(young) == os.getsid(app)
                atomic_save(module, "VERSION = 2\n")  # app restarts after the change delay
                # The restart's SIGTERM reached it before its setsid (the window is hit).
                wait_for(lambda: sigterm_held(young) or is_dead(young), timeout=5,
                         what="the restart's SIGTERM at the young spare")
                assert not is_dead(young), "the young spare died of the restart's SIGTERM"
            finally:
                # Let the spares go on (before the master's SIGKILL to the group, 1 s later).
                marker.unlink(missing_ok=True)
            out, err = proc.communicate(timeout=20)
        finally:
            proc.kill()  # a no-op once reaped (its pid may be another process's by then)
            proc.communicate(timeout=5)
        master.wait_ready("boot", "app")
    assert proc.returncode == 0, err
    info = session_info(out)
    assert info["pid"] == info["sid"] == young
