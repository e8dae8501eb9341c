"""Channel bounds (master/channel.py): what a peer may queue, what one callback reads, and what
dropping a peer does. Real socketpairs, one event loop per test."""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zeuspy.master import channel as channel_module
from zeuspy.master.channel import (
    MAX_QUEUED_CHARS,
    MAX_QUEUED_FDS,
    MAX_QUEUED_MESSAGES,
    MAX_READS_PER_CALLBACK,
    Channel,
    ChannelClosed,
)
from zeuspy.protocol import wire

Scenario = Callable[[socket.socket, socket.socket], Awaitable[Any]]


def run(scenario: Scenario, kind: int = socket.SOCK_STREAM) -> Any:
    """``scenario(ours, peer)`` on a fresh loop, bounded; both sockets closed after."""
    ours, peer = socket.socketpair(socket.AF_UNIX, kind)
    try:
        return asyncio.run(asyncio.wait_for(scenario(ours, peer), 10))
    finally:
        ours.close()
        peer.close()


def send_fds(sock: socket.socket, fds: list[int], payload: bytes = b"\0") -> None:
    sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])


async def turns(count: int = 3) -> None:
    """Let the loop run a few turns (its reader callbacks among them)."""
    for _ in range(count):
        await asyncio.sleep(0)


def drops(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dropped the connection" in r.getMessage()]


def test_a_whole_client_handshake_is_taken_in_the_first_read(no_fd_leak: Any) -> None:
    """T:, three fd messages (the last with the offer), three stdio fds in one message: all
    queued by the constructor's own read, nothing dropped (the usual path takes no extra turn)."""
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        opened = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
        try:
            peer.sendall(b"T:0:1:hello\0")
            send_fds(peer, [opened[0]])
            send_fds(peer, [opened[1]])
            send_fds(peer, [opened[2]], b"\0X:zeuspy=1;world=00\0")
            send_fds(peer, opened)
        finally:
            wire.close_fds(opened)
        channel = Channel(ours, name="client")
        assert await channel.message(0) == "T:0:1:hello"
        fds = [await channel.fd(0) for _ in range(6)]
        wire.close_fds(fds)
        assert channel.pending_messages() == ["X:zeuspy=1;world=00"]
        assert not channel.closed and not channel.dropped
        channel.close()

    run(scenario)


def test_a_flood_of_messages_is_dropped_with_one_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        caplog.set_level(logging.INFO, "zeuspy.master")
        peer.sendall(b"T:0:1:hello\0" + b"x\0" * (MAX_QUEUED_MESSAGES + 1))
        channel = Channel(ours, name="client (pid 1)")
        assert channel.closed and channel.dropped
        with pytest.raises(ChannelClosed, match="messages queued"):
            await channel.message(0)  # what it queued is gone, the T: with it
        await channel.wait_closed()
        with pytest.raises(BrokenPipeError):  # the peer learns at once
            peer.sendall(b"x\0")
        channel.close()
        assert drops(caplog) == [f"dropped the connection of client (pid 1): more than "
                                 f"{MAX_QUEUED_MESSAGES} messages queued"]

    run(scenario)


def test_messages_taken_as_they_come_are_never_too_many() -> None:
    """The bound is on what waits: a peer whose messages are read keeps its connection."""
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        channel = Channel(ours, name="phase")
        for _ in range(4):
            peer.sendall(b"R:OK\0" * (MAX_QUEUED_MESSAGES // 2))
            await turns()
            for _ in range(MAX_QUEUED_MESSAGES // 2):
                assert await channel.message(1) == "R:OK"
        assert not channel.closed
        channel.close()

    run(scenario)


def test_long_messages_past_the_character_bound_are_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        channel = Channel(ours, name="runner")
        peer.setblocking(False)
        size = MAX_QUEUED_CHARS // 2 - 1000  # two fit, the third does not
        with contextlib.suppress(OSError):  # the channel shuts the connection down
            for _ in range(10):
                await loop.sock_sendall(peer, b"y" * size + b"\0")
        await channel.wait_closed()
        assert channel.dropped
        assert drops(caplog) == [f"dropped the connection of runner: more than "
                                 f"{MAX_QUEUED_CHARS >> 20} MiB of messages queued"]
        channel.close()

    run(scenario)


def test_a_message_without_end_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        channel = Channel(ours, name="client")
        peer.setblocking(False)
        with pytest.raises(OSError):
            for _ in range(100):  # 6 MiB: the reader gives up at 1 MiB
                await loop.sock_sendall(peer, b"T" * 65536)
        await channel.wait_closed()
        assert channel.dropped and channel.partial() == b""  # the partial message is freed
        assert drops(caplog) == ["dropped the connection of client: message longer than "
                                 "1048576 bytes"]
        channel.close()

    run(scenario)


def test_too_many_fds_are_dropped_and_closed(caplog: pytest.LogCaptureFixture,
                                            no_fd_leak: Any) -> None:
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            for _ in range(MAX_QUEUED_FDS + 1):
                send_fds(peer, [fd])
        finally:
            os.close(fd)
        channel = Channel(ours, name="client")
        await turns()  # (17 reads: two callbacks)
        assert channel.dropped  # and every fd it had queued closed (no_fd_leak)
        with pytest.raises(ChannelClosed):
            await channel.fd(0)
        channel.close()
        assert drops(caplog) == [f"dropped the connection of client: more than "
                                 f"{MAX_QUEUED_FDS} fds queued"]

    run(scenario)


def test_one_callback_reads_a_bounded_amount() -> None:
    """A peer that keeps the socket readable cannot keep the loop: one callback makes at most
    MAX_READS_PER_CALLBACK reads (here, one datagram each, empty ones included) and the rest
    comes on later turns."""
    async def scenario(ours: socket.socket, peer: socket.socket) -> None:
        for _ in range(MAX_READS_PER_CALLBACK):
            peer.send(b"")  # an empty datagram is not EOF, and costs a read
        for i in range(MAX_READS_PER_CALLBACK):
            peer.send(f"{i}".encode())
        channel = Channel(ours, datagram=True, name="runner")
        assert channel.pending_messages() == []  # the first callback read only the empty ones
        await turns()
        assert channel.pending_messages() == [str(i) for i in range(MAX_READS_PER_CALLBACK)]
        assert not channel.closed
        channel.close()

    run(scenario, socket.SOCK_DGRAM)


def test_the_bounds_leave_room_for_the_protocol() -> None:
    """The largest legitimate traffic fits: a 1 MiB message (the reader's limit) queues, and a
    client's six fds are well under the fd bound."""
    assert 2 * wire.FrameReader().limit <= MAX_QUEUED_CHARS
    assert MAX_QUEUED_FDS >= 6
    assert MAX_READS_PER_CALLBACK * wire.READ_SIZE <= 1 << 20
    assert channel_module.log.name.startswith("zeuspy.master.")  # into .zeus/master.log
