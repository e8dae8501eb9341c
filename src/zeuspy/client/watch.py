"""The client's slow path: name a master that does not accept, take or answer a request.

A stopped master (^Z in the ``zeus start`` terminal, SIGSTOP) still has its socket: connections
queue in its backlog and requests in their buffers, so without this every client would hang
silently. But a master that waits for a phase to boot legitimately sends the command's pid only
after seconds or minutes, so silence alone proves nothing. The client therefore asks the OS for
the master's process state (:mod:`zeuspy.masterstate`: stopped, a zombie, gone), and, when it
runs, whether it answers: a ``Q:status`` on a second connection (the master's loop answers it
while a phase boots; a wedged loop does not).

Imported only once a wait passed its first bound: a command whose pid comes in milliseconds never
loads it. ``posix``, ``_socket`` and zeuspy's own light modules only.
"""

import _socket

from zeuspy import masterstate, paths, procs
from zeuspy.protocol import wire

#: Once the client waited zeuspy.client.run.PID_WAIT for the command's pid, it checks the master
#: this often (a read of ``/proc/<pid>/stat``).
PID_CHECK = 0.5
#: A running master that leaves a question unanswered this long is named (wedged).
UNANSWERED = 10.0
#: A running master that answered is asked again only after this long (a query costs it a
#: snapshot of the tree).
PROBE_EVERY = 5.0


def verdict(root: bytes, pid: int, what: str, waited: float, final: bool = False) -> str | None:
    """The line to leave with when ``what`` (``"did not accept the connection"``, ...) has taken
    ``waited`` seconds, or None to keep waiting: the master is stopped, a zombie or gone; or it
    runs and ``waited`` reached :data:`UNANSWERED` (or ``final``: there is nothing left to wait
    for). ``pid``: the master's pid if known (peer credentials), else -1 (the pid file's)."""
    state = masterstate.master_state(root, pid if pid > 0 else None)
    if state.state == procs.RUNNING and waited < UNANSWERED and not final:
        return None
    if state.state == masterstate.NONE and waited < UNANSWERED and not final:
        return None
    return line(state, what, waited)


def line(state: "masterstate.MasterState", what: str, waited: float) -> str:
    if state.state == masterstate.NONE:
        return f"zeus: the master {what} within {waited:.0f} s (its pid is unknown)"
    return f"zeus: {state.describe()} and {what} within {waited:.0f} s; {state.advice()}"


class PidWatch:
    """Watches the master while the client waits for the command's pid: :meth:`check` at
    :attr:`deadline` returns the line to leave with, or None and moves the deadline on."""

    def __init__(self, root: bytes, path: bytes, pid: int, since: float) -> None:
        self.root = root
        self.path = path
        self.pid = pid
        self.since = since
        self.deadline = since
        #: The liveness question in flight, and since when; when the last one was answered.
        self.probe: _socket.socket | None = None
        self.asked = 0.0
        self.answered = 0.0

    def check(self, now: float) -> str | None:
        self.deadline = now + PID_CHECK
        waited = now - self.since
        state = masterstate.master_state(self.root, self.pid if self.pid > 0 else None)
        if state.state in (procs.STOPPED, procs.ZOMBIE, procs.GONE):
            self.close()
            return line(state, "did not start the command", waited)
        if self._unanswered(now) >= UNANSWERED:
            self.close()
            return line(state, "did not answer", UNANSWERED)
        return None

    def _unanswered(self, now: float) -> float:
        """How long the current question has gone unanswered (0 when none is pending); asks a
        new one when it is time."""
        if self.probe is not None:
            try:
                self.probe.recv(4096)
            except BlockingIOError:
                return now - self.asked
            except OSError:
                pass
            # Any answer, even a close, shows a loop that runs.
            self.close()
            self.asked = 0.0
            self.answered = now
            return 0.0
        if self.asked:  # the last try found no room in its backlog: that counts as silence
            self._ask()
            return now - self.asked
        if self.answered and now - self.answered < PROBE_EVERY:
            return 0.0
        self.asked = now
        self._ask()
        return 0.0

    def _ask(self) -> None:
        """Connect and send ``Q:status`` (to our own uid's master only), without blocking."""
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(self.path)
        except BlockingIOError:
            sock.close()  # its backlog is full: ask again at the next check
            return
        except OSError:
            sock.close()
            self.asked = 0.0  # nothing listens any more: the main connection will say so
            return
        _, problem = paths.peer_problem(sock, self.path)
        try:
            if problem is None:
                sock.send(wire.encode("Q:status"))
        except OSError:
            pass
        self.probe = sock

    def close(self) -> None:
        if self.probe is not None:
            self.probe.close()
            self.probe = None
