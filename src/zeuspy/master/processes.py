"""Signalling and killing processes the master does not necessarily parent."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import sys

log = logging.getLogger("zeuspy.master")

#: How long a phase gets to exit after SIGTERM before SIGKILL.
PHASE_TERM_GRACE = 1.0
#: How long to wait after SIGKILL before giving up on a process (it is stuck in the kernel).
KILL_GRACE = 1.0
#: How long a command whose client vanished gets after SIGHUP before SIGKILL.
COMMAND_KILL_GRACE = 0.5


def signal_group_or_pid(pid: int, signum: int) -> bool:
    """Signal ``pid``'s process group when it leads one (zeuspy phases and commands do), else the
    process alone (a legacy shim's). False when the process is gone."""
    if pid <= 0:
        return False
    try:
        os.kill(-pid, signum)
        return True
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    try:
        os.kill(pid, signum)
        return True
    except OSError:
        return False


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


def peer_credentials(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end of a Unix socket, or None if unknown.

    Linux: SO_PEERCRED. macOS: LOCAL_PEERCRED (getpeereid's source) gives the uid; pid is -1.
    """
    platform: str = sys.platform  # a plain str: both branches are type-checked on any OS
    if platform.startswith("linux"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _gid = struct.unpack("3i", raw)
        return pid, uid
    if platform == "darwin":
        sol_local, local_peercred = 0, 0x001
        raw = sock.getsockopt(sol_local, local_peercred, struct.calcsize("IIh16I") + 2)
        _version, uid = struct.unpack_from("II", raw)
        return -1, uid
    return None


def become_subreaper() -> None:
    """Linux: orphans of our phases are re-parented to us (not init), so we reap everything."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_child_subreaper = 36
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)
