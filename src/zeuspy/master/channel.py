"""A Unix socket driven by the event loop: messages and fds in, messages and fds out.

Reads happen in a loop reader callback; every complete message and every fd is queued, and
coroutines take them in order. A peer that sends garbage or vanishes makes the channel closed; the
awaiting coroutine gets :class:`ChannelClosed` and the master carries on.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque

from zeuspy.protocol import wire


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
        self._fds: deque[int] = deque()
        self._waiters: list[asyncio.Future[None]] = []
        self.closed = False
        self.error: str | None = None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        # What a peer sent before we looked (a client's whole handshake, usually) is taken now,
        # not one loop turn later.
        self._on_readable()

    def fileno(self) -> int:
        return self.sock.fileno()

    def _on_readable(self) -> None:
        try:
            while True:
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
                    continue  # an empty datagram is not EOF
                self._reader.feed(data, fds)
                self._fds.extend(self._reader.fds)
                self._reader.fds.clear()
                self._messages.extend(self._reader.messages())
                if self._reader.eof:
                    self._mark_closed(None)
                    break
        except (wire.ProtocolError, OSError) as exc:
            self._mark_closed(str(exc))
        self._wake()

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
        return self._messages.popleft()

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

    def close(self) -> None:
        """Stop reading, close the socket and every fd nobody took."""
        self._mark_closed(self.error)
        wire.close_fds(self._fds)
        self._fds.clear()
        self._reader.close()
        self.sock.close()
        self._wake()
