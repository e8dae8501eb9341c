"""Framing: FrameReader reassembly, and real socketpair round trips of messages and fds."""

from __future__ import annotations

import os
import socket
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zeuspy.protocol import wire
from zeuspy.protocol.wire import FrameReader, ProtocolError

MESSAGES = ["P:12:0:boot", "R:OK", "héllo wörld", "C:test"]
STREAM = b"".join(wire.encode(m) for m in MESSAGES)


def collect(reader: FrameReader, pieces: list[bytes]) -> list[str]:
    found: list[str] = []
    for piece in pieces:
        if not piece:
            continue  # an empty read is EOF, not a piece of a message
        reader.feed(piece)
        found.extend(reader.messages())
    return found


# -- FrameReader ----------------------------------------------------------------------------------
def test_encode_appends_one_nul_and_uses_utf8() -> None:
    assert wire.encode("héllo") == "héllo".encode() + b"\0"
    assert wire.encode("") == b"\0"


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_in_two_at_every_byte(cut: int) -> None:
    reader = FrameReader()
    assert collect(reader, [STREAM[:cut], STREAM[cut:]]) == MESSAGES
    assert not reader.eof


def test_split_in_three_at_every_pair_of_positions() -> None:
    for first in range(len(STREAM) + 1):
        for second in range(first, len(STREAM) + 1):
            pieces = [STREAM[:first], STREAM[first:second], STREAM[second:]]
            assert collect(FrameReader(), pieces) == MESSAGES, (first, second)


def test_byte_by_byte() -> None:
    assert collect(FrameReader(), [bytes([b]) for b in STREAM]) == MESSAGES


def test_several_messages_in_one_feed_keep_their_order() -> None:
    reader = FrameReader()
    reader.feed(STREAM)
    assert reader.messages() == MESSAGES
    assert reader.messages() == []


def test_incomplete_message_stays_buffered_until_its_nul() -> None:
    reader = FrameReader()
    reader.feed(b"T:1:2:he")
    assert reader.messages() == []
    reader.feed(b"llo\0R:")
    assert reader.messages() == ["T:1:2:hello"]
    reader.feed(b"OK\0")
    assert reader.messages() == ["R:OK"]


def test_empty_messages_are_skipped() -> None:
    reader = FrameReader()
    reader.feed(b"\0\0a\0\0\0b\0\0")
    assert reader.messages() == ["a", "b"]


def test_invalid_utf8_survives_as_surrogates() -> None:
    reader = FrameReader()
    reader.feed(b"P:1:0:\xff\xfe\0")
    [message] = reader.messages()
    assert message.encode("utf-8", "surrogateescape") == b"P:1:0:\xff\xfe"
    assert wire.encode(message) == b"P:1:0:\xff\xfe\0"


def test_fds_kept_in_arrival_order() -> None:
    reader = FrameReader()
    reader.feed(b"\0", [7])
    reader.feed(b"a\0\0", [5, 9])
    reader.feed(b"", [3])  # fds with no bytes are not EOF
    assert reader.fds == [7, 5, 9, 3]
    assert reader.messages() == ["a"]
    assert not reader.eof


def test_eof_on_empty_read() -> None:
    reader = FrameReader()
    reader.feed(b"x\0")
    assert not reader.eof
    reader.feed(b"")
    assert reader.eof
    assert reader.messages() == ["x"]


def test_over_long_message_without_nul_raises() -> None:
    reader = FrameReader(limit=16)
    reader.feed(b"x" * 16)  # exactly the limit is fine
    with pytest.raises(ProtocolError, match="16"):
        reader.feed(b"x")


def test_over_long_message_accumulated_over_feeds_raises() -> None:
    reader = FrameReader(limit=100)
    with pytest.raises(ProtocolError):
        for _ in range(20):
            reader.feed(b"y" * 10)
            assert reader.messages() == []


def test_long_buffer_with_nul_is_not_an_error() -> None:
    reader = FrameReader(limit=16)
    reader.feed(b"a" * 10 + b"\0" + b"b" * 10)
    assert reader.messages() == ["a" * 10]


def test_close_closes_untaken_fds(no_fd_leak: object) -> None:
    r, w = os.pipe()
    reader = FrameReader()
    reader.feed(b"\0", [r, w])
    reader.close()
    assert reader.fds == []
    for fd in (r, w):
        with pytest.raises(OSError):
            os.fstat(fd)


@settings(database=None, derandomize=True, max_examples=60)
@given(
    st.lists(st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)),
                     max_size=20), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=6),
)
def test_reassembly_property(messages: list[str], cuts: list[int]) -> None:
    data = b"".join(wire.encode(m) for m in messages)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert collect(FrameReader(), pieces) == [m for m in messages if m]


# -- real sockets ---------------------------------------------------------------------------------
def fd_message_fds(sock: socket.socket, count: int) -> list[int]:
    """Send ``count`` fds (dups of a pipe's write end) in ONE sendmsg; returns the read end."""
    r, w = os.pipe()
    dups = [os.dup(w) for _ in range(count)]
    try:
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in dups)
        sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
    finally:
        wire.close_fds([w, *dups])
    return [r]


def test_round_trip_messages_and_fd_on_a_stream(no_fd_leak: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipe_r, pipe_w = os.pipe()
    try:
        wire.send_message(a, "T:1:42:hello")
        wire.send_fd(a, pipe_w)
        wire.send_fd(a, pipe_w, trailer=wire.encode("X:zeuspy=1"))
        os.close(pipe_w)
        a.close()
        reader = FrameReader()
        while not reader.eof:
            data, fds = wire.receive(b)
            reader.feed(data, fds)
        assert reader.messages() == ["T:1:42:hello", "X:zeuspy=1"]
        assert len(reader.fds) == 2
        for fd in reader.fds:  # each is a working write end of the pipe
            os.write(fd, b"through %d;" % fd)
        expected = b"".join(b"through %d;" % fd for fd in reader.fds)
        reader.close()
        assert os.read(pipe_r, 100) == expected
        assert os.read(pipe_r, 100) == b""  # every copy of the write end is closed
    finally:
        os.close(pipe_r)
        b.close()


def test_round_trip_on_datagrams(no_fd_leak: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    r, w = os.pipe()
    with a, b:
        wire.send_message(a, "1234:2")
        wire.send_fd(a, r)
        assert wire.receive(b) == (b"1234:2\0", [])
        data, [fd] = wire.receive(b)
        assert data == b"\0"
        os.write(w, b"ok")
        assert os.read(fd, 2) == b"ok"
        wire.close_fds([fd, r, w])


def test_five_fds_in_one_sendmsg_are_all_received(no_fd_leak: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        [pipe_r] = fd_message_fds(a, 5)
        data, fds = wire.receive(b)
        assert data == b"\0"
        assert len(fds) == 5
        assert len(set(fds)) == 5
        for index, fd in enumerate(fds):
            os.write(fd, bytes([index]))
        wire.close_fds(fds)
        assert os.read(pipe_r, 10) == bytes(range(5))
        os.close(pipe_r)


def test_too_many_fds_raise_and_close_what_arrived(no_fd_leak: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        [pipe_r] = fd_message_fds(a, wire.MAX_FDS_PER_READ + 12)
        with pytest.raises(ProtocolError, match="file descriptors"):
            wire.receive(b)
        # Nothing holds the write end any more: the truncated fds were all closed.
        assert os.read(pipe_r, 10) == b""
        os.close(pipe_r)


def test_fds_from_ancillary_ignores_other_control_messages() -> None:
    rights = (3).to_bytes(4, sys.byteorder) + (4).to_bytes(4, sys.byteorder) + b"\1"
    ancillary = [(socket.SOL_SOCKET, 2, b"junk"), (socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
    assert wire.fds_from_ancillary(ancillary) == [3, 4]


def test_receive_at_eof_is_empty(no_fd_leak: object) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.close()
    with b:
        assert wire.receive(b) == (b"", [])


def test_close_fds_ignores_closed_ones(no_fd_leak: object) -> None:
    r, w = os.pipe()
    os.close(r)
    wire.close_fds([r, w, w])
    with pytest.raises(OSError):
        os.fstat(w)
