"""The command process: what every command does, forked by a runner (runner.py) or waiting as
the spare (spare.py).

It takes the client's terminal when asked (in the session it leads, or its runner leads), takes a
process group of its own, attaches the client's fds as 0/1/2, rebuilds ``sys.std*`` on them,
enters the client's world, runs the plan's method, and reports its own status on the runner
socket *before* it exits: it has flushed and closed the client's streams by then, so the client
finishes while the command's teardown has not even begun. When a command dies without reporting
(killed, ``os._exit``, ``exec``), its runner (runner.py) or its phase (spares.Handed) reports
the status from ``waitpid``; if both are gone, the master, their subreaper, does.
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
import traceback

from zeuspy.plan import Plan, boot_variables
from zeuspy.protocol import wire
from zeuspy.protocol.messages import (
    SIGNALS_FLAG,
    ExitStatus,
    Registration,
    RunnerHeader,
    decode_world,
    encode_world,
)
from zeuspy.shim import framestack, hygiene, learned, process, stdio, world
from zeuspy.shim.outcome import exit_status_of, run_plan_command

#: How long a runner or spare waits for the client's arguments.
ARGS_TIMEOUT = 5.0
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


def status_message(wait_status: int, header: RunnerHeader) -> str:
    """The ``<exit status>`` datagram for a command reaped with ``wait_status``: with its signal
    when the master reads it (flag ``k``)."""
    return exit_status_of(wait_status).format(with_signal=SIGNALS_FLAG in header.flags)


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
    gone, caches and generators renewed, the phase's exit handlers dropped, the plan file's
    module unlisted."""
    if os.getsid(0) == os.getpid():
        hygiene.own_group_calls_as_noops()
    else:
        os.setpgid(0, 0)
    process.reset_signals()
    hygiene.renew_after_fork()
    hygiene.drop_inherited_exit_handlers()
    hygiene.hide_plan_module()
    learned.remember_inherited()


def rehearse(plan: Plan) -> None:
    """While a spare waits: go once through the start of a command that does not depend on the
    request (new stdio objects, the world's decoding, checks and entry), on the phase's own
    streams and world, where it changes nothing. Every first write to a page the spare still
    shares with the phase costs a page copy; made now, those copies are off the request's path
    (measured: about 1 ms of a no-op command's start)."""
    client = decode_world(encode_world(os.getcwdb(), dict(os.environb)))
    stdio.rebuild(client.environ)
    strict = boot_variables(plan)
    world.mismatches(client.environ, strict, plan.boot_default)
    world.drifted(client.environ, strict)
    world.enter(client)


def command_process(plan: Plan, command: str, args_fd: int, local: socket.socket,
                    fds: Stdio, status_w: int, ctty: int | None, phase_pid: int,
                    header: RunnerHeader, prepared: bool = False) -> None:
    """The command: registers, reads its arguments from ``args_fd``, enters the client's world,
    runs the plan's method on the client's streams (``fds``: stdin, stdout, stderr; ``ctty``:
    the one of them it took as its controlling terminal) and reports on ``local``.
    ``prepared``: :func:`prepare_command_process` was called already (a spare command does it
    while it waits). Nothing of the request is used up before the registration (the arguments
    can be read once only): the master may place a request whose command never registered
    again. Never returns."""
    status = ExitStatus(1)
    signals = SIGNALS_FLAG in header.flags
    try:
        if not prepared:
            prepare_command_process()
        if ctty is not None:
            _foreground(ctty)
        flags = "t" if ctty is not None else ""
        try:
            wire.send_message(local, Registration(os.getpid(), phase_pid, "", flags).format())
        except OSError:
            # The master let go of the request (its phase ended before this registered) and
            # may have placed it again: run nothing, not even the phase's exit handlers.
            os._exit(1)
        try:
            arguments = read_arguments(args_fd, header.argc)
        except (OSError, wire.ProtocolError) as exc:
            _tell(fds[2], f"zeus: cannot start {command}: {exc}\n")
            finish(status, local, status_w, signals)
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
        stdio.rebuild(client.environ if client is not None else None)
        sys.argv = [command, *arguments]
        # Not the phase's own command line (a program that starts itself again from it would
        # start a shim); plans that stand in for a program set that program's (pyrun, pytest).
        sys.orig_argv = [sys.executable, *sys.argv]
        process.set_title(f"zeus command: {command}")
        if client is not None:
            strict = boot_variables(plan)
            differ = world.mismatches(client.environ, strict, plan.boot_default)
            if differ:
                print(BOOT_MISMATCH.format(lines="\n".join(differ)), file=sys.stderr)
                finish(ExitStatus(1), local, status_w, signals)
            drifted = world.drifted(client.environ, strict)
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


def _tell(fd: int, text: str) -> None:
    """One line on the client's stream ``fd``, if it takes it."""
    try:
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError:
        pass


def exit_as_python(wait_for_threads: bool = True) -> None:
    """What interpreter exit does that users can see, for a process about to leave by
    ``os._exit``: wait for non-daemon threads (unless not ``wait_for_threads``), run the atexit
    handlers, flush stdio."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None and wait_for_threads:
            threading._shutdown()
    except BaseException:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def finish(status: ExitStatus, local: socket.socket, status_w: int, signals: bool) -> None:
    """Do what interpreter exit does that users can see (:func:`exit_as_python`), release the
    client's streams, report (with the signal when ``signals``: the master reads it), and leave
    without the teardown of the inherited heap (as multiprocessing's forked children do)."""
    exit_as_python()
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
