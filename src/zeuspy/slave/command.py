"""Commands: the runner's side of the protocol, handled by the phase, and the command process.

To the master a zeuspy phase looks like any shim: on ``C:<command>`` it answers with a runner's
datagram socket, then receives ``<client pid>:<argc>`` and three fds on it and reports ``P:`` and
the exit status there. But no runner process sits between the phase and the command: the phase
creates the socket itself, keeps serving while the master answers, and forks the command once
everything has arrived (:class:`PendingCommand`). The command calls ``setsid`` (so a restart of
its phase never touches it), attaches the client's fds as 0/1/2, runs the plan's method, and
reports its own status on the runner socket *before* it exits: it has flushed and closed the
client's streams by then, so the client finishes while the command's teardown has not even begun.
When a command dies without reporting (killed, ``os._exit``, ``exec``), its parent phase reports
the status from ``waitpid``; if that phase was restarted meanwhile, the master, the command's
subreaper, does. One fork per command instead of two.
"""

from __future__ import annotations

import atexit
import io
import os
import select
import signal
import socket
import sys
import traceback

from zeuspy.plan import Plan, method_name
from zeuspy.protocol import wire
from zeuspy.protocol.messages import Registration, RunnerHeader, parse_runner_header
from zeuspy.slave import process

#: How long the phase waits for a client's arguments once the master passed their socket.
ARGS_TIMEOUT = 5.0
#: What a command writes on its status pipe once it has sent its status to the master itself.
REPORTED = b"r"


class PendingCommand:
    """A ``C:`` request whose runner socket went to the master: collects the header and fds."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.remote = remote
        self.reader = wire.FrameReader()
        self.header: RunnerHeader | None = None

    def fileno(self) -> int:
        return self.local.fileno()

    def receive(self) -> bool:
        """Read what the master sent; True once the header and the three fds are all here."""
        data, fds = wire.receive(self.local)
        if data and not data.endswith(wire.NUL):
            data += wire.NUL
        self.reader.feed(data, fds)
        for message in self.reader.messages():
            if self.header is None:
                self.header = parse_runner_header(message)
        return self.header is not None and len(self.reader.fds) >= 3

    def close(self) -> None:
        self.reader.close()
        self.local.close()


class RunningCommand:
    """A forked command, until its parent phase has reaped it."""

    def __init__(self, pid: int, local: socket.socket, status_r: int) -> None:
        self.pid = pid
        self.local = local
        self.status_r = status_r
        self.reported = False

    def fileno(self) -> int:
        return self.status_r

    def check_reported(self) -> None:
        """Read the status pipe (non-blocking): did the command report its status itself?"""
        try:
            data = os.read(self.status_r, 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if REPORTED in data:
            self.reported = True

    def reaped(self, wait_status: int) -> None:
        """The command exited: report its status unless it did so itself."""
        self.check_reported()
        if not self.reported:
            try:
                wire.send_message(self.local, str(status_from_wait(wait_status)))
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        self.local.close()
        try:
            os.close(self.status_r)
        except OSError:
            pass


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


def exit_status(code: object) -> int:
    """Map a return value or ``SystemExit.code`` to a status, as the interpreter does at exit."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def status_from_wait(status: int) -> int:
    """A waitpid status as a shell shows it: the exit code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _rebuild_stdio() -> None:
    """New ``sys.stdin/stdout/stderr`` on fds 0/1/2, configured as the interpreter does at start-up:
    stdout line-buffered on a terminal, stderr always line-buffered with backslashreplace."""
    old = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    encoding = getattr(old[1], "encoding", None) or "utf-8"
    errors = getattr(old[1], "errors", None) or "strict"

    def stream(fd: int, mode: str, errors: str, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered: io.BufferedIOBase
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(buffered, encoding=encoding, errors=errors, line_buffering=line)

    for name, stream_ in (
        ("stdin", stream(0, "r", errors, os.isatty(0))),
        ("stdout", stream(1, "w", errors, os.isatty(1))),
        ("stderr", stream(2, "w", "backslashreplace", True)),
    ):
        setattr(sys, name, stream_)
        setattr(sys, f"__{name}__", stream_)


def _take_terminal(fd: int) -> bool:
    """Make the client's PTY our controlling terminal; as the session leader we are then its
    foreground process group, so ^C, ^\\ and ^Z reach the command and everything it starts."""
    import fcntl
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    except OSError:
        return False
    return True


def command_process(plan: Plan, command: str, arguments: list[str], local: socket.socket,
                    out_fd: int, err_fd: int, status_w: int, want_tty: bool,
                    phase_pid: int) -> None:
    """The command (a fresh fork of the phase): runs the plan's method on the client's streams
    and reports on ``local``. Never returns."""
    status = 1
    try:
        os.setsid()
        process.reset_signals()
        ctty = want_tty and _take_terminal(out_fd)
        flags = "t" if ctty else ""
        wire.send_message(local, Registration(os.getpid(), phase_pid, "", flags).format())
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(out_fd, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        wire.close_fds({out_fd, err_fd} - {0, 1, 2})
        _rebuild_stdio()
        sys.argv = [command, *arguments]
        process.set_title(f"zeus command: {command}")
        status = run_plan_command(plan, command, arguments)
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
    finish(status, local, status_w)


def run_plan_command(plan: Plan, command: str, arguments: list[str]) -> int:
    """Run the command's method; map its outcome to an exit status as ``python`` would."""
    try:
        plan.after_fork()
        result = getattr(plan, method_name(command))(arguments)
    except SystemExit as exc:
        return exit_status(exc.code)
    except KeyboardInterrupt as exc:
        _print_user_traceback(exc)
        return 128 + signal.SIGINT
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    return exit_status(result)


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as ``python`` would print it: through ``sys.excepthook``, without this
    module's own frame."""
    tb = exc.__traceback__
    sys.excepthook(type(exc), exc, tb.tb_next if tb is not None else None)


def finish(status: int, local: socket.socket, status_w: int) -> None:
    """Do what interpreter exit does that users can see (wait for non-daemon threads, run atexit
    handlers, flush stdio), release the client's streams, report, and leave without the teardown
    of the inherited heap (as multiprocessing's forked children do)."""
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
        wire.send_message(local, str(status))
        os.write(status_w, REPORTED)
    finally:
        os._exit(status)
