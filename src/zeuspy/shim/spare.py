"""The spare command: a command process forked before it is needed, so that a request costs no
fork.

A phase that runs commands keeps one spare (runtime.PhaseLoop; its handle and bookkeeping:
spares.py): a fork of the phase that leads a session of its own (its guard keeps its process
group a job that ^Z can stop: guard.py) and has done the part of a command's start-up that does
not depend on the request (command.prepare_command_process). Leading a session, it can take the
client's terminal as its controlling terminal itself, which a process forked before its session
took a terminal never can; so a terminal costs no fork either.

A request whose fds came along (the master's ``handover`` extension) goes from the phase
straight to the waiting command: ``W:<command>:<runner header>`` with the args socket, stdout,
stderr and runner socket, in one ``sendmsg``. The phase keeps its own copy of the runner socket
and the read end of the command's status pipe (``spares.Handed``): when it reaps a command that
died without reporting (killed, ``os._exit``, ``exec``), it reports the status, as a runner
would. If the phase goes first (restarted while the command runs), the master, the subreaper,
reaps the command and reports (on Linux; elsewhere, where there is no subreaper, the master
gives such a command status 1 once it is gone). The guard's keeper ends the command if the
master dies.

Without the hand-over (a master that did not accept it) there is no spare: the phase forks a
runner for each request (runner.run_runner).
"""

from __future__ import annotations

import os
import socket
import sys

from zeuspy.plan import Plan
from zeuspy.protocol import wire
from zeuspy.protocol.messages import parse_spare_work
from zeuspy.shim import guard, process
from zeuspy.shim.command import (
    command_process,
    prepare_command_process,
    rehearse,
    stdio_of,
    take_terminal,
)


def _wait_for_work(sock: socket.socket) -> tuple[str, list[int]]:
    """The ``W:`` message and its fds: those of the hand-over (the runner header's
    ``fd_count``), then the runner socket. Exits when the phase closes the socket first (the
    spare was discarded, or the phase is gone)."""
    reader = wire.FrameReader()
    messages: list[str] = []
    # The fds come with the first chunk of the message; a long one (a large world) takes more
    # reads: wait for both. Before the message is whole, at least four fds are due.
    while not messages or len(reader.fds) < _fd_count(messages[0]):
        try:
            data, fds = wire.receive(sock)  # blocking
        except (OSError, wire.ProtocolError):
            data, fds = b"", []
        if not data and not fds:
            os._exit(0)
        reader.feed(data, fds)
        messages += reader.messages()
    count = _fd_count(messages[0])
    wire.close_fds(reader.fds[count:])
    return messages[0], reader.fds[:count]


def _fd_count(message: str) -> int:
    """The fds that come with ``W:<command>:<runner header>``: the hand-over's and the runner
    socket (a malformed header: the legacy four, and the spare refuses it later)."""
    try:
        return parse_spare_work(message).header.fd_count + 1
    except wire.ProtocolError:
        return 4


def spare_command(plan: Plan, sock: socket.socket, status_w: int, phase_pid: int) -> None:
    """The spare: leads a session with its guard, prepares, waits for ``W:<command>:<runner
    header>`` and its fds (args socket, stdin and stdout or the legacy stdout pair, stderr,
    runner socket), takes the client's
    terminal if asked (flag ``t``), and runs. Idle, it exits when the phase's end of its socket
    closes, the phase's death included: not by a parent-death signal, which could also end it
    after the phase handed it a request it had not read yet (the stream delivers that request
    before the EOF). Once it has a request it outlives the phase like any command. Never
    returns."""
    process.set_title("zeus command: (ready)")
    guard_ready = guard.start()
    prepare_command_process()
    try:
        rehearse(plan)
    except Exception:  # only ever a head start (a removed working folder, say)
        pass
    message, fds = _wait_for_work(sock)
    sock.close()
    local = socket.socket(fileno=fds.pop())
    try:
        request = parse_spare_work(message)
        command, header = request.command, request.header
        args_fd, stdio = stdio_of(header, fds)
    except (OSError, ValueError, IndexError, wire.ProtocolError) as exc:
        print(f"zeus: cannot start the command: {exc}", file=sys.stderr, flush=True)
        os._exit(1)  # the phase reports status 1
    guard.wait_ready(guard_ready)
    ctty = take_terminal(header, stdio)
    command_process(plan, command, args_fd, local, stdio, status_w, ctty, phase_pid, header,
                    prepared=True)

