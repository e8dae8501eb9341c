"""Commands: the runner and the command process.

A request normally goes to the phase's spare, a command forked in advance (spare.py). Without
one, on ``C:<command>`` the phase creates the runner's datagram socket, hands its remote end to
the master and *then* forks a runner (``zeus runner: NAME``), so the fork overlaps the master's
answer. The runner calls ``setsid``, receives ``<client pid>:<argc>`` and the three fds, takes the
client's terminal when asked, and forks the command, which takes a process group of its own in
the runner's session: with its parent in the same session, that group is not orphaned, so ^Z
really stops it (the kernel drops stop signals sent to an orphaned group). The command attaches
the client's fds as 0/1/2, runs the plan's method, and reports its own status on the runner
socket *before* it exits: it has flushed and closed the client's streams by then, so the client
finishes while the command's teardown has not even begun.
When a command dies without reporting (killed, ``os._exit``, ``exec``), the runner reports the
status from ``waitpid``; if the runner is killed too, the master, their subreaper, does.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import select
import signal
import socket
import sys
import termios
import time
import traceback

from zeuspy import procs
from zeuspy.plan import Plan, boot_variables
from zeuspy.protocol import wire
from zeuspy.protocol.messages import (
    SIGNALS_FLAG,
    ExitStatus,
    Registration,
    RunnerHeader,
    decode_world,
    encode_world,
    parse_runner_header,
)
from zeuspy.shim import framestack, hygiene, learned, process, stdio, world
from zeuspy.shim.outcome import exit_status_of, run_plan_command

#: How long the runner waits for the master's datagrams and the client's arguments.
HANDOFF_TIMEOUT = 10.0
ARGS_TIMEOUT = 5.0
#: How often the runner checks for a command that died without reporting (its status pipe can be
#: held open by a grandchild, so EOF alone is not proof of death).
WAIT_POLL_INTERVAL = 0.25
#: After the master died, a command that ignored SIGHUP gets SIGKILL after this.
MASTER_GONE_GRACE = 1.0
#: What a command writes on its status pipe once it has sent its status to the master itself.
REPORTED = b"r"
BOOT_MISMATCH = """\
zeus: not running: variables that shaped the boot differ in this shell:
{lines}
The phases were booted for other values, so the command would not run as it would here. Restart
the master from this shell (`zeus stop`, then `zeus start`), or set the variables as they were."""
BOOT_DRIFT = """\
zeus: warning: {names} differ(s) in this shell from when the phases booted, and the boot read \
them: code that used them then keeps the old values. Restart the master from this shell to use \
these, or list them in boot_env ([tool.zeus] or the plan) to refuse such commands."""


def read_arguments(fd: int, argc: int, timeout: float = ARGS_TIMEOUT) -> list[str]:
    """Read the args socket to EOF: ``argc`` NUL-terminated arguments (empty ones included).
    Closes ``fd``. Raises :class:`wire.ProtocolError` on a wrong count or after ``timeout``."""
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise wire.ProtocolError(f"no arguments within {timeout:g} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()  # the terminator of the last argument
    if len(parts) != argc:
        raise wire.ProtocolError(f"expected {argc} arguments, got {len(parts)}")
    return [os.fsdecode(p) for p in parts]


#: A command's stdin, stdout and stderr as the master handed them over.
Stdio = tuple[int, int, int]


def stdio_of(header: RunnerHeader, fds: list[int]) -> tuple[int, Stdio]:
    """The args socket and the command's stdin, stdout and stderr from the fds that came with
    ``header``: with the ``stdio`` flag, four fds (args, stdin, stdout, stderr); else the legacy
    three (args, stdout carrying stdin, stderr)."""
    if header.fd_count == 4:
        return fds[0], (fds[1], fds[2], fds[3])
    return fds[0], (fds[1], fds[1], fds[2])


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


def status_message(wait_status: int, header: RunnerHeader) -> str:
    """The ``<exit status>`` datagram for a command reaped with ``wait_status``: with its signal
    when the master reads it (flag ``k``)."""
    return exit_status_of(wait_status).format(with_signal=SIGNALS_FLAG in header.flags)


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
    """In a runner: read the arguments, fork the command, make sure its status is reported,
    exit. Never returns."""
    try:
        arguments = read_arguments(args_fd, header.argc)
    except (OSError, wire.ProtocolError) as exc:
        print(f"zeus: cannot start {command}: {exc}", file=sys.stderr, flush=True)
        wire.send_message(local, "1")
        os._exit(1)
    status_r, status_w = os.pipe()
    process.prepare_fork()
    pid = os.fork()
    if pid == 0:
        os.close(status_r)
        command_process(plan, command, arguments, local, stdio, status_w, ctty, phase_pid,
                        header)
    os.close(status_w)
    wire.close_fds(set(stdio))
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


def take_terminal(header: RunnerHeader, stdio: Stdio) -> int | None:
    """When the master asked (flag ``t``), make the client's PTY the controlling terminal of our
    session, which we lead (a runner, or a spare command); the command then makes its own group
    the foreground one. The PTY is the first of stdout, stderr and stdin that is a terminal; a
    terminal that already is another session's (the user's own, handed over as stdin when no
    PTY was needed) is refused by the kernel and left alone. Returns the fd taken, or None."""
    if "t" not in header.flags:
        return None
    for fd in (stdio[1], stdio[2], stdio[0]):
        if not os.isatty(fd):
            continue
        try:
            fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
        except OSError:
            continue
        return fd
    return None


def _foreground(fd: int) -> None:
    """Make our process group the terminal's foreground group, as a shell does for a job: ^C,
    ^\\ and ^Z then reach the command and everything it starts."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, os.getpgrp())
    finally:
        signal.signal(signal.SIGTTOU, previous)


def prepare_command_process() -> None:
    """What a command does first, whatever the request: a process group of its own (a spare
    command leads a session, and so a group, already), the phase's signal handlers and mask
    gone, caches and generators renewed, the phase's exit handlers dropped."""
    if os.getsid(0) == os.getpid():
        hygiene.own_group_calls_as_noops()
    else:
        os.setpgid(0, 0)
    process.reset_signals()
    hygiene.renew_after_fork()
    hygiene.drop_phase_exit_handlers()
    learned.remember_inherited()


def rehearse(plan: Plan) -> None:
    """While a spare waits: go once through the start of a command that does not depend on the
    request (new stdio objects, the world's decoding, checks and entry), on the phase's own
    streams and world, where it changes nothing. Every first write to a page the spare still
    shares with the phase costs a page copy; made now, those copies are off the request's path
    (measured: about 1 ms of a no-op command's start)."""
    client = decode_world(encode_world(os.getcwdb(), dict(os.environb)))
    stdio.rebuild(client[1])
    strict = boot_variables(plan)
    world.mismatches(client[1], strict, plan.boot_default)
    world.drifted(client[1], strict)
    world.enter(client)


def command_process(plan: Plan, command: str, arguments: list[str], local: socket.socket,
                    fds: Stdio, status_w: int, ctty: int | None, phase_pid: int,
                    header: RunnerHeader, prepared: bool = False) -> None:
    """The command: enters the client's world, runs the plan's method on the client's streams
    (``fds``: stdin, stdout, stderr; ``ctty``: the one of them it took as its controlling
    terminal) and reports on ``local``. ``prepared``: :func:`prepare_command_process` was called
    already (a spare command does it while it waits). Never returns."""
    status = ExitStatus(1)
    signals = SIGNALS_FLAG in header.flags
    try:
        if not prepared:
            prepare_command_process()
        if ctty is not None:
            _foreground(ctty)
        flags = "t" if ctty is not None else ""
        wire.send_message(local, Registration(os.getpid(), phase_pid, "", flags).format())
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        # A client's fd that arrived as 0, 1 or 2 would be overwritten before it is copied: copy
        # the sources elsewhere first (received fds are numbered above 2 nearly always).
        sources = [os.dup(fd) for fd in fds] if {0, 1, 2} & set(fds) else list(fds)
        for target, fd in enumerate(sources):
            os.dup2(fd, target)
        wire.close_fds({*fds, *sources} - {0, 1, 2})
        client = world.of_client(header)
        stdio.rebuild(client[1] if client is not None else None)
        sys.argv = [command, *arguments]
        process.set_title(f"zeus command: {command}")
        if client is not None:
            strict = boot_variables(plan)
            differ = world.mismatches(client[1], strict, plan.boot_default)
            if differ:
                print(BOOT_MISMATCH.format(lines="\n".join(differ)), file=sys.stderr)
                finish(ExitStatus(1), local, status_w, signals)
            drifted = world.drifted(client[1], strict)
            if drifted:
                print(BOOT_DRIFT.format(names=", ".join(drifted)), file=sys.stderr)
            world.enter(client)
        status = framestack.call_with_room(lambda: run_plan_command(plan, command, arguments))
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finish(status, local, status_w, signals)


def finish(status: ExitStatus, local: socket.socket, status_w: int, signals: bool) -> None:
    """Do what interpreter exit does that users can see (wait for non-daemon threads, run atexit
    handlers, flush stdio), release the client's streams, report (with the signal when
    ``signals``: the master reads it), and leave without the teardown of the inherited heap (as
    multiprocessing's forked children do)."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    except BaseException:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        wire.send_message(local, status.format(with_signal=signals))
        os.write(status_w, REPORTED)
        learned.send_new_imports()  # after the status: the client does not wait for it
    finally:
        os._exit(status.status)
