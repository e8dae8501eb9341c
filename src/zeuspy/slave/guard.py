"""The guard: two idle processes beside a spare command, which leads a session of its own.

A spare command leads a session so that it can take the client's terminal as its controlling
terminal without a fork (only a session leader can, and a process forked before its session took
a terminal never has it). Two things a runner did for a command in its session fall to the guard:

- **^Z.** The kernel drops the stop signals (^Z, SIGTSTP) sent to an *orphaned* process group:
  one where no member has a parent in the same session outside the group. A session leader's
  parent is always outside its session, so its group starts orphaned. The leader forks a
  *keeper*, which moves to a group of its own in the session, and the keeper starts a *member*
  that joins the leader's group: the member's parent is in the session but outside the group, so
  the group is not orphaned, as a shell's job is not. The member ignores the signals a terminal
  or the client sends to the whole group.
- **The master's death.** Nobody can relay the command's output or status then, and the client
  may not have learnt its pid: the keeper sends the leader's group SIGHUP (as a closed terminal
  would), then SIGKILL after ``MASTER_GONE_GRACE`` (command.py).

Both live until the leader and everything it forked without exec have exited (the guard pipe's
EOF); on Linux they also die with their parent.
"""

from __future__ import annotations

import os
import select
import signal
import time

from zeuspy.slave import process
from zeuspy.slave.command import MASTER_GONE_GRACE, WAIT_POLL_INTERVAL

#: What the guard ignores: signals sent to the whole group that must not end or stop it.
IGNORED = (
    signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
    signal.SIGHUP, signal.SIGWINCH, signal.SIGUSR1, signal.SIGUSR2,
)
#: Highest fd the guard closes (everything but the guard pipe).
MAX_FD = 65536
#: Where ``cat`` may be: the member runs it on the guard pipe (it reads until EOF and writes
#: nothing), a spawn that copies none of the phase's memory; without it, a fork.
CAT = ("/bin/cat", "/usr/bin/cat")


def start() -> int:
    """In a session leader: start the keeper and the member; returns the guard pipe's write
    end, which must stay open (it is close-on-exec, so exec'd children do not keep it) for as
    long as the group must stay a job. Both show ``zeus guard: <leader pid>`` in ``ps``."""
    keep_r, keep_w = os.pipe()
    leader = os.getpid()
    if os.fork():
        os.close(keep_r)
        return keep_w
    try:  # the keeper
        _shed_everything_but(keep_r)
        os.setpgid(0, 0)
        process.die_with_parent(leader)
        process.reset_signals()  # none of the phase's handlers
        for signum in IGNORED:
            signal.signal(signum, signal.SIG_IGN)  # the member inherits these
        title = f"zeus guard: {leader}"
        _start_member(leader, keep_r, title)
        process.set_title(title)
        _keep(leader, keep_r)
    finally:
        os._exit(0)


def _start_member(leader: int, keep_r: int, title: str) -> None:
    cat = next((path for path in CAT if os.access(path, os.X_OK)), None)
    if cat is not None:
        try:
            os.posix_spawn(cat, [title], os.environ, setpgroup=leader,
                           file_actions=[(os.POSIX_SPAWN_DUP2, keep_r, 0)])
            return
        except OSError:
            pass
    keeper = os.getpid()
    if os.fork() == 0:
        try:
            os.setpgid(0, leader)
            process.die_with_parent(keeper)
            process.set_title(title)
            while os.read(keep_r, 1):
                pass
        finally:
            os._exit(0)


def _keep(leader: int, keep_r: int) -> None:
    """Wait for the guard pipe's EOF; end the leader's group if the master dies first."""
    master = _watch_master()
    hung_up: float | None = None
    while True:
        if hung_up is not None:
            timeout: float | None = max(0.0, hung_up + MASTER_GONE_GRACE - time.monotonic())
        else:
            timeout = None if master is not None else WAIT_POLL_INTERVAL
        waiting = [keep_r] if master is None or hung_up is not None else [keep_r, master]
        ready, _, _ = select.select(waiting, [], [], timeout)
        if keep_r in ready:
            try:
                if not os.read(keep_r, 1):
                    return
            except OSError:
                return
            continue
        if hung_up is None and (master in ready or not process.master_alive()):
            hung_up = time.monotonic()
            _signal_group(leader, signal.SIGHUP)
        elif hung_up is not None and time.monotonic() >= hung_up + MASTER_GONE_GRACE:
            _signal_group(leader, signal.SIGKILL)
            return


def _watch_master() -> int | None:
    """A pidfd that becomes readable when the master exits (Linux 5.3+), or None (then the
    keeper polls)."""
    if process.master_pid <= 1 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(process.master_pid)
    except OSError:
        return None


def _signal_group(leader: int, signum: int) -> None:
    try:
        os.killpg(leader, signum)
    except OSError:
        pass


def _shed_everything_but(fd: int) -> None:
    """Close every fd above stderr except ``fd``: sockets and pipes held by the guard would keep
    their other ends from seeing EOF (the phase's hand-over socket, the status pipe)."""
    os.closerange(3, fd)
    os.closerange(fd + 1, MAX_FD)
