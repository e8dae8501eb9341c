"""Signalling and killing processes the master does not necessarily parent."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from zeuspy.procs import (
    PR_SET_CHILD_SUBREAPER,
    peer_ids,
    prctl,
    signal_group,
    signal_group_or_pid,
)

log = logging.getLogger(__name__)

#: How long a phase gets to exit after SIGTERM before SIGKILL.
PHASE_TERM_GRACE = 1.0
#: How long to wait after SIGKILL before giving up on a process (it is stuck in the kernel).
KILL_GRACE = 1.0
#: How long a command whose client vanished gets after SIGHUP before SIGKILL.
COMMAND_KILL_GRACE = 0.5


async def terminate(pid: int, dead: asyncio.Event, what: str,
                    first: signal.Signals = signal.SIGTERM,
                    grace: float = PHASE_TERM_GRACE) -> None:
    """Stop a process in escalating steps: ``first``, then SIGKILL after ``grace`` seconds; return
    once ``dead`` is set or :data:`KILL_GRACE` after SIGKILL."""
    if dead.is_set() or not signal_group_or_pid(pid, first):
        return
    try:
        await asyncio.wait_for(dead.wait(), grace)
        return
    except asyncio.TimeoutError:
        pass
    log.warning("%s (pid %d) ignored %s for %.1f s; sending SIGKILL", what, pid, first.name, grace)
    signal_group_or_pid(pid, signal.SIGKILL)
    try:
        await asyncio.wait_for(dead.wait(), KILL_GRACE)
    except asyncio.TimeoutError:
        log.error("%s (pid %d) is still alive %.1f s after SIGKILL", what, pid, KILL_GRACE)


#: How often :func:`end_group` looks whether the group is empty.
GROUP_POLL = 0.05


async def end_group(pgid: int, what: str, grace: float = PHASE_TERM_GRACE) -> None:
    """End what is left of the process group of a dead phase (``pgid`` is the phase's pid: each
    zeuspy phase leads its group), the helpers its code forked: SIGTERM, SIGKILL after
    ``grace`` seconds; return once the group is empty (the master, the subreaper, reaps the
    orphans) or :data:`KILL_GRACE` after SIGKILL. Returns at once when the group is empty."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    log.info("%s (pid %d) is gone: ending the helpers left in its process group", what, pgid)
    loop = asyncio.get_running_loop()
    for signum, wait in ((signal.SIGKILL, grace), (None, KILL_GRACE)):
        deadline = loop.time() + wait
        while loop.time() < deadline:
            await asyncio.sleep(GROUP_POLL)
            if not signal_group(pgid, 0):
                return
        if signum is None:
            log.error("%s: processes of group %d are still alive %.1f s after SIGKILL",
                      what, pgid, KILL_GRACE)
            return
        log.warning("%s: group %d ignored SIGTERM for %.1f s; sending SIGKILL", what, pgid, grace)
        signal_group(pgid, signum)


def peer_credentials(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end of a Unix socket (pid -1 on macOS), or None
    when the OS does not say."""
    try:
        return peer_ids(sock)
    except OSError:
        return None


def become_subreaper() -> None:
    """Linux: orphans of our phases are re-parented to us (not init), so we reap everything."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)
