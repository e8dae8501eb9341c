"""Run one command through the master: connect, hand over the terminal, relay, exit with its status.

Protocol steps ("Client <-> master <-> command") are in docs/protocol.md. Every exit path restores
the terminal; output is drained to EOF before the status is returned.
"""

import _signal
import _socket
import posix
import sys
import time

from zeuspy import paths
from zeuspy.protocol import wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from zeuspy.client import watch as watch_module
    from zeuspy.client.terminal import RawMode

NO_MASTER = "Can't connect to master. Run zeus start first."
#: After the status arrived, stop waiting for EOF on a legacy socket pair once it was idle this
#: long (a background process the command started may hold it open forever). A PTY needs no
#: wait: the client holds its slave, and a read that finds nothing once the status is in has
#: seen everything the command wrote (Linux flushes the PTY's buffer work before EAGAIN).
DRAIN_IDLE = 0.2
#: After SIGTERM or SIGHUP was forwarded, wait this long for the command's status, then leave.
TERM_GRACE = 1.0
#: A signal that arrives before the command's pid is kept this long for the pid; if the pid does
#: not come (the phase is still booting), the client leaves with it.
PID_GRACE = 1.0
#: On ^Z, relay what the PTY answers (its "^Z" echo, the command's last words) before stopping:
#: at most this long, and no more than SUSPEND_QUIET after the last of it.
SUSPEND_ECHO = 0.05
SUSPEND_QUIET = 0.01
#: Bounds of the connect and the handshake, which a master takes at once unless it is stopped or
#: wedged (its backlog or buffers full). A connect waits CONNECT_WAIT in the kernel for room in
#: a full backlog; then the client looks at the master (zeuspy.client.watch) and, if it runs,
#: tries again CONNECT_RETRY later. The command's pid, which
#: may take as long as a phase's boot, is watched from PID_WAIT on (then every watch.PID_CHECK).
HANDSHAKE_TIMEOUT = 5.0
CONNECT_WAIT = 2.0
CONNECT_RETRY = 0.01
PID_WAIT = 2.0
#: Extension offer sent after the last fd, where a legacy master never reads (docs/protocol.md);
#: ``stdio=1``: an empty message follows it carrying three fds, the command's own stdin, stdout
#: and stderr.
EXTENSION_OFFER = wire.encode("X:zeuspy=1;stdio=1")
#: Longest world sent (zeuspy.protocol.messages.MAX_WORLD; a unit test keeps both equal).
MAX_WORLD = 60000
FORWARDED = (
    _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGUSR1,
    _signal.SIGUSR2, _signal.SIGWINCH, _signal.SIGCONT, _signal.SIGTSTP,
)
#: Signals the command takes as ignored when this process was started with them ignored
#: (zeuspy.protocol.messages.IGNORABLE; a unit test keeps both equal).
IGNORABLE = (
    _signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGTERM, _signal.SIGUSR1,
    _signal.SIGUSR2, _signal.SIGALRM, _signal.SIGTSTP, _signal.SIGTTIN, _signal.SIGTTOU,
)
#: Those this process was started with ignored (read at import, before any handler is set): they
#: stay ignored here, as in a python started so, and the command ignores them too.
IGNORED = frozenset(signum for signum in IGNORABLE
                    if _signal.getsignal(signum) == _signal.SIG_IGN)
#: Signals a terminal sends to its foreground group; we deliver them to the command's group.
TERMINAL_SIGNALS = frozenset((_signal.SIGINT, _signal.SIGQUIT, _signal.SIGTSTP, _signal.SIGCONT,
                              _signal.SIGWINCH))
#: Signals whose default action dumps core: the client dies of them without a core of its own.
CORE_SIGNALS = frozenset((_signal.SIGQUIT, _signal.SIGILL, _signal.SIGTRAP, _signal.SIGABRT,
                          _signal.SIGBUS, _signal.SIGFPE, _signal.SIGSEGV, _signal.SIGXCPU,
                          _signal.SIGXFSZ, _signal.SIGSYS))


def _stderr(text: str) -> None:
    try:
        posix.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> bool:
    """Write everything (blocking); False when the reader is gone."""
    while data:
        try:
            written = posix.write(fd, data)
        except BlockingIOError:
            import select

            select.select([], [fd], [])
            continue
        except OSError:
            return False
        data = data[written:]
    return True


def _same_file(a: int, b: int) -> bool:
    try:
        sa, sb = posix.fstat(a), posix.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)


def _is_tty(fd: int) -> bool:
    try:
        return posix.isatty(fd)
    except OSError:
        return False


class _Stream:
    """One output pair of the legacy protocol: the local end we read (and, for stdout in the
    legacy relay, write stdin into). A PTY's slave (``remote``) stays open here for the whole
    run: the input the command leaves unread lives in it (:meth:`ClientSession.hand_back`)."""

    __slots__ = ("fd", "is_pty", "open", "remote", "sock", "target")

    def __init__(self, target: int, use_pty: bool, source: int | None, echo: bool,
                 raw: bool) -> None:
        self.target = target
        self.is_pty = use_pty
        self.open = True
        self.sock: _socket.socket | None = None
        if use_pty:
            from zeuspy.client import terminal  # only when a terminal is involved

            self.fd, remote = posix.openpty()
            # One pass of output processing: the PTY's, unless our output goes to a terminal
            # that stays as it is (not raw), which does it itself.
            terminal.copy_terminal(source, remote, echo, post=raw or not _is_tty(target))
        else:
            self.sock, remote_sock = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            self.fd = self.sock.fileno()
            remote = remote_sock.detach()
        self.remote: int = remote

    def close(self) -> None:
        self.open = False
        if self.sock is not None:
            self.sock.close()
        else:
            posix.close(self.fd)


class ClientSession:
    """One command's run: the state of the relay between the user's terminal and the command.

    Each standard stream keeps its kind: the command gets the PTY only on the streams that are
    a terminal here, and this process's own file, pipe or socket on the others (the ``stdio``
    extension; a legacy master or shim gets the legacy pairs, through which the client relays
    everything). Input is read only once the command runs, and only when it rides on the PTY;
    what the command leaves unread is handed back to the terminal for the shell."""

    def __init__(self, sock: _socket.socket, command: str, args: list[str], tty: bool | None):
        self.sock = sock
        self.command = command
        self.args = args
        stdin_tty, out_is_tty, err_is_tty = _is_tty(0), _is_tty(1), _is_tty(2)
        out_tty = out_is_tty if tty is None else tty
        err_tty = err_is_tty if tty is None else tty
        source = next((fd for fd in (0, 1, 2) if _is_tty(fd)), None)
        #: Whether the client will put the terminal in raw mode: typed input rides on the stdout
        #: PTY (a terminal in the foreground on stdin, and stdout a PTY).
        self.will_be_raw = False
        if stdin_tty and out_tty and tty is not False:
            from zeuspy.client import terminal  # a PTY is coming, which loads it anyway

            self.will_be_raw = terminal.is_foreground(0)
        # Input typed at a terminal is echoed by the remote PTY; input from a file or pipe is not.
        self.out = _Stream(1, out_tty, source, echo=stdin_tty, raw=self.will_be_raw)
        if out_tty == err_tty and _same_file(1, 2):
            self.err = self.out  # one destination: one stream keeps stdout and stderr in order
        else:
            self.err = _Stream(2, err_tty, source, echo=stdin_tty, raw=self.will_be_raw)
        #: The stream stdin rides on when the command gets the stdio fds; None: the command
        #: reads this process's stdin itself (a file, a pipe, or the terminal when no stream
        #: needed a PTY).
        self.input: _Stream | None
        if tty is False:
            # -T: the streams that are a terminal here go through the socket pairs, relayed.
            self.input = self.out if stdin_tty else None
            self.stdio = [self.out.remote if stdin_tty else 0,
                          self.out.remote if out_is_tty else 1,
                          self.err.remote if err_is_tty else 2]
        else:
            # A PTY only when stdout is a terminal (or -t): stdin rides on it when it is a
            # terminal too (-t: even from a pipe), stderr when it is the same terminal. When
            # stdout is not a terminal (`zeus run x | less`), the command gets the terminal
            # itself on the streams that are one: nothing is relayed, so its stderr and what
            # else writes there (the pager) keep python's order, and the terminal stays as the
            # shell left it.
            pty = self.out if self.out.is_pty else None
            self.input = pty if pty is not None and (stdin_tty or tty is True) else None
            shares = self.err is self.out or tty is True
            self.stdio = [self.input.remote if self.input is not None else 0,
                          self.out.remote if self.out.is_pty else 1,
                          self.err.remote if self.err.is_pty and shares else 2]
        self.raw: RawMode | None = None
        self.stdin_open = True
        self.stdin_is_tty = stdin_tty
        self.in_background = False
        self.to_command = b""
        self.last_input = b"\n"
        self.args_sock: _socket.socket | None = None
        self.args_data = b""
        self.pid = 0
        self.got_pid = False
        self.ctty = False
        #: The command has the stdio fds (flag ``s``), not the legacy pairs.
        self.direct = False
        self.status: int | None = None
        #: The signal the command died of (the client dies of it too), 0 if none.
        self.signal = 0
        self.master_open = True
        self.reader = wire.FrameReader()
        self.term_deadline: float | None = None
        self.term_status = 1
        self.queued: list[int] = []
        self.abort_deadline: float | None = None
        #: SIGTSTP came before the pid: stop the command, then ourselves, once it comes, or
        #: only ourselves at this time (PID_GRACE; a phase still booting, say); None: no stop due.
        self.stop_deadline: float | None = None
        #: The wakeup pipe's reading end, and signal numbers read from it not handled yet.
        self.wake_r = -1
        self.wakeups = bytearray()
        #: Looks at a master whose pid answer is late (set by :func:`run`; None: never).
        self.watch: _PidWatch | None = None

    # -- handshake (protocol steps 1-5) -----------------------------------------------------------
    def handshake(self) -> None:
        encoding = sys.getfilesystemencoding()
        args_local, args_remote = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        # The T: message; zeuspy.protocol.messages.CommandRequest documents it (a test checks both).
        request = f"T:{len(self.args)}:{posix.getpid()}:{self.command}"
        wire.send_message(self.sock, request)
        wire.send_fd(self.sock, args_remote.fileno())
        wire.send_fd(self.sock, self.out.remote)
        wire.send_fd(self.sock, self.err.remote, trailer=extension_offer())
        # After the offer, where a legacy master never reads: one message, three fds.
        wire.send_fds(self.sock, self.stdio, "")
        args_remote.close()
        # Socket pairs' remote ends go (else we never see EOF); a PTY's slave stays (_Stream).
        for stream in {id(self.out): self.out, id(self.err): self.err}.values():
            if not stream.is_pty:
                posix.close(stream.remote)
        self.args_data = b"".join(a.encode(encoding, "surrogateescape") + wire.NUL
                                  for a in self.args)
        args_local.setblocking(False)
        self.args_sock = args_local
        self._write_args()

    def _write_args(self) -> None:
        assert self.args_sock is not None
        try:
            while self.args_data:
                sent = self.args_sock.send(self.args_data)
                self.args_data = self.args_data[sent:]
        except BlockingIOError:
            return
        except OSError:
            self.args_data = b""
        self.args_sock.close()
        self.args_sock = None

    # -- signals ----------------------------------------------------------------------------------
    def _deliver(self, signum: int) -> None:
        """Send ``signum`` to the command: to its process group for terminal signals when it owns
        the terminal (as the kernel would), else to its pid."""
        if self.pid <= 0:
            return
        target = -self.pid if (self.ctty and signum in TERMINAL_SIGNALS) else self.pid
        try:
            posix.kill(target, signum)
        except OSError:
            try:
                posix.kill(self.pid, signum)
            except OSError:
                pass

    def _suspend(self) -> None:
        """Stop ourselves as a local job would, with SIGTSTP (a shell shows status 148; `fg`
        continues us with SIGCONT), once the PTY's answer to the stop (its ``^Z`` echo) is on
        the screen."""
        self._relay_pty_for(SUSPEND_ECHO)
        if self.raw is not None:
            self.raw.restore()
        _signal.signal(_signal.SIGTSTP, _signal.SIG_DFL)
        try:
            posix.kill(posix.getpid(), _signal.SIGTSTP)  # stops us before it returns
        finally:
            _signal.signal(_signal.SIGTSTP, _noop)
        if self.wake_r < 0:
            return
        # Continued, SIGCONT's number is in the wakeup pipe already (the loop handles it). If it
        # is not, the kernel discarded the stop, as it does in an orphaned process group: python
        # would have gone on running, so the command goes on too.
        try:
            self.wakeups += posix.read(self.wake_r, 64)
        except OSError:
            pass
        if _signal.SIGCONT not in self.wakeups:
            if self.raw is not None:
                self.raw.enter()
            self._deliver(_signal.SIGCONT)

    def _relay_pty_for(self, limit: float) -> None:
        """Copy what the PTY has to say right now: until it is quiet for SUSPEND_QUIET, at most
        ``limit`` seconds."""
        stream = self.out if self.out.is_pty else self.err if self.err.is_pty else None
        if stream is None or not stream.open:
            return
        import select

        deadline = time.monotonic() + limit
        wait = limit
        while wait > 0:
            ready, _, _ = select.select([stream.fd], [], [], wait)
            if not ready:
                return
            try:
                data = posix.read(stream.fd, 65536)
            except OSError:
                return
            if not data or not _write_all(stream.target, data):
                return
            wait = min(SUSPEND_QUIET, deadline - time.monotonic())

    def _resume(self) -> None:
        from zeuspy.client import terminal  # only when a terminal is involved

        if self.stdin_is_tty and terminal.is_foreground(0):
            if self.in_background:  # started with `&`, now brought to the foreground
                self.in_background = False
                self.stdin_open = True
                if self._reads_tty() and self.raw is None:
                    self.raw = terminal.RawMode(0)
            if self.raw is not None:
                self.raw.enter()
        self._resize()

    def _resize(self) -> None:
        if not (self.out.is_pty or self.err.is_pty):
            return  # no PTY to size (and no terminal module to load: about 0.8 ms)
        source = next((fd for fd in (0, 1, 2) if _is_tty(fd)), None)
        if source is None:
            return
        from zeuspy.client import terminal  # only when a terminal is involved

        size = terminal.get_winsize(source)
        for stream in {id(self.out): self.out, id(self.err): self.err}.values():
            if stream.is_pty and stream.open:
                terminal.set_winsize(stream.fd, size)

    def _before_pid(self, signum: int) -> int | None:
        """A signal for a command whose pid has not come yet: keep it for the pid (the command
        may be starting right now), or leave with it if there will be no command."""
        if self.got_pid:
            return 128 + signum  # the master refused the command: nothing to signal
        self.queued.append(signum)
        if self.abort_deadline is None:
            self.abort_deadline = time.monotonic() + PID_GRACE
        return None

    def on_signal(self, signum: int) -> int | None:
        """Handle one signal the client received; returns an exit status to leave with now."""
        if signum == _signal.SIGWINCH:
            self._resize()
            if not self.ctty:
                self._deliver(signum)
        elif signum == _signal.SIGCONT:
            self.stop_deadline = None  # continued before the stop was carried out
            self._resume()
            self._deliver(signum)
        elif signum == _signal.SIGTSTP:
            if not self.got_pid:
                # The command may run already (its output can come before its pid): stopping
                # only ourselves would leave it running.
                self.stop_deadline = time.monotonic() + PID_GRACE
                return None
            self._deliver(signum)
            self._suspend()
        elif self.pid <= 0:
            return self._before_pid(signum)
        else:
            self._deliver(signum)
            if signum in (_signal.SIGTERM, _signal.SIGHUP):
                self._leave_soon(128 + signum)
        return None

    def _leave_soon(self, status: int) -> None:
        """Leave with ``status`` after :data:`TERM_GRACE` unless the command's status comes."""
        if self.term_deadline is None:
            self.term_deadline = time.monotonic() + TERM_GRACE
            self.term_status = status

    # -- input ------------------------------------------------------------------------------------
    def _reads_tty(self) -> bool:
        """Whether typed input goes through us in raw mode: it rides on the PTY."""
        return self.stdin_is_tty and self.input is not None and self.input.is_pty

    @property
    def _input(self) -> _Stream | None:
        """Where stdin goes: the PTY it rides on, the legacy stdout pair, or nowhere (the command
        reads our stdin itself)."""
        return self.input if self.direct else self.out

    def _wants_stdin(self) -> bool:
        """Read stdin only once the command runs (a refused one leaves it all to the shell), and
        only when it goes through us."""
        target = self._input
        return (self.pid > 0 and self.stdin_open and target is not None and target.open
                and not self.to_command)

    def on_input(self, data: bytes) -> int | None:
        """Typed bytes go to the command; signal keys act as they would on a local terminal."""
        from zeuspy.client import terminal  # only when a terminal is involved

        target = self._input
        keys = None
        if target is not None and target.is_pty and self.stdin_is_tty:
            keys = terminal.signal_keys(target.fd)
        if keys:
            for index, byte in enumerate(data):
                signum = keys.get(byte)
                if signum is None:
                    continue
                self.to_command += data[: index + 1]
                self._flush_input()
                if not self.ctty:
                    self._deliver(signum)  # a legacy command has no controlling terminal
                _signal_job(signum)
                if signum == _signal.SIGTSTP and signum not in IGNORED:
                    self._suspend()
                return self.on_input(data[index + 1 :]) if index + 1 < len(data) else None
        self.to_command += data
        return None

    def _flush_input(self) -> None:
        target = self._input
        while self.to_command and target is not None and target.open:
            try:
                written = posix.write(target.fd, self.to_command)
            except BlockingIOError:
                return
            except OSError:
                self.to_command = b""
                return
            self.last_input = self.to_command[written - 1 : written] or self.last_input
            self.to_command = self.to_command[written:]

    def _stdin_eof(self) -> None:
        from zeuspy.client import terminal  # only when a terminal is involved

        self.stdin_open = False
        target = self._input
        if target is None:
            return
        if self.raw is not None and self.raw.active:
            return  # a raw terminal that reads EOF has hung up: SIGHUP follows
        if target.is_pty:
            key = terminal.eof_key(target.fd)
            # EOF only ends a read at the start of a line; a partial line needs it twice.
            self.to_command += key if self.last_input == b"\n" else key + key
        else:
            self._flush_input()
            self._stdin_eof_done()

    def _stdin_eof_done(self) -> None:
        target = self._input
        if target is not None and target.sock is not None:
            try:
                target.sock.shutdown(_socket.SHUT_WR)
            except OSError:
                pass

    def hand_back(self) -> None:
        """Give the terminal back the input the command did not read: what waits in the PTY and
        what we read but did not pass on, pushed into our terminal's input queue (``TIOCSTI``)
        for the shell to read, as it would have found it after a local command. Only while raw
        mode is on (the bytes are not echoed twice), and only where the OS allows it."""
        if self.raw is None or not self.raw.active or not self._reads_tty():
            return
        assert self.input is not None
        from zeuspy.client import terminal  # only when a terminal is involved

        left = terminal.unread_input(self.input.remote) + self.to_command
        self.to_command = b""
        if left:
            terminal.push_input(0, left)

    # -- the master's messages --------------------------------------------------------------------
    def on_master(self) -> None:
        try:
            data, fds = wire.receive(self.sock)
        except (OSError, wire.ProtocolError):
            data, fds = b"", []
        wire.close_fds(fds)
        self.reader.feed(data)
        for message in self.reader.messages():
            if message.startswith("N:"):
                _stderr(message[2:])  # a note from the master (it is stopping)
                continue
            number, _, flags = message.partition(":")
            try:
                value = int(number)
            except ValueError:
                continue
            if not self.got_pid:
                self.got_pid = True
                self.pid = value
                self.ctty = "t" in flags
                self.direct = "s" in flags
                self.abort_deadline = None
                if self.pid > 0:
                    self._resize()
                    for signum in self.queued:
                        self._deliver(signum)
                        if signum in (_signal.SIGTERM, _signal.SIGHUP):
                            self._leave_soon(128 + signum)
                self.queued.clear()
                if self.stop_deadline is not None:
                    self.stop_deadline = None
                    self._deliver(_signal.SIGTSTP)
                    self._suspend()
            else:
                self.status = value
                try:
                    self.signal = int(flags) if flags else 0
                except ValueError:
                    self.signal = 0
        if self.reader.eof:
            self.master_open = False
            if self.status is None and self.pid > 0:
                # The master died mid-command: end the command as a closed terminal would,
                # and leave once it is gone (or after a grace period).
                _stderr("zeus: lost the master before the command finished; its exit status is "
                        "unknown")
                self._deliver(_signal.SIGHUP)
                self._leave_soon(1)
            elif self.status is None and not self.got_pid:
                # Gone before it told us the pid (a command may already be running, even
                # printing): its runner ends it once it sees the master is gone.
                _stderr("zeus: lost the master before the command's pid arrived; its exit status "
                        "is unknown")
                self._leave_soon(1)

    # -- the relay loop ---------------------------------------------------------------------------
    def relay(self) -> int:
        wake_r, wake_w = posix.pipe()
        posix.set_blocking(wake_w, False)
        posix.set_blocking(wake_r, False)
        self.wake_r = wake_r
        _signal.set_wakeup_fd(wake_w)
        for signum in FORWARDED:
            if signum not in IGNORED:
                _signal.signal(signum, _noop)
        for stream in {id(self.out): self.out, id(self.err): self.err}.values():
            posix.set_blocking(stream.fd, False)
        foreground = False
        if self.stdin_is_tty:
            from zeuspy.client import terminal  # only when a terminal is involved

            foreground = terminal.is_foreground(0)
        if self.stdin_is_tty and not foreground:
            self.stdin_open = False  # a background job must not read the terminal
            self.in_background = True
        if self._reads_tty() and foreground:
            self.raw = terminal.RawMode(0)
            self.raw.enter()
        if self.out.is_pty or self.err.is_pty:
            self._resize()  # the pixel sizes too, which the hand-over left out
        try:
            status = self._loop(wake_r)
            if self.status is not None:
                self.hand_back()
            return status
        finally:
            if self.raw is not None:
                self.raw.restore()

    def _loop(self, wake_r: int) -> int:
        # Loaded once the request is on its way (about 0.5 ms: a C extension module), while the
        # master, the phase and the command work on it.
        import select

        streams = [self.out] if self.err is self.out else [self.out, self.err]
        while True:
            if self.status is not None:
                self._drain_ptys(streams)
                if not any(s.open for s in streams):
                    return self.status
            if not self.master_open and self.status is None and not any(s.open for s in streams):
                if self.pid <= 0:
                    _stderr("zeus: the master closed the connection before starting the command")
                return 1
            now = time.monotonic()
            if self.term_deadline is not None and now >= self.term_deadline:
                return self.status if self.status is not None else self.term_status
            if self.stop_deadline is not None and now >= self.stop_deadline:
                self.stop_deadline = None
                self._suspend()  # no command to stop yet: only ourselves, as before
                continue
            if self.abort_deadline is not None and now >= self.abort_deadline:
                return 128 + self.queued[0]
            watch = self.watch if not self.got_pid and self.master_open else None
            if watch is not None and now >= watch.deadline:
                line = watch.check(now)
                if line is not None:
                    _stderr(line)
                    return 1
            readable = [wake_r] + [s.fd for s in streams if s.open]
            if self.master_open:
                readable.append(self.sock.fileno())
            if self._wants_stdin():
                readable.append(0)
            target = self._input
            writable = []
            if self.to_command and target is not None and target.open:
                writable.append(target.fd)
            if self.args_sock is not None:
                writable.append(self.args_sock.fileno())
            timeout = None
            if self.status is not None:
                timeout = DRAIN_IDLE
            if self.wakeups:
                timeout = 0.0  # signals read while suspending, to handle now
            for deadline in (self.term_deadline, self.abort_deadline, self.stop_deadline,
                             watch.deadline if watch is not None else None):
                if deadline is not None:
                    left = max(0.0, deadline - now)
                    timeout = left if timeout is None else min(timeout, left)
            r, w, _ = select.select(readable, writable, [], timeout)
            if not r and not w and not self.wakeups:
                if self.status is not None:
                    return self.status  # drained what came; see DRAIN_IDLE
                continue
            if wake_r in r:
                try:
                    self.wakeups += posix.read(wake_r, 64)
                except BlockingIOError:
                    pass
            while self.wakeups:
                signum = self.wakeups.pop(0)
                leave = self.on_signal(signum)
                if leave is not None:
                    return leave
            if self.sock.fileno() in r:
                self.on_master()
            for stream in streams:
                if stream.open and stream.fd in r:
                    self._pump(stream)
            if 0 in r:
                try:
                    data = posix.read(0, 65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    self._stdin_eof()
                elif data:
                    leave = self.on_input(data)
                    if leave is not None:
                        return leave
            target = self._input
            if self.to_command and target is not None and (target.fd in w or 0 in r):
                self._flush_input()
                if not self.stdin_open and not self.to_command and not target.is_pty:
                    self._stdin_eof_done()
            if self.args_sock is not None and self.args_sock.fileno() in w:
                self._write_args()

    def _drain_ptys(self, streams: list[_Stream]) -> None:
        """Once the status is in, copy what the PTYs still hold and close them: the command
        wrote everything before its status, and a read that finds nothing has seen it all."""
        for stream in streams:
            while stream.open and stream.is_pty:
                try:
                    data = posix.read(stream.fd, 65536)
                except BlockingIOError:
                    stream.open = False
                    break
                except OSError:
                    data = b""
                if not data or not _write_all(stream.target, data):
                    stream.open = False

    def _pump(self, stream: _Stream) -> None:
        try:
            data = posix.read(stream.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the PTY's other side is closed
        if not data:
            stream.open = False
            return
        if not _write_all(stream.target, data):
            # Our reader left (`zeus cmd | head`): stop reading so the command sees EPIPE too.
            stream.close()


def _signal_job(signum: int) -> None:
    """Do for our own process group what the terminal would have done with the key that raw mode
    kept from it: signal the job's other processes (the rest of a pipeline, a shell script
    waiting for us without job control, which then stops its loop as it would for python), but
    not ourselves (ignored while it is sent, and so discarded)."""
    try:
        previous = _signal.signal(signum, _signal.SIG_IGN)
    except (OSError, ValueError):
        return
    try:
        posix.killpg(posix.getpgrp(), signum)
    except OSError:
        pass
    finally:
        _signal.signal(signum, previous)


def extension_offer() -> bytes:
    """``X:zeuspy=1;stdio=1;world=<hex>``: the offer, with this process's working directory,
    environment, inherited ignored signals and umask (``zeuspy.protocol.messages.encode_world``
    documents the encoding; a unit test checks both agree). Without the world when it is too
    large: the shim then asks the OS."""
    try:
        entries = [posix.getcwdb(), *(k + b"=" + v for k, v in posix.environ.items())]
    except OSError:  # the working directory was removed
        return EXTENSION_OFFER
    if IGNORED:
        entries.append(b"=ignored:" + b",".join(b"%d" % n for n in sorted(IGNORED)))
    mask = posix.umask(0)  # read by setting it: put back at once (one thread)
    posix.umask(mask)
    entries.append(b"=umask:%o" % mask)
    world = b"\0".join(entries).hex()
    if len(world) > MAX_WORLD:
        return EXTENSION_OFFER
    return EXTENSION_OFFER[:-1] + b";world=" + world.encode() + wire.NUL


def _noop(signum: int, frame: object) -> None:
    """Handlers only make the interpreter write the signal number to the wakeup fd."""


def _autostart_wanted(root: bytes) -> bool:
    """``ZEUS_AUTOSTART=1``, or ``autostart = true`` in the project's zeus.json, else in its
    ``[tool.zeus]``."""
    flag = posix.environ.get(b"ZEUS_AUTOSTART")
    if flag is not None:
        return flag not in (b"", b"0")
    # Only when no master answered: the config module's bounded reader (a FIFO, a huge or
    # deeply nested file is no autostart, never a hang or a traceback).
    import os
    from pathlib import Path

    from zeuspy.config import wants_autostart

    return wants_autostart(Path(os.fsdecode(root)))


def _autostart(root: bytes) -> bool:
    """Start a detached master for ``root`` (it returns once listening); False if it failed."""
    import subprocess

    _stderr("zeus: no master was running here; starting one in the background "
            "(log: .zeus/master.log)")
    done = subprocess.run([sys.executable, "-m", "zeuspy", "start", "--detach"], cwd=root,
                          stdout=subprocess.DEVNULL, check=False)
    return done.returncode == 0


def run(command: str, args: list[str], tty: bool | None, root: bytes | None = None) -> int:
    """``zeus <command> [args]``: the command's exit status (or 1 with a message on stderr).
    ``root``: the project folder (default: found from the current folder upwards).

    Nothing is sent before the socket's folder (when it is the runtime folder) and the process
    listening on it (its uid) are checked to be the user's own. Each wait before the command's
    pid is bounded: a master that is stopped, gone or not answering is named (client/watch.py)."""
    root = root or paths.project_root()
    path = paths.socket_path(root)
    problem = paths.socket_folder_problem(path)
    if problem is not None:
        _stderr("zeus: " + problem)
        return 1
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    # Bounded connect and handshake: a master that does not take them (stopped, its backlog or
    # buffers full) is named instead of hanging the client.
    _send_timeout(sock, CONNECT_WAIT)
    failure = _connect(sock, path, root)
    if failure is not None:
        sock.close()
        _stderr(failure)
        return 1
    master, problem = paths.peer_problem(sock, path)
    if problem is not None:
        sock.close()
        _stderr("zeus: " + problem)
        return 1
    session = ClientSession(sock, command, args, tty)
    _send_timeout(sock, HANDSHAKE_TIMEOUT)
    try:
        session.handshake()
    except OSError as exc:
        sock.close()
        if not isinstance(exc, BlockingIOError):  # EAGAIN: the send timeout ran out
            _stderr(f"zeus: the master closed the connection during the handshake "
                    f"({exc.strerror})")
            return 1
        from zeuspy.client import watch

        what = "did not take the request"
        _stderr(watch.verdict(root, master, what, HANDSHAKE_TIMEOUT, final=True)
                or f"zeus: the master {what} within {HANDSHAKE_TIMEOUT:.0f} s")
        return 1
    session.watch = _PidWatch(root, path, master)
    try:
        status = session.relay()
    finally:
        session.watch.close()
    if session.signal:
        _die(session.signal)
    return status


def _send_timeout(sock: _socket.socket, seconds: float) -> None:
    """Bound the blocking connect and sends of ``sock`` by a kernel timeout (``SO_SNDTIMEO``:
    they fail with EAGAIN once it runs out). Unlike ``settimeout``, which makes the socket
    non-blocking and polls before every call, it costs nothing until then (measured: about
    0.15 ms of every command's connect and handshake)."""
    whole = int(seconds)
    micro = int((seconds - whole) * 1_000_000)
    # struct timeval: a 64-bit tv_sec, then tv_usec (64 bits on Linux; 32 and padding on macOS).
    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO,
                    whole.to_bytes(8, sys.byteorder) + micro.to_bytes(8, sys.byteorder))


def _connect(sock: _socket.socket, path: bytes, root: bytes) -> str | None:
    """Connect ``sock`` (its connect bounded by ``CONNECT_WAIT``: :func:`_send_timeout`) to the
    master at ``path``, starting one first if autostart is on; None once connected, else the
    line to leave with. A full backlog is waited out as long as the master runs and for at most
    ``watch.UNANSWERED``."""
    autostarted = False
    since = time.monotonic()
    while True:
        try:
            sock.connect(path)
            return None
        except (FileNotFoundError, ConnectionRefusedError):
            if autostarted or not (_autostart_wanted(root) and _autostart(root)):
                return NO_MASTER
            autostarted = True
        except BlockingIOError:
            # No room in its listen backlog: a burst of clients, or a master that stopped
            # accepting (stopped, wedged). Only this slow path looks at the master.
            now = time.monotonic()
            if now - since >= CONNECT_WAIT:
                from zeuspy.client import watch

                line = watch.verdict(root, -1, "did not accept the connection", now - since)
                if line is not None:
                    return line
            time.sleep(CONNECT_RETRY)
        except OSError as exc:
            return (f"zeus: cannot connect to the master at {path.decode(errors='replace')}: "
                    f"{exc.strerror}. Is `zeus start` running as you?")


class _PidWatch:
    """When to look at a master that has not sent the command's pid yet (:attr:`deadline`); the
    looking itself (zeuspy.client.watch) is loaded only then, so the usual command, whose pid
    comes in milliseconds, pays one comparison per loop turn."""

    __slots__ = ("deadline", "master", "path", "root", "since", "watch")

    def __init__(self, root: bytes, path: bytes, master: int) -> None:
        self.root, self.path, self.master = root, path, master
        self.since = time.monotonic()
        self.deadline = self.since + PID_WAIT
        self.watch: watch_module.PidWatch | None = None

    def check(self, now: float) -> str | None:
        """At :attr:`deadline`: the line to leave with, or None (and a later deadline)."""
        if self.watch is None:
            from zeuspy.client import watch

            self.watch = watch.PidWatch(self.root, self.path, self.master, self.since)
        line = self.watch.check(now)
        self.deadline = self.watch.deadline
        return line

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()


def _die(signum: int) -> None:
    """Die of ``signum``, as the command did, so that the shell sees what it would have seen
    (WIFSIGNALED: a loop running the command stops on ^C). Without a core of our own: the
    command's crash is not the client's (the shell then shows "Quit", not "Quit (core
    dumped)"). Returns when the signal does not kill (its default is to ignore it)."""
    if signum in CORE_SIGNALS:
        _no_core_dump()
    try:
        if signum != _signal.SIGKILL:  # whose handler cannot be set, nor its default changed
            _signal.signal(signum, _signal.SIG_DFL)
            _signal.pthread_sigmask(_signal.SIG_UNBLOCK, (signum,))
        posix.kill(posix.getpid(), signum)
    except (OSError, ValueError):
        pass


def _no_core_dump() -> None:
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    except (ImportError, OSError, ValueError):
        pass
