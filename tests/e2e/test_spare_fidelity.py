"""A command served by the spare (shim/spare.py) behaves as it does run directly or through a
runner, where leading a session and having a guard (shim/guard.py) could make it differ: after
an exec, with children of its own, asking for a group of its own."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.harness.clients import held_request, sleeping_client, warm_spare
from tests.harness.master import Master, running_master
from tests.harness.plans import CLIENT_TREE, plan_source
from tests.harness.processes import (
    check_no_leftovers,
    cmdline,
    is_dead,
    kill_quietly,
    proc_state,
)
from tests.harness.project import Project
from tests.harness.waits import read_until, wait_for

EXTRA = r"""
    def exec_sleep(self, argv):
        _ready("sleeping")
        os.execv("/bin/sleep", ["sleep", argv[0] if argv else "30"])

    def reap_all(self, argv):
        # A child of its own, waited for; then "reap whatever is left", as a supervisor does.
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        try:
            print("REAP", list(os.waitpid(-1, os.WNOHANG)), flush=True)
        except ChildProcessError:
            print("REAP none", flush=True)
        print("PID", os.getpid(), flush=True)

    def own_group(self, argv):
        try:
            os.setpgrp()
            print("SETPGRP ok", flush=True)
        except OSError as exc:
            print("SETPGRP", exc.__class__.__name__, exc.errno, flush=True)
        print("PID", os.getpid(), flush=True)

"""
ANCHOR = "    def session(self, argv):\n"


@contextmanager
def review_master(project: Project) -> Iterator[Master]:
    tree = copy.deepcopy(CLIENT_TREE)
    for name in ("exec_sleep", "reap_all", "own_group"):
        tree["boot"]["app"][name] = None
    project.write(tree=tree, plan=plan_source().replace(ANCHOR, EXTRA + ANCHOR, 1))
    with running_master(project, "boot", "app") as master:
        yield master


@pytest.fixture(autouse=True)
def no_leftovers(project: Project) -> Iterator[None]:
    yield
    check_no_leftovers(project.root)


def served_pid(output: bytes) -> int:
    return int(output.split(b"PID ", 1)[1].split()[0])


@contextmanager
def execd_sleep(project: Project) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``zeus exec_sleep`` served by the spare, once the command has exec'd ``sleep``."""
    spare = warm_spare(project)
    pid = 0
    try:
        with sleeping_client(project, "exec_sleep", "30") as (proc, pid):
            assert pid == spare
            wait_for(lambda: "sleep" in cmdline(pid), timeout=5, what="the exec")
            yield proc, pid
    finally:
        if pid:
            kill_quietly(pid)


def test_sigtstp_stops_a_spare_command_that_execd(project: Project) -> None:
    with review_master(project), execd_sleep(project) as (proc, pid):
        proc.send_signal(signal.SIGTSTP)  # forwarded to the command, as for a runner's
        wait_for(lambda: proc_state(pid) == "T", timeout=10, what="the command to stop")


def test_sigtstp_before_the_pid_stops_the_command_once_the_pid_comes(
        project: Project) -> None:
    """The command's output can reach the client before its pid does (the pid comes through
    the master, the output straight from the command). A SIGTSTP then was dropped: the client
    stopped alone and the command ran on. Here the master is held stopped while the command
    registers, prints and execs; the client, sent SIGTSTP, stops the command once the pid
    comes."""
    with review_master(project) as master:
        stopped_master = False
        try:
            with held_request(project, "exec_sleep", "30") as (proc, spare):
                os.kill(master.proc.pid, signal.SIGSTOP)
                stopped_master = True
                os.kill(spare, signal.SIGCONT)
                assert proc.stdout is not None
                pid = int(read_until(proc.stdout.fileno(), rb"sleeping \d+\n").split()[1])
                assert pid == spare
                wait_for(lambda: "sleep" in cmdline(pid), timeout=5, what="the exec")
                proc.send_signal(signal.SIGTSTP)
                time.sleep(0.2)  # the client handles it meanwhile, without the pid
                os.kill(master.proc.pid, signal.SIGCONT)
                stopped_master = False
                wait_for(lambda: proc_state(pid) == "T", timeout=10, what="the command to stop")
                wait_for(lambda: proc_state(proc.pid) == "T", timeout=5,
                         what="the client to stop")
                kill_quietly(pid)
                kill_quietly(pid, signal.SIGCONT)
            proc.kill()  # stopped, as a job after ^Z
            proc.communicate(timeout=5)
        finally:
            if stopped_master:
                os.kill(master.proc.pid, signal.SIGCONT)


def test_master_death_ends_a_spare_command_that_execd(project: Project) -> None:
    with review_master(project) as master, execd_sleep(project) as (proc, pid):
        proc.send_signal(signal.SIGSTOP)  # the client cannot end it either
        master.proc.kill()
        wait_for(lambda: is_dead(pid), timeout=4, what="the command to be ended")


@pytest.mark.parametrize(("command", "expected"), [
    ("reap_all", b"REAP none"),  # no child it did not make (os.wait() would wait for it)
    ("own_group", b"SETPGRP ok"),  # os.setpgrp() is the no-op it is for a command from a shell
])
def test_a_spare_command_behaves_as_one_run_directly(project: Project, command: str,
                                                    expected: bytes) -> None:
    with review_master(project):
        spare = warm_spare(project)
        done = project.run(command)
    assert done.returncode == 0, done.stderr
    assert served_pid(done.stdout) == spare
    assert expected in done.stdout, done.stdout
