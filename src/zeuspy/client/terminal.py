"""Terminal handling for the client: raw mode, window size, the remote PTY's settings."""

import _signal
import posix
import termios

_WINSIZE_BYTES = 8
OFLAG, LFLAG, CC = 1, 3, 6  # indexes in a termios attribute list


def raw_attributes(attrs: list) -> list:  # type: ignore[type-arg]
    """``attrs`` made raw, as cfmakeraw(3) does: bytes pass through untouched and unechoed."""
    new = list(attrs)
    new[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON
                | termios.INLCR | termios.IGNCR | termios.IGNBRK | termios.PARMRK)
    new[1] &= ~termios.OPOST
    new[2] = (new[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cc = list(new[6])
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    new[6] = cc
    return new


class RawMode:
    """The local terminal in raw mode; :meth:`restore` puts back exactly what was there."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved = termios.tcgetattr(fd)
        self.active = False

    def enter(self) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, raw_attributes(self.saved))
        self.active = True

    def restore(self) -> None:
        if self.active:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass
            self.active = False


def get_winsize(fd: int) -> bytes | None:
    """The whole window size (rows, columns and pixels). ``fcntl`` is imported on first use:
    loading it costs about 0.7 ms, so the client does it once the command is on its way."""
    import fcntl

    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE_BYTES)
    except OSError:
        return None


def set_winsize(fd: int, size: bytes | None) -> None:
    import fcntl

    if size is not None:
        try:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
        except OSError:
            pass


def copy_rows_and_columns(source: int, target: int) -> None:
    """The window's rows and columns, with ``termios`` alone where it can (Python 3.11+); the
    pixel sizes follow with the whole size (:func:`get_winsize`) right after the hand-over."""
    get, put = getattr(termios, "tcgetwinsize", None), getattr(termios, "tcsetwinsize", None)
    if get is not None and put is not None:
        try:
            put(target, get(source))
        except termios.error:
            pass
        return
    set_winsize(target, get_winsize(source))  # pragma: no cover - Python 3.10


def copy_terminal(source: int | None, pty_slave: int, echo: bool, post: bool = True) -> None:
    """Give a new PTY the settings and window size of the user's terminal, so the command sees
    the same line discipline it would see locally. ``echo`` off when input is not typed.
    ``post`` off when the PTY's output goes to a terminal the client leaves as it is (not raw):
    that terminal turns ``\n`` into ``\r\n`` itself, and a second pass would make ``\r\r\n``."""
    attrs = None
    if source is not None:
        try:
            attrs = termios.tcgetattr(source)
        except termios.error:
            attrs = None
        copy_rows_and_columns(source, pty_slave)
    if attrs is None and (not echo or not post):
        attrs = termios.tcgetattr(pty_slave)
    if attrs is not None:
        if not echo:
            attrs[LFLAG] &= ~termios.ECHO
        if not post:
            attrs[OFLAG] &= ~termios.OPOST
        termios.tcsetattr(pty_slave, termios.TCSANOW, attrs)


def signal_keys(pty_master: int) -> dict[int, int] | None:
    """Byte value -> signal for the remote PTY's INTR, QUIT and SUSP keys, or None when its
    line discipline does not turn keys into signals (ISIG off: a raw-mode program wants bytes)."""
    try:
        attrs = termios.tcgetattr(pty_master)
    except termios.error:
        return None
    if not attrs[LFLAG] & termios.ISIG:
        return None
    keys = {}
    for index, signum in (
        (termios.VINTR, _signal.SIGINT),
        (termios.VQUIT, _signal.SIGQUIT),
        (termios.VSUSP, _signal.SIGTSTP),
    ):
        key = attrs[CC][index]
        value = key[0] if isinstance(key, bytes) and key else None
        if value:  # 0 means the key is disabled
            keys[value] = signum
    return keys


def eof_key(pty: int) -> bytes:
    try:
        key = termios.tcgetattr(pty)[CC][termios.VEOF]
    except termios.error:
        return b"\x04"
    return key if isinstance(key, bytes) and key != b"\0" else b"\x04"


def is_foreground(fd: int) -> bool:
    """Whether this process group owns the terminal on ``fd`` (else touching it stops us)."""
    try:
        return posix.tcgetpgrp(fd) == posix.getpgrp()
    except OSError:
        return False


def unread_input(pty_slave: int) -> bytes:
    """What waits in a PTY's input queue, read from its slave: complete lines and the partial
    one alike (canonical mode is turned off to reach the partial line; the PTY's command is
    done with it)."""
    try:
        attrs = termios.tcgetattr(pty_slave)
        attrs[LFLAG] &= ~termios.ICANON
        cc = list(attrs[CC])
        cc[termios.VMIN] = 0
        cc[termios.VTIME] = 0
        attrs[CC] = cc
        termios.tcsetattr(pty_slave, termios.TCSANOW, attrs)
    except termios.error:
        return b""
    chunks = []
    blocking = posix.get_blocking(pty_slave)
    posix.set_blocking(pty_slave, False)
    try:
        while True:
            chunk = posix.read(pty_slave, 4096)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        posix.set_blocking(pty_slave, blocking)
    return b"".join(chunks)


def push_input(fd: int, data: bytes) -> bool:
    """Put ``data`` into the input queue of the terminal on ``fd`` (our controlling terminal),
    as if typed (``TIOCSTI``). False when the OS refuses it (Linux 6.2+ with
    ``dev.tty.legacy_tiocsti=0`` for non-root users): the bytes are then lost, as they were
    before zeuspy handed anything back."""
    import fcntl

    for value in data:
        try:
            fcntl.ioctl(fd, termios.TIOCSTI, bytes((value,)))
        except OSError:
            return False
    return True
