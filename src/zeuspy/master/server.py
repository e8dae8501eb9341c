"""ClientServer: the master's socket. Binds it (0600), accepts clients (pausing when fds run
out), checks each peer's uid, answers ``Q:`` queries, and hands every command request to a
:class:`~zeuspy.master.request.Request` (master/request.py). Any number of clients at once; a bad
one never hurts the master or the others."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import resource
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from zeuspy.master.channel import Channel
from zeuspy.master.filemonitor import FileMonitor
from zeuspy.master.kills import peer_credentials
from zeuspy.master.phases import PhaseSupervisor
from zeuspy.master.request import ERROR_WRITE_TIMEOUT, Request, send_quietly
from zeuspy.master.tasks import TaskSet
from zeuspy.master.tree import ProcessTree
from zeuspy.procs import exit_status, signal_group_or_pid
from zeuspy.protocol import wire
from zeuspy.protocol.messages import ExitStatus, Note

log = logging.getLogger(__name__)

#: When accepting fails for want of fds or memory (EMFILE at the fd limit), the listener stays
#: readable: instead of failing again at once (4.8 s of CPU in 5 s and 260,000 log lines, before),
#: the master stops watching it for this long and tries again (measured at the limit: 0.02-0.03 s
#: of CPU in 2 s, the whole master); a freed fd serves a waiting client within this time.
ACCEPT_PAUSE = 0.1
#: ``accept`` errors that concern one connection only, not the listener: try the next one.
ACCEPT_SKIP = frozenset({errno.ECONNABORTED, errno.EPROTO})
#: At shutdown, running commands get this long to report after SIGHUP.
SHUTDOWN_COMMAND_GRACE = 1.0
#: What the clients of running commands read when the master stops.
STOPPING_NOTE = "zeus: the master is stopping; ending the command (SIGHUP)"


class ClientServer:
    """The listening socket: binds it, accepts connections, checks each peer's uid, answers
    ``Q:`` queries and hands every command request to a :class:`Request`."""

    def __init__(self, tree: ProcessTree, supervisor: PhaseSupervisor, path: str) -> None:
        self.tree = tree
        self.supervisor = supervisor
        self.path = path
        self.listener: socket.socket | None = None
        #: While accepting is paused (see ACCEPT_PAUSE): the timer that resumes it, and when
        #: the episode began (for its one log line at each end).
        self._accept_resume: asyncio.TimerHandle | None = None
        self._exhausted_since: float | None = None
        #: The requests being served.
        self.requests: set[Request] = set()
        self._tasks = TaskSet("client server")
        self._inode: tuple[int, int] | None = None
        self.closing = False
        #: Set when the server closes: requests waiting for a phase give up.
        self.closed = asyncio.Event()
        #: Checked before each command so that none runs against code saved since its phase
        #: booted (set by the master once file monitoring runs).
        self.monitor: FileMonitor | None = None
        #: Answers ``Q:`` queries (``zeus status``, ``restart``, ``stop``); set by the master.
        self.on_query: Callable[[str], dict[str, Any]] | None = None
        #: When the last command request arrived (for the idle timeout).
        self.last_activity = time.monotonic()

    def start(self) -> None:
        """Bind the socket, private to this user (mode 0600), and accept clients."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
        info = os.stat(self.path)
        self._inode = (info.st_dev, info.st_ino)
        listener.listen(128)
        listener.setblocking(False)
        self.listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._accept)

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                # The backlog is empty: only now is an episode over. An fd freed for a moment
                # (a client that left) lets one accept through without ending it.
                if self._exhausted_since is not None:
                    log.warning("accepting connections again after %.1f s",
                                time.monotonic() - self._exhausted_since)
                    self._exhausted_since = None
                return
            except OSError as exc:
                if exc.errno in ACCEPT_SKIP:
                    continue
                self._pause_accepting(exc)  # EMFILE and friends: keep serving the others
                return
            try:
                credentials = peer_credentials(conn)
            except OSError:
                credentials = None
            if credentials is not None and credentials[1] != os.getuid():
                log.warning("refused a connection from uid %d (pid %d): the socket is %d's only",
                            credentials[1], credentials[0], os.getuid())
                conn.close()
                continue
            peer_pid = credentials[0] if credentials is not None else -1
            self._tasks.spawn(self._serve(conn, peer_pid), f"client (pid {peer_pid})")

    def _pause_accepting(self, exc: OSError) -> None:
        """Stop watching the listener for :data:`ACCEPT_PAUSE`, then try again: connections
        wait in the listen backlog meanwhile. Logged once per episode (and once at its end)."""
        assert self.listener is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.listener.fileno())
        if self._exhausted_since is None:
            self._exhausted_since = time.monotonic()
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.error("cannot accept connections: %s (fd limit %d); new clients wait, retrying "
                      "every %.1f s", exc.strerror or exc, soft, ACCEPT_PAUSE)
        self._accept_resume = loop.call_later(ACCEPT_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_resume = None
        if self.listener is not None:
            asyncio.get_running_loop().add_reader(self.listener.fileno(), self._accept)

    async def _serve(self, conn: socket.socket, peer_pid: int = -1) -> None:
        name = "client" if peer_pid < 0 else f"client (pid {peer_pid})"
        request = Request(self, Channel(conn, name=name), peer_pid=peer_pid)
        self.requests.add(request)
        try:
            await request.run()
        except Exception:
            log.exception("internal error while serving a client")
        finally:
            request.close_fds()
            request.channel.close()
            self.requests.discard(request)
            request.done.set()
            self.last_activity = time.monotonic()  # idle time counts from a command's end

    def command_reaped(self, pid: int, wait_status: int) -> None:
        """The master reaped an orphaned command: its request learns the status from us."""
        for request in self.requests:
            reaped = request.reaped
            if request.command_pid == pid and reaped is not None and not reaped.done():
                reaped.set_result(ExitStatus(*exit_status(wait_status)))

    async def answer_query(self, channel: Channel, request: str) -> None:
        """``Q:status|restart|stop``: a zeuspy-only request of the built-in subcommands (never
        sent by a legacy client); answered with one JSON message."""
        if self.on_query is None or request not in ("status", "restart", "stop"):
            answer: dict[str, Any] = {"error": f"unknown query {request[:40]!r}"}
        else:
            answer = self.on_query(request)
        await self._send_large(channel, json.dumps(answer))

    @staticmethod
    async def _send_large(channel: Channel, text: str) -> None:
        """A message that may not fit the socket buffer (a status with long tracebacks),
        written as the peer reads it, bounded by :data:`ERROR_WRITE_TIMEOUT`."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(loop.sock_sendall(channel.sock, wire.encode(text)),
                                   ERROR_WRITE_TIMEOUT)


    async def close(self) -> None:
        """Stop accepting; stop running commands (SIGHUP, then SIGKILL); end every session."""
        self.closing = True
        self.closed.set()
        if self._accept_resume is not None:
            self._accept_resume.cancel()
            self._accept_resume = None
        if self.listener is not None:
            asyncio.get_running_loop().remove_reader(self.listener.fileno())
            self.listener.close()
            self.listener = None
            self.unlink()
        for request in list(self.requests):
            if request.command_pid:
                self.hang_up(request)
            # else: one whose command registers meanwhile is hung up then (Request).
        if self.requests:
            waits = [asyncio.ensure_future(r.done.wait()) for r in self.requests]
            _, pending = await asyncio.wait(waits, timeout=SHUTDOWN_COMMAND_GRACE)
            for request in list(self.requests):
                if request.command_pid:
                    signal_group_or_pid(request.command_pid, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=SHUTDOWN_COMMAND_GRACE)
        await self._tasks.close()

    def hang_up(self, request: Request) -> None:
        """The master is stopping: tell ``request``'s client (one line, if it takes notes) and
        send its running command SIGHUP, as a closed terminal would."""
        if request.extended:
            send_quietly(request.channel, Note(STOPPING_NOTE).format())
        signal_group_or_pid(request.command_pid, signal.SIGHUP)

    def unlink(self) -> None:
        """Remove the socket file if it is still ours (a new master may have replaced it)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._inode:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
