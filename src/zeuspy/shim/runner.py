"""The runner: forked by a phase for a request no spare takes (spare.py).

On ``C:<command>`` the phase creates the runner's datagram socket, hands its remote end to the
master and *then* forks a runner (``zeus runner: NAME``), so the fork overlaps the master's
answer. The runner calls ``setsid``, receives ``<client pid>:<argc>`` and the fds (or gets them
from the phase with the hand-over), takes the client's terminal when asked, and forks the command
(command.py), which takes a process group of its own in the runner's session: with its parent in
the same session, that group is not orphaned, so ^Z really stops it (the kernel drops stop
signals sent to an orphaned group). When the command dies without reporting (killed,
``os._exit``, ``exec``), the runner reports the status from ``waitpid``; if the runner is killed
too, the master, their subreaper, does.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import time

from zeuspy import procs
from zeuspy.plan import Plan
from zeuspy.protocol import wire
from zeuspy.protocol.messages import RunnerHeader, parse_runner_header
from zeuspy.shim import process
from zeuspy.shim.command import (
    REPORTED,
    Stdio,
    command_process,
    status_message,
    stdio_of,
    take_terminal,
)

#: How long the runner waits for the master's datagrams.
HANDOFF_TIMEOUT = 10.0
#: How often the runner checks for a command that died without reporting (its status pipe can be
#: held open by a grandchild, so EOF alone is not proof of death).
WAIT_POLL_INTERVAL = 0.25
#: After the master died, a command that ignored SIGHUP gets SIGKILL after this.
MASTER_GONE_GRACE = 1.0


def take_handover(local: socket.socket) -> tuple[RunnerHeader, int, Stdio]:
    """The master's datagrams on the runner socket: the header, then the args socket and the
    stdio fds (:func:`stdio_of`)."""
    local.settimeout(HANDOFF_TIMEOUT)
    reader = wire.FrameReader()
    header: RunnerHeader | None = None
    while header is None or len(reader.fds) < header.fd_count:
        data, fds = wire.receive(local)
        if not data and not fds:
            os._exit(1)
        reader.feed(data if data.endswith(wire.NUL) else data + wire.NUL, fds)
        for message in reader.messages():
            header = header or parse_runner_header(message)
    local.settimeout(None)
    wire.close_fds(reader.fds[header.fd_count:])
    args_fd, stdio = stdio_of(header, reader.fds[: header.fd_count])
    return header, args_fd, stdio


def _report_unless_reported(local: socket.socket, pid: int, status_r: int,
                            header: RunnerHeader) -> None:
    reported, wait_status = wait_for_status(pid, status_r)
    if not reported:
        try:
            wire.send_message(local, status_message(wait_status, header))
        except OSError:
            pass


class Work:
    """A command request as a runner gets it: the command, the runner socket, and - when the
    master sent them along with ``C:`` (the ``handover`` extension) - the header text
    (``<client pid>:<argc>:<flags>``) and the args, stdout and stderr fds."""

    def __init__(self, command: str, local: socket.socket,
                 handover: tuple[str, list[int]] | None) -> None:
        self.command = command
        self.local = local
        self.handover = handover

    def take(self) -> tuple[RunnerHeader, int, Stdio]:
        """The header, the args socket and the stdio fds: from the hand-over, or from the
        master on the runner socket."""
        if self.handover is None:
            return take_handover(self.local)
        header = parse_runner_header(self.handover[0])
        args_fd, stdio = stdio_of(header, self.handover[1])
        return header, args_fd, stdio

    def close(self) -> None:
        self.local.close()
        if self.handover is not None:
            wire.close_fds(self.handover[1])


def run_runner(plan: Plan, work: Work, phase_pid: int) -> None:
    """A runner forked for one request: take the hand-over, fork the command, make sure its
    status is reported. Never returns."""
    process.set_title(f"zeus runner: {work.command}")  # in a session of its own already
    header, args_fd, stdio = work.take()
    ctty = take_terminal(header, stdio)
    _fork_command(plan, work.command, header, work.local, args_fd, stdio, ctty, phase_pid)


def _fork_command(plan: Plan, command: str, header: RunnerHeader, local: socket.socket,
                  args_fd: int, stdio: Stdio, ctty: int | None, phase_pid: int) -> None:
    """In a runner: fork the command (which reads the arguments), make sure its status is
    reported, exit. Never returns."""
    status_r, status_w = os.pipe()
    process.prepare_fork()
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        command_process(plan, command, args_fd, local, stdio, status_w, ctty, phase_pid,
                        header)
    os.close(status_w)
    wire.close_fds({args_fd, *stdio})
    _report_unless_reported(local, pid, status_r, header)
    os._exit(0)


def wait_for_status(pid: int, status_r: int) -> tuple[bool, int]:
    """(whether the command reported itself, its wait status); returns once it has been reaped.
    When the master dies meanwhile, nobody can relay the command's output or status any more,
    so the command's group gets SIGHUP (as a closed terminal would send) and, after
    :data:`MASTER_GONE_GRACE`, SIGKILL: the client may not have learnt its pid, and could not
    end it itself."""
    reported = False
    hung_up: float | None = None
    while True:
        if hung_up is None and not process.master_alive():
            hung_up = time.monotonic()
            procs.signal_group_or_pid(pid, signal.SIGHUP)
        elif hung_up is not None and time.monotonic() - hung_up > MASTER_GONE_GRACE:
            procs.signal_group_or_pid(pid, signal.SIGKILL)
        ready, _, _ = select.select([status_r], [], [], WAIT_POLL_INTERVAL)
        if ready:
            data = os.read(status_r, 16)
            reported = reported or REPORTED in data
            if not data:  # EOF: it exited, exec'd or closed the pipe; wait for it now
                try:
                    _, status = os.waitpid(pid, 0)
                except ChildProcessError:
                    return reported, 1 << 8
                return reported, status
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return reported, status


