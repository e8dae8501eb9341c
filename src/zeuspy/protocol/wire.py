"""Framing of the Zeus wire protocol, shared by the client, the master and the shim.

A *message* is text followed by one NUL byte; readers split on NUL and skip empty messages. An
*fd message* is a ``sendmsg`` whose payload starts with one NUL byte and which carries exactly one
file descriptor in one ``SCM_RIGHTS`` control message. Several messages can arrive in one read and a
message can be split across reads, so readers buffer (:class:`FrameReader`).

This module imports only ``_socket`` and builtins: the client imports it on every command.
"""

import _socket
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

NUL = b"\0"
#: Most fds a peer may pass in one read before we call it a protocol violation; extras are closed.
MAX_FDS_PER_READ = 8
_INT_SIZE = 4
ANCILLARY_SIZE = _socket.CMSG_SPACE(MAX_FDS_PER_READ * _INT_SIZE)
READ_SIZE = 65536
#: Received fds are close-on-exec from the start (Linux), so no spawned program inherits them.
RECV_FLAGS = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)


class ProtocolError(Exception):
    """A peer sent bytes that are not the Zeus protocol (the connection should be dropped)."""


def encode(text: str) -> bytes:
    """One message on the wire: UTF-8 text and its NUL terminator."""
    return text.encode("utf-8", "surrogateescape") + NUL


def send_message(sock: _socket.socket, text: str) -> None:
    """Send one message on a blocking socket (stream or datagram)."""
    sock.sendall(encode(text))


def send_fd(sock: _socket.socket, fd: int, trailer: bytes = b"") -> None:
    """Send one fd message: payload NUL (plus ``trailer``, already framed) and exactly one fd."""
    rights = fd.to_bytes(_INT_SIZE, sys.byteorder)
    sent = sock.sendmsg([NUL + trailer], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if trailer and sent < 1 + len(trailer):
        sock.sendall((NUL + trailer)[sent:])


def send_fds(sock: _socket.socket, fds: list[int], text: str) -> None:
    """One message and several fds in a single ``sendmsg``. Not Zeus protocol (which passes one fd
    per message): only for zeuspy's own processes, e.g. a runner handing work to its command."""
    rights = b"".join(fd.to_bytes(_INT_SIZE, sys.byteorder) for fd in fds)
    payload = encode(text)
    sent = sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    if sent < len(payload):
        sock.sendall(payload[sent:])


def fds_from_ancillary(ancillary: "Iterable[tuple[int, int, bytes]]") -> list[int]:
    """The file descriptors carried by ``recvmsg`` control messages (all of them, in order)."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _INT_SIZE
            fds.extend(
                int.from_bytes(data[i : i + _INT_SIZE], sys.byteorder)
                for i in range(0, usable, _INT_SIZE)
            )
    return fds


def close_fds(fds: "Iterable[int]") -> None:
    """Close every fd, ignoring ones already closed."""
    for fd in fds:
        try:
            posix.close(fd)
        except OSError:
            pass


def receive(sock: _socket.socket, size: int = READ_SIZE) -> tuple[bytes, list[int]]:
    """One ``recvmsg``: the bytes read and the fds received with them.

    Raises :class:`ProtocolError` (after closing what did arrive) when the control data was
    truncated, which means a peer sent more fds than any Zeus message carries.
    """
    data, ancillary, flags, _ = sock.recvmsg(size, ANCILLARY_SIZE, RECV_FLAGS)
    fds = fds_from_ancillary(ancillary)
    if not RECV_FLAGS:
        for fd in fds:
            posix.set_inheritable(fd, False)
    if flags & _socket.MSG_CTRUNC:
        close_fds(fds)
        raise ProtocolError("peer sent more file descriptors than the protocol allows")
    return data, fds


class FrameReader:
    """Reassembles messages from a byte stream; keeps received fds in arrival order.

    Feed it what each read returned; take complete messages with :meth:`messages` and fds with
    :attr:`fds`. The kernel ends a read at the chunk that carries fds, so within one read every
    message of the legacy protocol precedes the fd that arrived with it.
    """

    __slots__ = ("_buffer", "eof", "fds", "limit")

    def __init__(self, limit: int = 1 << 20) -> None:
        self._buffer = b""
        self.fds: list[int] = []
        self.eof = False
        #: Longest message accepted; a peer that sends more without a NUL is not speaking Zeus.
        self.limit = limit

    def feed(self, data: bytes, fds: list[int] | None = None) -> None:
        if fds:
            self.fds.extend(fds)
        if not data and not fds:
            self.eof = True
            return
        self._buffer += data
        if len(self._buffer) > self.limit and NUL not in self._buffer:
            raise ProtocolError(f"message longer than {self.limit} bytes")

    def pending(self) -> bytes:
        """The start of a message that has not fully arrived yet (empty when none)."""
        return self._buffer

    def messages(self) -> list[str]:
        """Every complete, non-empty message buffered so far, in order (removed from the buffer)."""
        if NUL not in self._buffer:
            return []
        *complete, self._buffer = self._buffer.split(NUL)
        return [part.decode("utf-8", "surrogateescape") for part in complete if part]

    def close(self) -> None:
        """Close any fds nobody took."""
        close_fds(self.fds)
        self.fds.clear()
