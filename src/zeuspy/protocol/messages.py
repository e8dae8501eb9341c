"""The messages of the Zeus wire protocol: one type per message, with its spec in the docstring.

Parsing is strict where the master reads untrusted peers (clients) and tolerant where the legacy
protocol is loose (datagrams without a trailing NUL are framed by :mod:`zeuspy.protocol.wire`).
Every ``format()`` returns the text of the message without its NUL; :func:`wire.encode` frames it.
The client does not import this module (``dataclasses`` costs milliseconds); it writes its one
``T:`` message by hand, and a unit test checks both agree.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from zeuspy.protocol.wire import ProtocolError

#: Capabilities a zeuspy shim announces with :class:`Extension` when the master offered them.
SHIM_CAPABILITIES = ("ctty", "handover", "world", "stdio", "signals")
#: Environment variable by which the master offers extensions to the shims it starts.
OFFER_ENV = "ZEUSPY_EXTENSIONS"
#: Version of the extensions this code speaks; see docs/protocol.md.
EXTENSION_VERSION = "1"


#: Longest number accepted (pids, counts and statuses are far shorter).
MAX_DIGITS = 18


def _int(text: str, what: str) -> int:
    digits = text[1:] if text.startswith("-") else text
    # isascii: str.isdigit() also accepts "²" and other digits int() refuses or misreads.
    if not digits or len(digits) > MAX_DIGITS or not (digits.isascii() and digits.isdigit()):
        raise ProtocolError(f"{what} is not a number: {text[:40]!r}")
    return int(text)


@dataclass(frozen=True)
class Registration:
    """``P:<pid>:<parent pid>:<identifier>``: a phase (or, with an empty identifier, a command)
    announces itself. The root phase sends parent pid 0 and identifier ``boot``.

    zeuspy commands may append ``:<flags>`` when the master offered extensions; ``t`` means the
    command took the client's terminal as its controlling terminal.
    """

    pid: int
    parent_pid: int
    identifier: str
    flags: str = ""

    def format(self) -> str:
        tail = f":{self.flags}" if self.flags else ""
        return f"P:{self.pid}:{self.parent_pid}:{self.identifier}{tail}"


@dataclass(frozen=True)
class BootResult:
    """``R:OK`` when a phase's action succeeded, else ``R:<error text>`` (a traceback as it would
    print on stderr), after which the phase exits."""

    error: str | None = None

    def format(self) -> str:
        return "R:OK" if self.error is None else f"R:{self.error}"


@dataclass(frozen=True)
class ForkPhase:
    """``S:<identifier>``, master to phase: fork a child phase with that identifier."""

    identifier: str

    def format(self) -> str:
        return f"S:{self.identifier}"


@dataclass(frozen=True)
class ForkCommand:
    """``C:<command>``, master to phase: fork a command runner; the phase answers with one fd
    message carrying the runner's datagram socket."""

    command: str

    def format(self) -> str:
        return f"C:{self.command}"


@dataclass(frozen=True)
class CommandRequest:
    """``T:<argc>:<client pid>:<command>``, client to master: run ``command`` (a name or an alias)
    with ``argc`` arguments; three fd messages follow (args socket, stdout, stderr)."""

    argc: int
    client_pid: int
    command: str

    def format(self) -> str:
        return f"T:{self.argc}:{self.client_pid}:{self.command}"


@dataclass(frozen=True)
class RunnerHeader:
    """``<client pid>:<argc>``, master to runner (first datagram). To a shim that accepted the
    extensions the master may append ``:<flags>``: ``t`` asks the runner to make the client's
    terminal the command's controlling terminal; ``v``, the client pid is the kernel's word;
    ``s`` (``stdio``), *four* fds follow instead of three: the args socket, then the command's
    own stdin, stdout and stderr (:data:`STDIO_FLAG`); ``k`` (``signals``), the master reads
    an :class:`ExitStatus` with its signal. To a shim that accepted ``world``, when the client
    sent its world, ``:<flags>:<world>`` (:func:`encode_world`)."""

    client_pid: int
    argc: int
    flags: str = ""
    world: str = ""

    def format(self) -> str:
        if self.world:
            return f"{self.client_pid}:{self.argc}:{self.flags}:{self.world}"
        tail = f":{self.flags}" if self.flags else ""
        return f"{self.client_pid}:{self.argc}{tail}"

    @property
    def fd_count(self) -> int:
        """How many fd messages follow this header: the args socket and the command's stdio
        (three with the ``stdio`` flag), else the args socket and the two legacy pairs."""
        return 4 if STDIO_FLAG in self.flags else 3


#: Runner header flag: the fds are the args socket and the command's stdin, stdout, stderr.
STDIO_FLAG = "s"
#: Runner header flag: the master reads ``<status>:<signal>`` (:class:`ExitStatus`).
SIGNALS_FLAG = "k"


@dataclass(frozen=True)
class ExitStatus:
    """``<exit status>``: a command's status, runner to master and master to client. A command
    killed by signal N has status 128+N. With the ``signals`` extension (runner header flag
    ``k``; a client that offered extensions) the signal follows, ``<128+N>:<N>``, so that the
    client can die of it as the shell expects (an uncaught ``KeyboardInterrupt`` counts as
    SIGINT, as ``python`` dies of it); ``sys.exit(130)`` stays ``130``."""

    status: int
    signal: int = 0

    def format(self, with_signal: bool = True) -> str:
        if self.signal and with_signal:
            return f"{self.status}:{self.signal}"
        return str(self.status)


def parse_exit_status(text: str) -> ExitStatus:
    number, _, signal = text.partition(":")
    status = _int(number, "exit status") & 0xFF
    if not signal:
        return ExitStatus(status)
    signum = _int(signal, "signal")
    return ExitStatus(status, signum if 0 < signum < 128 else 0)


@dataclass(frozen=True)
class CommandStarted:
    """``<command pid>[:<flags>]``, master to client: the command runs (pid 0: it does not).
    Flags, to a client that offered extensions: ``t``, the command took the client's PTY as its
    controlling terminal (the client leaves ^C, ^\\ and ^Z to the PTY); ``s``, the command
    has the stdio fds the client sent after its offer, not the legacy pairs (the client relays
    only its PTY, and reads stdin only when it rides on that PTY)."""

    pid: int
    flags: str = ""

    def format(self) -> str:
        return f"{self.pid}:{self.flags}" if self.flags else str(self.pid)


@dataclass(frozen=True)
class Note:
    """``N:<text>``, master to a client that offered extensions: one line the client prints on
    its stderr (e.g. that the master is stopping while the command runs)."""

    text: str

    def format(self) -> str:
        return f"N:{self.text}"


@dataclass(frozen=True)
class Handover:
    """``H:<client pid>:<argc>:<flags>``, master to a zeuspy phase that accepted the
    ``handover`` extension, right after ``C:`` and followed by three fd messages (args socket,
    stdout, stderr): what the master would otherwise send on the runner socket once the phase
    answered, so the command starts without waiting for that round trip."""

    header: RunnerHeader

    def format(self) -> str:
        h = self.header
        tail = f":{h.world}" if h.world else ""
        return f"H:{h.client_pid}:{h.argc}:{h.flags}{tail}"


def parse_handover(text: str) -> Handover:
    if not text.startswith("H:"):
        raise ProtocolError(f"expected an H: hand-over, got {text[:40]!r}")
    return Handover(parse_runner_header(text[2:]))


@dataclass(frozen=True)
class SpareWork:
    """``W:<command>:<runner header>``, a zeuspy phase to its spare command (never on the
    master's sockets), in one ``sendmsg`` with the hand-over's fds and then the runner socket
    (:attr:`RunnerHeader.fd_count` + 1 fds): the request the spare runs."""

    command: str
    header: RunnerHeader

    def format(self) -> str:
        return f"W:{self.command}:{self.header.format()}"


def parse_spare_work(text: str) -> SpareWork:
    if not text.startswith("W:"):
        raise ProtocolError(f"expected a W: request, got {text[:40]!r}")
    command, colon, header = text[2:].partition(":")
    if not colon or not command:
        raise ProtocolError(f"malformed W: request {text[:40]!r}")
    return SpareWork(command, parse_runner_header(header))


@dataclass(frozen=True)
class Extension:
    """``X:<key>=<value>;...``, a zeuspy-only message: the features a peer accepts or asks for.

    Sent only to or by a peer that was offered extensions first (docs/protocol.md): a shim after
    its registration when ``ZEUSPY_EXTENSIONS`` was in its environment, a client inside the payload
    of its last fd message, where a legacy master never reads. Values contain no ``;`` or NUL.
    A client's ``stdio=1`` says one more message follows the offer, empty and carrying three
    fds in one ``sendmsg``: the stdin, stdout and stderr the command should have (its PTY for
    the streams that are a terminal, the client's own file, pipe or socket for the others).
    """

    fields: dict[str, str] = field(default_factory=dict)

    def format(self) -> str:
        return "X:" + ";".join(f"{k}={v}" for k, v in self.fields.items())


PhaseMessage = Registration | BootResult | Extension


def parse_registration(text: str) -> Registration:
    if not text.startswith("P:"):
        raise ProtocolError(f"expected a P: registration, got {text[:40]!r}")
    parts = text[2:].split(":", 3)
    if len(parts) < 3:
        raise ProtocolError(f"malformed registration {text[:80]!r}")
    pid = _int(parts[0], "pid")
    parent = _int(parts[1], "parent pid")
    if pid <= 0 or parent < 0:
        raise ProtocolError(f"impossible pids in {text[:80]!r}")
    return Registration(pid, parent, parts[2], parts[3] if len(parts) > 3 else "")


def parse_extension(text: str) -> Extension:
    fields: dict[str, str] = {}
    for item in text[2:].split(";"):
        if item:
            key, _, value = item.partition("=")
            fields[key] = value
    return Extension(fields)


def parse_phase_message(text: str) -> PhaseMessage:
    """A message a phase sends on its stream socket after registering."""
    if text.startswith("R:"):
        body = text[2:]
        return BootResult(None if body == "OK" else body)
    if text.startswith("X:"):
        return parse_extension(text)
    if text.startswith("P:"):
        return parse_registration(text)
    raise ProtocolError(f"unexpected message from a phase: {text[:40]!r}")


def parse_command_request(text: str) -> CommandRequest:
    if not text.startswith("T:"):
        raise ProtocolError(f"expected a T: command request, got {text[:40]!r}")
    parts = text[2:].split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise ProtocolError(f"malformed command request {text[:80]!r}")
    argc = _int(parts[0], "argc")
    pid = _int(parts[1], "client pid")
    if argc < 0 or argc > 1_000_000 or pid <= 0:
        raise ProtocolError(f"impossible values in {text[:80]!r}")
    return CommandRequest(argc, pid, parts[2])


def parse_runner_header(text: str) -> RunnerHeader:
    parts = text.split(":", 3)
    if len(parts) < 2:
        raise ProtocolError(f"malformed runner header {text[:80]!r}")
    return RunnerHeader(
        _int(parts[0], "client pid"), _int(parts[1], "argc"), parts[2] if len(parts) > 2 else "",
        parts[3] if len(parts) > 3 else "",
    )


#: Longest world (hex) a client sends: it rides in one socket write that a legacy master never
#: reads, so it must fit the socket buffer, and in a runner header, one datagram that a runner
#: reads whole (wire.READ_SIZE). A larger environment is left to the OS fallback.
MAX_WORLD = 60000


#: Signals a command takes as ignored when its client was started with them ignored (``trap ''
#: HUP``, ``nohup``, a background job of a shell without job control: SIGINT and SIGQUIT), as a
#: program the shell starts keeps them ignored across exec. Not SIGPIPE and SIGXFSZ: Python
#: ignores those itself, so a Python client cannot tell whether it inherited them. The client
#: keeps its own copy (zeuspy.client.run.IGNORABLE; a unit test keeps both equal).
IGNORABLE = frozenset({
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
    signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
})
#: The world entry listing the signals the client inherited ignored. Its key is empty, which no
#: environment variable's can be, so a shim that does not know it drops it as malformed.
IGNORED_ENTRY = b"=ignored:"
#: The world entry of the client's file mode creation mask (octal).
UMASK_ENTRY = b"=umask:"


class World(NamedTuple):
    """What a command takes from its client's process: its working directory, its environment,
    and the signals (of :data:`IGNORABLE`) it was started with ignored."""

    cwd: bytes
    environ: dict[bytes, bytes]
    ignored: frozenset[int] = frozenset()
    #: Its umask (None: not sent, as by older clients).
    umask: int | None = None


def encode_world(cwd: bytes, environ: dict[bytes, bytes], ignored: Iterable[int] = (),
                 umask: int | None = None) -> str:
    """The client's world as it travels: hex of ``cwd NUL KEY=VALUE NUL ...``, then, when the
    client inherited signals ignored, ``NUL =ignored:N,N`` (their numbers), then ``NUL
    =umask:OOO`` (its umask, octal) (hex: no NUL, no ``:`` or ``;``, so it fits any message).
    The client builds the same bytes by hand."""
    entries = [cwd, *(key + b"=" + value for key, value in environ.items())]
    numbers = sorted(set(ignored))
    if numbers:
        entries.append(IGNORED_ENTRY + b",".join(b"%d" % number for number in numbers))
    if umask is not None:
        entries.append(UMASK_ENTRY + b"%o" % umask)
    return b"\0".join(entries).hex()


def decode_world(text: str) -> World:
    """The :class:`World` of :func:`encode_world`; :class:`ProtocolError` when malformed. Signal
    numbers outside :data:`IGNORABLE` are dropped (a newer client may carry more)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ProtocolError("the client's world is not hex") from None
    cwd, *entries = raw.split(b"\0")
    if not cwd.startswith(b"/"):
        raise ProtocolError("the client's working directory is not absolute")
    environ: dict[bytes, bytes] = {}
    ignored: frozenset[int] = frozenset()
    umask: int | None = None
    for entry in entries:
        key, sep, value = entry.partition(b"=")
        if sep and key:
            environ[key] = value
        elif entry.startswith(IGNORED_ENTRY):
            ignored = _signal_numbers(entry[len(IGNORED_ENTRY):].decode("ascii", "replace"))
        elif entry.startswith(UMASK_ENTRY):
            umask = _umask(entry[len(UMASK_ENTRY):])
    return World(cwd, environ, ignored, umask)


def _umask(text: bytes) -> int:
    """A umask in octal, 0 to 777; :class:`ProtocolError` otherwise."""
    if not 1 <= len(text) <= 3 or text.strip(b"01234567"):
        raise ProtocolError(f"the client's umask is not 1-3 octal digits: {text[:8]!r}")
    return int(text, 8)


def _signal_numbers(text: str) -> frozenset[int]:
    if not text:
        return frozenset()
    numbers = [_int(part, "an ignored signal") for part in text.split(",")]
    return frozenset(number for number in numbers if number in IGNORABLE)


def parse_int(text: str, what: str) -> int:
    """A message that is a decimal number: a command pid or an exit status."""
    return _int(text, what)
