r"""The original Go client (burke/zeus go/zeusclient/zeusclient.go) in Python, run as
``python -I go_client.py SOCKET-OR-- COMMAND ARGS``: no extension offer (so no world and no stdin
fd); for stdout and for stderr a PTY pair when that stream is a terminal (window size copied,
the terminal put in raw mode and restored at exit), else a socketpair; its stdin relayed into
the stdout pair, with ^C ^\ ^Z turned into signals to the command when stdout is a terminal;
and, like the Go client (its WaitGroup is copied, so it never waits for the output), it exits
with the status as soon as it reads it, without draining the streams. One deviation: at stdin
EOF it shuts the socket's write side (the Go client never did, and a command reading stdin to
EOF hung). Its socket: the first argument, or for ``-`` ``$ZEUSSOCK``, else ``.zeus.sock`` in the
cwd (``$PY`` is split into words unquoted, hence no empty argument).

A script, standard library only (it runs with ``-I``)."""

import array
import fcntl
import os
import pty
import signal
import socket
import sys
import termios
import threading
import tty

SIGNAL_KEYS = {3: signal.SIGINT, 28: signal.SIGQUIT, 26: signal.SIGTSTP}


def pair(fd):
    if os.isatty(fd):
        local, remote = pty.openpty()
        try:
            fcntl.ioctl(local, termios.TIOCSWINSZ, fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass
        return local, remote, True
    a, b = socket.socketpair()
    return a.detach(), b.detach(), False


def send_fd(sock, fd):
    rights = array.array("i", [fd]).tobytes()
    sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])


def forward(src, dst):
    while True:
        try:
            data = os.read(src, 1024)
        except OSError:
            return
        if not data:
            return
        try:
            os.write(dst, data)
        except OSError:
            return


def main():
    path = sys.argv[1] if sys.argv[1] != "-" else os.environ.get("ZEUSSOCK") or ".zeus.sock"
    command, args = sys.argv[2], sys.argv[3:]
    out_local, out_remote, out_tty = pair(1)
    err_local, err_remote, _ = pair(2)
    master = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        master.connect(path)
    except OSError:
        print("Can't connect to master. Run zeus start first.", file=sys.stderr)
        return 1
    master.sendall(f"T:{len(args)}:{os.getpid()}:{command}".encode() + b"\0")
    args_local, args_remote = socket.socketpair()
    send_fd(master, args_remote.fileno())
    args_remote.close()
    args_local.sendall(b"".join(a.encode() + b"\0" for a in args))
    args_local.close()
    send_fd(master, out_remote)
    send_fd(master, err_remote)
    os.close(out_remote)
    os.close(err_remote)
    reader = master.makefile("rb")

    def message():
        data = b""
        while not data.endswith(b"\0"):
            byte = reader.read(1)
            if not byte:
                raise SystemExit(1)
            data += byte
        return data[:-1].decode()

    pid = int(message())
    saved = {}
    for fd in (1, 2):
        if os.isatty(fd):
            saved[fd] = termios.tcgetattr(fd)
            tty.setraw(fd)
    if out_tty and pid > 0:
        def relay_signal(signum, frame):
            os.kill(pid, signum)
            os._exit(1)
        for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1,
                       signal.SIGUSR2):
            signal.signal(signum, relay_signal)
    for src, dst in ((out_local, 1), (err_local, 2)):
        threading.Thread(target=forward, args=(src, dst), daemon=True).start()

    def pump_stdin():
        while True:
            try:
                data = os.read(0, 8192)
            except OSError:
                data = b""
            if not data:
                if not out_tty:
                    try:
                        socket.socket(fileno=os.dup(out_local)).shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                return
            if out_tty and pid > 0:
                for byte in data:
                    if byte in SIGNAL_KEYS:
                        os.kill(pid, SIGNAL_KEYS[byte])
                        if byte == 26:
                            os.kill(os.getpid(), signal.SIGTSTP)
            try:
                os.write(out_local, data)
            except OSError:
                return

    threading.Thread(target=pump_stdin, daemon=True).start()
    try:
        status = int(message())
    finally:
        for fd, mode in reversed(saved.items()):  # Go's defers: last saved, first restored
            termios.tcsetattr(fd, termios.TCSADRAIN, mode)
    return status


if __name__ == "__main__":
    os._exit(main())
