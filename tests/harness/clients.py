"""Clients of the client plan (tests.harness.plans.CLIENT_PLAN): its master, a client whose
command sleeps, the client under a shell, job control in an interactive shell, the spare a
first command leaves behind and a request held by that spare. Used by the client and spare
tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pexpect

from tests.harness.master import Master, running_master
from tests.harness.plans import CLIENT_TREE, plan_source
from tests.harness.processes import (
    alive,
    children_of,
    cmdline,
    kill_quietly,
    proc_state,
    titled,
)
from tests.harness.project import ZEUS, Project
from tests.harness.waits import read_until, wait_for


@contextmanager
def client_master(project: Project) -> Iterator[Master]:
    """A master for the client plan, with every phase ready."""
    project.write(tree=CLIENT_TREE, plan=plan_source())
    with running_master(project, "boot", "app") as master:
        yield master


def client_pid_under(shell_pid: int, timeout: float = 5) -> int:
    """The pid of the zeus client a shell started (its child running the launcher)."""
    def find() -> int | None:
        for pid in children_of(shell_pid):
            if "zeus" in cmdline(pid) and alive(pid):
                return pid
        return None

    return int(wait_for(find, timeout, what="the zeus client under the shell"))


def start_job(project: Project, *args: str) -> subprocess.Popen[bytes]:
    """``zeus ARGS`` on pipes, as a job of its own (the caller reaps it)."""
    # A process group of its own, as a shell gives each job: in the test runner's group, which
    # may be orphaned, the kernel would discard the client's SIGTSTP (as it would python's).
    return subprocess.Popen([ZEUS, *args], cwd=project.root, env=project.env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=os.setpgrp)


@contextmanager
def job_client(project: Project, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``zeus ARGS`` on pipes, as a job of its own; killed and reaped on the way out."""
    proc = start_job(project, *args)
    try:
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=5)


@contextmanager
def held_request(project: Project, *command: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``zeus COMMAND`` (``hello x`` by default) as a job, handed by its phase to a spare held
    stopped (SIGSTOP stands for a spare the scheduler has not run yet, or one still preparing:
    forked 15 ms after the previous request, it may get the next one before it reads): the
    client and the spare's pid. The spare is continued on the way out, if it still can; the
    client is killed and reaped only if the block fails (else the caller reaps it)."""
    spare = warm_spare(project)
    os.kill(spare, signal.SIGSTOP)
    proc = start_job(project, *(command or ("hello", "x")))
    try:
        # The phase handed the request over: it forks the next spare 15 ms later.
        wait_for(lambda: len(titled(project, "zeus command: (ready)")) >= 2, timeout=5,
                 what="the phase to hand the request over")
        yield proc, spare
    except BaseException:
        proc.kill()
        proc.communicate(timeout=5)
        raise
    finally:
        kill_quietly(spare, signal.SIGCONT)


@contextmanager
def sleeping_client(project: Project, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``zeus ARGS`` (a command that prints ``sleeping PID``) on pipes: the client and the pid of
    its command; the client is killed and reaped on the way out."""
    with job_client(project, *args) as proc:
        assert proc.stdout is not None
        yield proc, int(read_until(proc.stdout.fileno(), rb"sleeping \d+\n").split()[1])


def suspend_and_resume(shell: pexpect.spawn, pid: int, client: int) -> None:
    """In an interactive bash (prompt ``ZP> ``) running ``zeus resume`` as its foreground job:
    ^Z stops the command and the client, ``fg`` resumes both, the command reads a line and
    exits 5; then the shell exits."""
    shell.sendcontrol("z")
    shell.expect(rb"Stopped", timeout=5)
    shell.expect_exact(b"ZP> ")
    wait_for(lambda: proc_state(pid) == "T", timeout=3, what="the command to stop")
    wait_for(lambda: proc_state(client) == "T", timeout=3, what="the client to stop")
    time.sleep(0.3)  # still stopped a moment later
    assert (proc_state(pid), proc_state(client)) == ("T", "T")

    shell.sendline("fg")
    wait_for(lambda: proc_state(pid) not in ("T", None), timeout=3,
             what="the command to continue")
    wait_for(lambda: proc_state(client) not in ("T", None), timeout=3,
             what="the client to continue")
    time.sleep(0.2)
    shell.sendline("again")
    shell.expect_exact(b"resumed again\r\n")
    shell.expect_exact(b"ZP> ")
    shell.sendline("echo rc=$?")
    shell.expect_exact(b"rc=5")
    shell.sendline("exit")
    shell.expect(pexpect.EOF, timeout=5)


def warm_spare(project: Project) -> int:
    """Run a first command (a phase's first request forks a runner; it keeps a spare from then
    on), then wait for the spare it leaves behind; its pid."""
    assert project.run("hello").returncode == 0
    # Exactly one: the guard's keeper, forked from the spare, shows its title for an instant.
    found = wait_for(lambda: len(ready := titled(project, "zeus command: (ready)")) == 1 and ready,
                     timeout=5, what="the spare command")
    return int(found[0])
