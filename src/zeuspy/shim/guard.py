"""The guard: two idle processes beside a spare command, which leads a session of its own.

A spare command leads a session so that it can take the client's terminal as its controlling
terminal without a fork (only a session leader can, and a process forked before its session took
a terminal never has it). Two things a runner did for a command in its session fall to the guard:

- **^Z.** The kernel drops the stop signals (^Z, SIGTSTP) sent to an *orphaned* process group:
  one where no member has a parent in the same session outside the group. A session leader's
  parent is always outside its session, so its group starts orphaned. The leader starts a
  *keeper*, which moves to a group of its own in the session, and the keeper starts a *member*
  that joins the leader's group: the member's parent is in the session but outside the group, so
  the group is not orphaned, as a shell's job is not. The member ignores every signal it can.
- **The master's death.** Nobody can relay the command's output or status then, and the client
  may not have learnt its pid: the keeper sends the leader's group SIGHUP (as a closed terminal
  would), then SIGKILL after ``MASTER_GONE_GRACE`` (runner.py).

The keeper is not the command's child (a double fork: its parent exits at once), so the command
has no child it did not make (``os.wait()`` would wait for it). The keeper watches the leader's
pid, not a pipe, so the guard stays when the command execs another program, and it leaves with
the leader; the member leaves with the keeper (its stdin is a pipe the keeper holds).
"""

from __future__ import annotations

import os
import select
import signal
import time

from zeuspy import procs
from zeuspy.shim import process
from zeuspy.shim.runner import MASTER_GONE_GRACE, WAIT_POLL_INTERVAL

#: Signals that cannot be ignored, or whose being ignored would change nothing for ``cat``.
UNIGNORABLE = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGCONT}
#: Where ``cat`` may be: the member runs it on a pipe (it reads until EOF and writes nothing), a
#: spawn that copies none of the phase's memory; without it, a fork.
CAT = ("/bin/cat", "/usr/bin/cat")
#: How long the leader waits for the keeper to start the member.
READY_TIMEOUT = 1.0


def start() -> int:
    """In a session leader: start the keeper, which starts the member; returns a pipe that
    becomes readable once the member is in place (the group is a job from then on): pass it to
    :func:`wait_ready` before the command runs. Both show ``zeus guard: <leader pid>`` in
    ``ps``."""
    leader = os.getpid()
    ready_r, ready_w = os.pipe()
    middle = os.fork()
    if middle:
        os.close(ready_w)
        os.waitpid(middle, 0)  # it forks the keeper and exits
        return ready_r
    try:
        if os.fork() == 0:
            _keeper(leader, ready_w)
    finally:
        os._exit(0)


def wait_ready(ready_r: int) -> None:
    """Return once the member is in place (:data:`READY_TIMEOUT` at most: a guard that failed
    must not stop the command); closes ``ready_r``. Usually it has been for long: the spare
    prepares and waits for its request meanwhile."""
    try:
        select.select([ready_r], [], [], READY_TIMEOUT)
    finally:
        os.close(ready_r)


def _keeper(leader: int, ready_w: int) -> None:
    try:
        title = f"zeus guard: {leader}"
        process.set_title(title)  # first: until then it shows the leader's
        _close_fds(3, keep=ready_w)  # it must hold nothing of the phase's or the command's
        os.setpgid(0, 0)
        process.reset_signals()  # none of the phase's handlers
        hold = _start_member(leader, title)
        os.write(ready_w, b"r")
        os.close(ready_w)
        _watch(leader)
        os.close(hold)
    finally:
        os._exit(0)


def _start_member(leader: int, title: str) -> int:
    """The member, in the leader's group; returns the write end of its stdin pipe, which the
    keeper keeps open for as long as the member must stay."""
    stdin, hold = os.pipe()
    ignorable = [s for s in signal.valid_signals() if s not in UNIGNORABLE]
    previous = {}
    for signum in ignorable:
        try:
            previous[signum] = signal.signal(signum, signal.SIG_IGN)  # inherited by the spawn
        except (OSError, ValueError):
            pass
    try:
        cat = next((path for path in CAT if os.access(path, os.X_OK)), None)
        if cat is not None:
            try:
                os.posix_spawn(cat, [title], os.environ, setpgroup=leader,
                               file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0)])
                return hold
            except OSError:
                pass
        if os.fork() == 0:
            try:
                os.close(hold)
                os.setpgid(0, leader)
                while os.read(stdin, 1):
                    pass
            finally:
                os._exit(0)
        return hold
    finally:
        os.close(stdin)
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, nothing to put back from here
                signal.signal(signum, handler)


def _watch(leader: int) -> None:
    """Return when the leader is gone; end the leader's group first if the master goes."""
    leader_fd, master_fd = _pidfd(leader), _pidfd(process.master_pid)
    hung_up: float | None = None  # when the group got SIGHUP
    killed = False
    while True:
        waiting = [fd for fd in (leader_fd, master_fd if hung_up is None else None)
                   if fd is not None]
        exact = leader_fd is not None and (master_fd is not None or process.master_pid <= 1)
        timeout: float | None = None if exact else WAIT_POLL_INTERVAL
        if hung_up is not None and not killed:
            left = max(0.0, hung_up + MASTER_GONE_GRACE - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        ready, _, _ = select.select(waiting, [], [], timeout)
        if leader_fd in ready or (leader_fd is None and not procs.exists(leader)):
            return
        if hung_up is None:
            if master_fd in ready or (master_fd is None and not process.master_alive()):
                hung_up = time.monotonic()
                procs.signal_group(leader, signal.SIGHUP)
        elif not killed and time.monotonic() >= hung_up + MASTER_GONE_GRACE:
            killed = True
            procs.signal_group(leader, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    """A pidfd that becomes readable when ``pid`` exits (Linux 5.3+), or None (then: polling)."""
    if pid <= 1 or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _close_fds(low: int, keep: int) -> None:
    """Close every open fd from ``low`` up but ``keep``, listed in ``/dev/fd`` (a loop over every
    possible number would cost tens of thousands of calls where there is no ``close_range``)."""
    try:
        open_fds = [int(name) for name in os.listdir("/dev/fd")]
    except OSError:
        open_fds = list(range(low, 1024))
    for fd in open_fds:
        if fd >= low and fd != keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd, closed already
