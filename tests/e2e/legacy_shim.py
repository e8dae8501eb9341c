"""A minimal shim that speaks exactly the legacy Zeus protocol (/work/shared/docs/protocol.md).

It stands in for an unmodified legacy shim (the original's Ruby one): it never sends a byte the
original would not, never reads the zeuspy extension offer, and does not import zeuspy. Phases and
commands come from the tiny table below instead of a plan module.

Usage, as zeus.json's ``"command"``::

    <python> legacy_shim.py <plan file> [--bogus-registration] [--end-before-runner]

``<plan file>`` is only reported as a loaded feature. ``--bogus-registration`` makes the root
phase also register a process under an identifier that is not in the plan
(``P:<pid>:<pid>:no-such-phase``) before it reports ``R:OK``. ``--end-before-runner``: a phase
asked for a command while a file ``end-before-runner`` is in its folder removes that file, hands
the master the runner's socket, changes the plan file (so the master restarts the phases) and
waits to be ended, without forking the runner.
"""

from __future__ import annotations

import array
import os
import re
import signal
import socket
import sys
import time

NUL = b"\0"
FD_SIZE = array.array("i").itemsize


# -- framing -----------------------------------------------------------------------------------
def send_msg(sock: socket.socket, text: str) -> None:
    """A message: the text and one NUL."""
    sock.sendall(text.encode() + NUL)


def send_fd(sock: socket.socket, fd: int) -> None:
    """An fd message: 1-byte payload NUL and one SCM_RIGHTS control message with one fd."""
    sock.sendmsg([NUL], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]).tobytes())])


def violation(text: str) -> None:
    """The master sent something an unmodified legacy shim does not expect: say so (the master
    logs our stderr, and the tests look for this line) and give up on this request."""
    sys.stderr.write(f"legacy shim: protocol violation: {text}\n")
    sys.stderr.flush()


def recv_datagram(sock: socket.socket) -> tuple[bytes, list[int]]:
    data, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(4 * FD_SIZE))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % FD_SIZE
            fds.extend(array.array("i", payload[:usable]))
    return data, fds


class StreamReader:
    """Splits a stream socket on NUL, skipping empty messages."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def messages(self) -> list[str] | None:
        """The next complete messages (maybe none); None at EOF."""
        data, fds = recv_datagram(self.sock)
        for fd in fds:  # nobody sends us fds on a phase socket
            os.close(fd)
        if not data and not fds:
            return None
        self.buffer += data
        *complete, self.buffer = self.buffer.split(NUL)
        return [part.decode() for part in complete if part]


# -- the "plan" --------------------------------------------------------------------------------
def action(identifier: str) -> None:
    """A phase's action."""
    if identifier == "broken":
        raise RuntimeError("legacy phase broken on purpose")


def run_command(command: str, args: list[str]) -> int:
    """A command's body, on fds 0/1/2; its exit status."""
    out = sys.stdout
    if command == "hello":
        out.write(" ".join(["legacy hello", *args]) + "\n")
        return 0
    if command == "exitwith":
        return int(args[0])
    if command == "echoargs":
        for arg in args:
            out.write(repr(arg) + "\n")
        return 0
    if command == "both":
        out.write("out\n")
        sys.stderr.write("err\n")
        return 3
    if command == "cat":
        out.write(sys.stdin.read())
        return 0
    sys.stderr.write(f"legacy shim: no command {command}\n")
    return 1


# -- phases ------------------------------------------------------------------------------------
#: The file that makes the next command request end its phase (``--end-before-runner``).
END_BEFORE_RUNNER = "end-before-runner"
#: How long such a phase waits to be ended.
END_WAIT = 30.0


class Phase:
    def __init__(self, bootstrap: socket.socket, plan_file: str, bogus: bool,
                 end_before_runner: bool = False) -> None:
        self.bootstrap = bootstrap
        self.plan_file = plan_file
        self.bogus = bogus
        self.end_before_runner = end_before_runner
        self.sock: socket.socket | None = None
        self.feature_w: int | None = None

    def register(self, identifier: str, parent_pid: int) -> None:
        local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        send_fd(self.bootstrap, remote.fileno())
        remote.close()
        send_msg(local, f"P:{os.getpid()}:{parent_pid}:{identifier}")
        read_end, write_end = os.pipe()
        send_fd(local, read_end)
        os.close(read_end)
        self.sock = local
        self.feature_w = write_end

    def boot(self, identifier: str, parent_pid: int) -> None:
        self.register(identifier, parent_pid)
        assert self.sock is not None and self.feature_w is not None
        try:
            action(identifier)
        except Exception as exc:
            import traceback

            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            sys.stderr.write(text)
            sys.stderr.flush()
            send_msg(self.sock, "R:" + text.rstrip("\n"))
            os._exit(1)
        os.write(self.feature_w, (os.path.abspath(self.plan_file) + "\n").encode())
        os.write(self.feature_w, (os.path.abspath(__file__) + "\n").encode())
        if self.bogus and identifier == "boot":
            self.register_bogus()
        send_msg(self.sock, "R:OK")
        self.serve()

    def register_bogus(self) -> None:
        """Register a forked child as a phase the plan does not have; it lingers until the master
        drops its socket, then exits."""
        pid = os.fork()
        if pid:
            return
        try:
            assert self.sock is not None
            self.sock.close()
            local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            send_fd(self.bootstrap, remote.fileno())
            remote.close()
            send_msg(local, f"P:{os.getpid()}:{os.getppid()}:no-such-phase")
            read_end, _write_end = os.pipe()
            send_fd(local, read_end)
            os.close(read_end)
            local.settimeout(10)
            try:
                while local.recv(4096):
                    pass
            except OSError:
                pass
        finally:
            os._exit(0)

    def serve(self) -> None:
        assert self.sock is not None
        reader = StreamReader(self.sock)
        while True:
            messages = reader.messages()
            if messages is None:
                os._exit(0)  # the master is gone
            for message in messages:
                if message.startswith("S:"):
                    self.fork_phase(message[2:])
                elif message.startswith("C:"):
                    self.fork_runner(message[2:])
                else:
                    violation(f"unexpected message on a phase socket: {message[:60]!r}")

    def fork_phase(self, identifier: str) -> None:
        parent = os.getpid()
        if os.fork():
            return
        try:
            assert self.sock is not None and self.feature_w is not None
            self.sock.close()
            os.close(self.feature_w)
            self.boot(identifier, parent)
        finally:
            os._exit(1)

    def fork_runner(self, command: str) -> None:
        phase_pid = os.getpid()
        if self.end_before_runner and os.path.exists(END_BEFORE_RUNNER):
            os.remove(END_BEFORE_RUNNER)
            _local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            assert self.sock is not None
            send_fd(self.sock, remote.fileno())
            with open(self.plan_file, "a") as plan:
                plan.write("# changed by --end-before-runner\n")
            time.sleep(END_WAIT)  # the master's restart ends us here
            os._exit(1)
        if os.fork():
            return
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            assert self.sock is not None and self.feature_w is not None
            os.close(self.feature_w)
            os.setsid()
            local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            send_fd(self.sock, remote.fileno())
            remote.close()
            self.sock.close()
            self.bootstrap.close()
            runner(command, local, phase_pid)
        finally:
            os._exit(1)


def runner(command: str, sock: socket.socket, phase_pid: int) -> None:
    header = b""
    fds: list[int] = []
    sock.settimeout(10)
    while not header or len(fds) < 3:
        data, got = recv_datagram(sock)
        if got:  # an fd message: payload exactly one NUL, exactly one fd, after the header
            if data != NUL or len(got) != 1 or not header:
                violation(f"bad fd message {data!r} with {len(got)} fds")
                os._exit(1)
            fds.extend(got)
        elif header or not re.fullmatch(rb"[0-9]+:[0-9]+\0?", data):
            violation(f"unexpected datagram {data[:60]!r}")
            os._exit(1)
        else:
            header = data.rstrip(NUL)
    _client_pid, argc_text = header.decode().split(":")
    argc = int(argc_text)
    args_fd, out_fd, err_fd = fds[:3]
    chunks = []
    while True:
        chunk = os.read(args_fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(args_fd)
    args = [a.decode() for a in b"".join(chunks).split(NUL)[:argc]]

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            send_msg(sock, f"P:{os.getpid()}:{phase_pid}:")
            sock.close()
            os.dup2(out_fd, 0)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            os.close(out_fd)
            os.close(err_fd)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            status = run_command(command, args)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)
    os.close(out_fd)
    os.close(err_fd)
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    send_msg(sock, str(128 - code if code < 0 else code))
    sock.close()
    os._exit(0)


def main(argv: list[str]) -> int:
    plan_file = argv[0]
    bogus = "--bogus-registration" in argv[1:]
    end_before_runner = "--end-before-runner" in argv[1:]
    bootstrap = socket.socket(fileno=int(os.environ["ZEUS_MASTER_FD"]))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # phases never wait for their children
    sys.stderr.write(f"legacy shim booting (pid {os.getpid()}) at {time.time():.3f}\n")
    sys.stderr.flush()
    Phase(bootstrap, plan_file, bogus, end_before_runner).boot("boot", 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
