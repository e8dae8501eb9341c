"""The phase's side of its spares (spare.py is the spare command itself): the handle on the one
waiting spare, the handles on the commands handed to spares, when the next spare is due and the
back-off after spares that died idle.

The phase (runtime.PhaseLoop) forks and reaps; :class:`Spares` says when a spare is due, places a
request with the waiting spare, and is told of every child the phase reaps: a handed command that
died without reporting gets its status reported here, as a runner would.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable

from zeuspy.protocol import wire
from zeuspy.protocol.messages import RunnerHeader, SpareWork, parse_runner_header
from zeuspy.shim.command import REPORTED, status_message
from zeuspy.shim.runner import Work

#: A used spare is replaced this long after the request that used it: forking the new one (a
#: copy of the phase) right away competes for the CPU with the command just handed over, and
#: costs it several milliseconds on two cores (measured: 33 ms against 30 ms for a no-op); after
#: 15 ms a short command is done. Counted from the request, not from the phase's last wake-up
#: (reaping the command wakes it): back-to-back requests 25 ms apart then find a spare every
#: time. Each request postpones it, so a burst waits until it is over (its commands fork
#: runners).
SPARE_DELAY = 0.015
#: Longest wait before forking a spare again after spares kept dying idle.
SPARE_RETRY_MAX = 5.0


class Handed:
    """What the phase keeps of a command it handed to a spare: the runner socket and the read end
    of the command's status pipe (non-blocking)."""

    def __init__(self, local: socket.socket, status_r: int, header: RunnerHeader) -> None:
        self.local = local
        self.status_r = status_r
        self.header = header

    def reaped(self, wait_status: int) -> None:
        """The command was reaped: report its status unless it did (it writes
        :data:`~zeuspy.shim.command.REPORTED` on its status pipe once it has); then let go."""
        try:
            reported = REPORTED in os.read(self.status_r, 16)
        except OSError:  # nothing written, a forked child of the command holds the pipe open
            reported = False
        if not reported:
            try:
                wire.send_message(self.local, status_message(wait_status, self.header))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self.local.close()
        os.close(self.status_r)


class Spare:
    """The phase's end of a spare: the command's pid, its socket, the read end of its status
    pipe."""

    def __init__(self, pid: int, sock: socket.socket, status_r: int) -> None:
        self.pid = pid
        self.sock = sock
        self.status_r = status_r

    def give(self, work: Work) -> Handed:
        """Hand ``work`` (which must carry the hand-over) to the command. :class:`OSError` when
        it is gone (the caller discards it and forks a runner instead)."""
        assert work.handover is not None
        header, fds = work.handover
        request = SpareWork(work.command, parse_runner_header(header))
        wire.send_fds(self.sock, [*fds, work.local.fileno()], request.format())
        self.sock.close()
        wire.close_fds(fds)  # the command has them now
        return Handed(work.local, self.status_r, request.header)

    def discard(self) -> None:
        """Kill the waiting command (the phase reaps it) and let go of it."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """The phase's ends, as in a child the phase forks: the command is not its to use."""
        self.sock.close()
        os.close(self.status_r)


class Spares:
    """One phase's spare bookkeeping: the waiting spare, the commands handed to spares (by pid),
    when the next spare is due and how many died idle in a row."""

    def __init__(self) -> None:
        #: The spare command that takes the next request without a fork.
        self.ready: Spare | None = None
        #: Commands handed to spares, by pid: the phase reports their status if they die
        #: without reporting it themselves.
        self.handed: dict[int, Handed] = {}
        #: When to fork the next spare (monotonic time), or None: no spare wanted.
        self.due_at: float | None = None
        #: Spares that died idle since one last took a request (each doubles the delay).
        self.deaths = 0

    def want(self, delay: float = SPARE_DELAY) -> None:
        """Fork a spare ``delay`` after now (a later request postpones it; the phase's other
        wake-ups, such as reaping, do not)."""
        self.due_at = time.monotonic() + delay

    def timeout(self, idle: float) -> float:
        """How long the phase may sleep: until the next spare is due, else ``idle``."""
        if self.due_at is None:
            return idle
        return max(0.0, self.due_at - time.monotonic())

    def due(self) -> bool:
        """True once the next spare is due and none is waiting: the phase forks it now
        (:meth:`keep`). Either way a due spare is no longer wanted until :meth:`want`."""
        if self.due_at is None or time.monotonic() < self.due_at:
            return False
        self.due_at = None
        return self.ready is None

    def keep(self, spare: Spare) -> None:
        """The spare the phase just forked waits for the next request."""
        self.ready = spare

    def place(self, work: Work, reap: Callable[[int], int | None]) -> bool:
        """Give ``work`` (which carries the hand-over) to the waiting spare; False when there is
        none or it is gone (the phase forks a runner). ``reap(pid)`` is the phase's ``waitpid``
        of one child (its wait status, or None while it runs): the spare may have died since the
        phase last reaped (killed by hand, or by the OOM killer a moment ago: its SIGCHLD may
        wait behind this request), and a request never goes to a process that is already gone."""
        ready = self.ready
        if ready is None:
            return False
        if reap(ready.pid) is not None:
            self._forget_dead()
            return False
        self.ready = None
        try:
            self.handed[ready.pid] = ready.give(work)
        except OSError:
            ready.discard()  # it died while idle: fork a runner after all
            return False
        self.deaths = 0
        return True

    def reaped(self, pid: int, wait_status: int) -> None:
        """The phase reaped child ``pid``: report for a handed command that did not report;
        forget the waiting spare if it was that child."""
        handed = self.handed.pop(pid, None)
        if handed is not None:
            handed.reaped(wait_status)
        if self.ready is not None and self.ready.pid == pid:
            self._forget_dead()

    def _forget_dead(self) -> None:
        """The waiting spare died (killed by hand, the OOM killer, a process limit): its pid is
        not ours to signal any more. Wait longer after each such death before forking the
        next."""
        assert self.ready is not None
        self.ready.close()
        self.ready = None
        self.deaths += 1
        self.want(min(SPARE_DELAY * 2 ** self.deaths, SPARE_RETRY_MAX))

    def discard(self) -> None:
        """Kill the waiting spare (it lacks modules the phase imported since) and want another."""
        if self.ready is not None:
            self.ready.discard()
            self.ready = None
            self.want()

    def release(self) -> None:
        """In a child the phase forked: close the phase's ends of the spare's and the handed
        commands' sockets and pipes, and want no spare (the child is not that phase).
        Idempotent."""
        if self.ready is not None:
            self.ready.close()
            self.ready = None
        for handed in self.handed.values():
            handed.close()
        self.handed = {}
        self.due_at = None
