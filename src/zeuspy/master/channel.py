"""A Unix socket driven by the event loop: messages and fds in, messages and fds out.

Reads happen in a loop reader callback; every complete message and every fd is queued, and
coroutines take them in order. A peer that sends garbage or vanishes makes the channel closed; the
awaiting coroutine gets :class:`ChannelClosed` and the master carries on.

Every channel is bounded (docs/architecture.md, Trust, Bounds): one callback reads at most
:data:`MAX_READS_PER_CALLBACK` times, so a peer that writes as fast as the master reads cannot keep
the loop from other work; and a peer whose unread messages or fds pass :data:`MAX_QUEUED_MESSAGES`,
:data:`MAX_QUEUED_CHARS` or :data:`MAX_QUEUED_FDS` is dropped, with one log line: what it queued is
freed and its socket shut down, and whoever holds the channel sees it closed, as if the peer had
gone (a client's command then gets SIGHUP, as for any client that leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque

from zeuspy.protocol import wire

log = logging.getLogger(__name__)

#: Most reads (of up to ``wire.READ_SIZE``, 64 KiB, so 1 MiB in all) one readable callback makes
#: before it returns to the loop, which calls it again on its next turn while data is left. A
#: client's whole handshake takes about 6 (``T:``, one per fd message, one for the three stdio
#: fds), so the usual path never needs a second turn; a flood yields after about 1 ms of parsing.
MAX_READS_PER_CALLBACK = 16
#: Most messages received and not yet taken. The master takes them as they come from a phase's
#: stream (``P:``, ``R:``, ``X:``), and no more than two ever wait on a client (``T:`` and its
#: offer) or a runner (``P:`` and the status); 1024 small strings are about 60 KB.
MAX_QUEUED_MESSAGES = 1024
#: Most characters (about bytes) of messages received and not yet taken: two of the longest
#: message a reader accepts (``FrameReader``'s 1 MiB limit, a traceback in ``R:``).
MAX_QUEUED_CHARS = 2 << 20
#: Most fds received and not yet taken. A client sends six (three legacy, three ``stdio``), a
#: phase one per runner request (one in flight at a time).
MAX_QUEUED_FDS = 16


class ChannelClosed(Exception):
    """The peer closed the connection, broke the protocol, or the channel was closed locally."""


class Channel:
    """One non-blocking socket (stream or datagram) read by the running event loop."""

    def __init__(self, sock: socket.socket, *, datagram: bool = False, name: str = "") -> None:
        sock.setblocking(False)
        self.sock = sock
        self.name = name
        self.datagram = datagram
        self._reader = wire.FrameReader()
        self._messages: deque[str] = deque()
        #: Characters in ``_messages`` (for :data:`MAX_QUEUED_CHARS`).
        self._queued = 0
        self._fds: deque[int] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self.closed = False
        #: True once the peer was dropped for passing a bound or breaking the framing (logged).
        self.dropped = False
        self.error: str | None = None
        #: True once :meth:`refuse_more` shut the reading side down.
        self.refusing = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        # What a peer sent before we looked (a client's whole handshake, usually) is taken now,
        # not one loop turn later.
        self._on_readable()

    def fileno(self) -> int:
        return self.sock.fileno()

    def _on_readable(self) -> None:
        reader = self._reader
        try:
            # Shut down for reading, nothing more comes: take all that is queued at once.
            reads = MAX_QUEUED_MESSAGES + 1 if self.refusing else MAX_READS_PER_CALLBACK
            for _ in range(reads):
                try:
                    data, fds = wire.receive(self.sock)
                except (BlockingIOError, InterruptedError):
                    break
                if self.closed:  # closed while reading: nobody will take these
                    wire.close_fds(fds)
                    return
                if self.datagram and data and not data.endswith(wire.NUL):
                    data += wire.NUL  # legacy shims may send datagrams without the NUL
                if self.datagram and not data and not fds:
                    if self.refusing:
                        break  # shut down for reading: what was queued is taken
                    continue  # an empty datagram is not EOF
                reader.feed(data, fds)
                if reader.fds:
                    self._fds.extend(reader.fds)
                    reader.fds.clear()
                    if len(self._fds) > MAX_QUEUED_FDS:
                        self._drop(f"more than {MAX_QUEUED_FDS} fds queued")
                        break
                messages = reader.messages()
                if messages:
                    self._messages.extend(messages)
                    self._queued += sum(map(len, messages))
                    if len(self._messages) > MAX_QUEUED_MESSAGES:
                        self._drop(f"more than {MAX_QUEUED_MESSAGES} messages queued")
                        break
                    if self._queued > MAX_QUEUED_CHARS:
                        self._drop(f"more than {MAX_QUEUED_CHARS >> 20} MiB of messages queued")
                        break
                if reader.eof:
                    self._mark_closed(None)
                    break
        except wire.ProtocolError as exc:
            self._drop(str(exc))
        except OSError as exc:
            self._mark_closed(str(exc))
        self._wake()

    def _drop(self, why: str) -> None:
        """Stop serving a peer that broke a bound or the framing: log it once, free what it
        queued, and shut the socket down, so that the peer learns at once (its writes fail)
        and whoever holds the channel sees it closed. The fd stays open until :meth:`close`."""
        if self.closed:
            return
        log.warning("dropped the connection of %s: %s", self.name or "a peer", why)
        self.dropped = True
        self._messages.clear()
        self._queued = 0
        wire.close_fds(self._fds)
        self._fds.clear()
        self._reader.close()
        self._reader = wire.FrameReader()  # frees a partial message (up to 1 MiB)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._mark_closed(why)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _mark_closed(self, error: str | None) -> None:
        if not self.closed:
            self.closed = True
            self.error = error
            self._loop.remove_reader(self.sock.fileno())

    async def _wait(self, deadline: float | None) -> None:
        # Several coroutines may wait on one channel (a phase's messages and its runner fds).
        # A bare future under wait_for: no task is created on this hot path.
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        if deadline is None:
            await waiter
        else:
            await asyncio.wait_for(waiter, max(0.0, deadline - self._loop.time()))

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else self._loop.time() + timeout

    async def message(self, timeout: float | None = None) -> str:
        """The next message; :class:`ChannelClosed` once none can come, ``asyncio.TimeoutError``
        after ``timeout`` seconds."""
        deadline = self._deadline(timeout)
        while not self._messages:
            if self.closed:
                raise ChannelClosed(self.error or "connection closed")
            await self._wait(deadline)
        message = self._messages.popleft()
        self._queued -= len(message)
        return message

    async def fd(self, timeout: float | None = None) -> int:
        """The next received fd (the caller owns it); :class:`ChannelClosed` once none can come,
        ``asyncio.TimeoutError`` after ``timeout`` seconds."""
        deadline = self._deadline(timeout)
        while not self._fds:
            if self.closed:
                raise ChannelClosed(self.error or "connection closed")
            await self._wait(deadline)
        return self._fds.popleft()

    def partial(self) -> bytes:
        """The start of a message still arriving (empty when none)."""
        return self._reader.pending()

    def pending_messages(self) -> list[str]:
        """Messages already received and not yet taken (removed)."""
        taken = list(self._messages)
        self._messages.clear()
        self._queued = 0
        return taken

    async def wait_closed(self) -> None:
        """Return once the peer has closed (anything it sends meanwhile stays queued)."""
        while not self.closed:
            await self._wait(None)

    def send(self, text: str) -> None:
        """Send one message; a full or broken socket closes the channel."""
        self._send(wire.encode(text), None)

    def send_fd(self, fd: int) -> None:
        self._send(wire.NUL, fd)

    def _send(self, payload: bytes, fd: int | None) -> None:
        if self.closed and self.sock.fileno() < 0:
            raise ChannelClosed("channel is closed")
        try:
            if fd is None:
                sent = self.sock.send(payload)
                if sent != len(payload):
                    raise BlockingIOError("short write")
            else:
                wire.send_fd(self.sock, fd)
        except OSError as exc:
            self._mark_closed(str(exc))
            self._wake()
            raise ChannelClosed(f"cannot send: {exc}") from None

    @property
    def exhausted(self) -> bool:
        """True once the channel is closed and every message it received was taken."""
        return self.closed and not self._messages

    def refuse_more(self) -> None:
        """Shut the reading side down and take what the peer sent before: the messages queued
        stay for :meth:`message`, which then ends with :class:`ChannelClosed`. A peer's later
        send fails (on Linux a datagram peer's at once, with ``EPIPE``), so after this returns
        nothing it sends can be missed unread."""
        if self.closed:
            return
        self.refusing = True
        try:
            self.sock.shutdown(socket.SHUT_RD)
        except OSError as exc:
            self._mark_closed(str(exc))
            return
        self._on_readable()
        self._mark_closed("shut down for reading")
        self._wake()

    def close(self) -> None:
        """Stop reading, close the socket and every fd nobody took."""
        self._mark_closed(self.error)
        wire.close_fds(self._fds)
        self._fds.clear()
        self._reader.close()
        self.sock.close()
        self._wake()
