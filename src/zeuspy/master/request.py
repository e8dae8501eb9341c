"""Request: one client's command, from its handshake to its exit status (protocol "Client <->
master <-> command"): the ``T:`` request, its fds and offer, the wait for a ready (and never stale)
phase, the runner and its header, the command's pid and status, and every refusal on the way.
The server (master/server.py) accepts the connection and hands it over."""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zeuspy.master import fallback
from zeuspy.master.channel import Channel, ChannelClosed
from zeuspy.master.kills import COMMAND_KILL_GRACE
from zeuspy.master.phases import RunnerUnavailable
from zeuspy.master.tree import Phase, PhaseProcess, PhaseState
from zeuspy.procs import signal_group_or_pid
from zeuspy.protocol import wire
from zeuspy.protocol.messages import (
    EXTENSION_VERSION,
    MAX_WORLD,
    SIGNALS_FLAG,
    STDIO_FLAG,
    CommandRequest,
    CommandStarted,
    ExitStatus,
    Handover,
    Note,
    RunnerHeader,
    parse_command_request,
    parse_exit_status,
    parse_extension,
    parse_registration,
)

if TYPE_CHECKING:
    from zeuspy.master.server import ClientServer

log = logging.getLogger(__name__)

#: A client must finish its handshake (T: and three fds) within this.
HANDSHAKE_TIMEOUT = 5.0
#: A runner must report its command's pid within this after receiving the fds.
COMMAND_START_TIMEOUT = 10.0
#: Clients waiting for a booting phase are told so after this ...
BOOT_NOTE_DELAY = 1.0
#: ... then, every this many seconds, that it is still booting and for how long (a boot that
#: takes this long is stuck more often than slow: the user should look at its output) ...
BOOT_NOTE_INTERVAL = 5.0
#: ... in this many lines at most, the first one included (about a minute of notes).
BOOT_NOTE_LINES = 12
#: Where a phase's output goes (master/app.py), named in the still-booting note.
PHASE_OUTPUT = ".zeus/master.log"
#: Error text written to a client's stderr must drain within this.
ERROR_WRITE_TIMEOUT = 2.0
#: How often the master checks that a running command still exists, and how long after it is
#: gone it still waits for its status.
COMMAND_CHECK_INTERVAL = 2.0
STATUS_GRACE = 1.0
#: Exit status for an unknown command (as shells use for "command not found").
EXIT_UNKNOWN_COMMAND = 127
#: A client that did not offer extensions (the original Go client) exits as soon as it reads
#: the status, without draining its streams: before sending it, wait this long at most for the
#: client to have read what the command wrote on its socket pairs, checking every
#: LEGACY_DRAIN_POLL (measured: without it 10-16 % of piped runs lost their last output).
LEGACY_DRAIN_TIMEOUT = 1.0
LEGACY_DRAIN_POLL = 0.002
#: Once the pairs are drained, the client may have read the last chunk without having written it
#: yet (a thread per stream, in the Go client): this much more for that write (measured: 1 of
#: 300 lines still lost without it).
LEGACY_WRITE_GRACE = 0.005
#: How many times a request is placed with a phase process when nothing ran: the phase ended
#: (restarted for a reload, crashed) between taking the request and its command's start, or
#: the spare that took it was killed. A command registers before it runs anything of its own,
#: so placing the request again never runs it twice. After a death the master did not cause,
#: the request is placed once more only.
MAX_PLACEMENTS = 3
#: Whether shutting a runner socket for reading makes the runner's later send fail at once
#: (Linux: ``EPIPE``), so that a late registration can never go unread after the last look.
#: Elsewhere a request whose phase ended unregistered is not placed again.
REFUSAL_IS_FINAL = sys.platform.startswith("linux")
#: What a client reads when the process meant to run its command died (or never answered) before
#: the command started: a spare killed a moment ago, a runner that failed.
_NOT_STARTED = ("zeus: the process that was to run the command ended before the command started "
                "(see .zeus/master.log); nothing ran: run it again")


def _ready(phase: Phase) -> bool:
    """A function, not an inline test, so the checker does not assume it stays true across an
    await."""
    return phase.state is PhaseState.READY and phase.process is not None


@dataclass(eq=False)
class Request:
    """One client's command, carried from the handshake to its exit status: the client's
    channel and fds, what it offered (world, stdio), the runner header, the command's pid and
    status. :meth:`run` serves it; the server only accepts, checks the peer and answers ``Q:``."""

    #: The server it came through: the tree, the supervisor, the monitor, whether it closes.
    server: ClientServer
    channel: Channel
    #: The fds that go to the runner: first the client's legacy three (args socket, stdout
    #: pair, stderr pair); :meth:`_header` swaps in the stdio fds when they are used.
    fds: list[int] = field(default_factory=list)
    #: The client's three ``stdio`` fds (stdin, stdout, stderr as the command should have them),
    #: when it offered them.
    stdio: list[int] = field(default_factory=list)
    #: Every fd received from the client, to close once the runner has them.
    received: list[int] = field(default_factory=list)
    #: Whether the client offered extensions (its pid and status answers may carry flags).
    extended: bool = False
    #: Whether the command got the stdio fds (the client is told with flag ``s``).
    uses_stdio: bool = False
    command_pid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: The client's cwd and environment (``world`` extension, hex), passed on to the command.
    world: str = ""
    #: The client's pid as the kernel reports it (-1: unknown).
    peer_pid: int = -1
    #: Set when the master reaped the command itself (its phase was restarted meanwhile).
    reaped: asyncio.Future[ExitStatus] | None = None
    #: Lines written on the client's stderr while it waited for a phase (BOOT_NOTE_LINES), and
    #: whether it was told of a fallback: once per request, however often it is placed.
    notes: int = 0
    detoured: bool = False

    @property
    def stderr(self) -> int | None:
        """The fd the user sees as stderr, for the master's own lines: the last of :attr:`fds`
        in both layouts, (args, stdout pair, stderr pair) and (args, stdin, stdout, stderr);
        None while the handshake has not brought them all."""
        return self.fds[-1] if len(self.fds) >= 3 else None

    def close_fds(self) -> None:
        wire.close_fds(set(self.received))
        self.received.clear()
        self.fds.clear()
        self.stdio.clear()

    async def _handshake(self) -> tuple[CommandRequest, bool] | None:
        """The ``T:`` request and its three fds; True when the client offered extensions (its
        world, if sent, is kept in ``self.world``)."""
        channel = self.channel
        first = await channel.message(HANDSHAKE_TIMEOUT)
        if first.startswith("Q:"):
            await self.server.answer_query(channel, first[2:])
            return None
        request = parse_command_request(first)
        self.server.last_activity = time.monotonic()
        for _ in range(3):
            self.fds.append(await channel.fd(HANDSHAKE_TIMEOUT))
            self.received.append(self.fds[-1])
        messages = channel.pending_messages()
        if not messages and channel.partial().startswith(b"X:"):
            # An offer with a large world can outrun one read: it rides on the third fd's
            # sendmsg, so the rest is already on its way.
            messages = [await channel.message(HANDSHAKE_TIMEOUT)]
        extended = False
        for message in messages:
            if message.startswith("X:"):
                fields = parse_extension(message).fields
                if fields.get("zeuspy") == EXTENSION_VERSION:
                    extended = True
                    world = fields.get("world", "")
                    # Opaque to the master: the last field of the runner header, checked by
                    # the shim that decodes it.
                    if len(world) <= MAX_WORLD:
                        self.world = world
                    if fields.get("stdio") == "1":
                        for _ in range(3):  # sent right after the offer, without a wait
                            self.stdio.append(await channel.fd(HANDSHAKE_TIMEOUT))
                            self.received.append(self.stdio[-1])
        self.extended = extended
        return request, extended

    async def run(self) -> None:
        """Serve the request: handshake, wait for the phase, run the command, report."""
        try:
            handshake = await self._handshake()
        except (asyncio.TimeoutError, ChannelClosed, wire.ProtocolError) as exc:
            if not self.channel.dropped:  # else the channel said why already
                log.info("dropped a client that did not complete its handshake: %s",
                         exc or "timed out")
            return
        if handshake is None:
            return
        request, extended = handshake
        unexpected = False  # a death the master did not cause ended a placement already
        try:
            for placement in range(1, MAX_PLACEMENTS + 1):
                ready = await self._wait_for_phase(request, extended)
                if ready is None:
                    return
                runner_sock, process, handed_over = ready
                runner = Channel(runner_sock, datagram=True, name="runner")
                try:
                    not_started = await self._run_command(request, extended, process, runner,
                                                          handed_over)
                finally:
                    runner.close()
                if not_started is None:
                    return
                log.warning("nothing ran for %s: %s", request.command, not_started)
                # A death the master did not decide on may have been caused by this very
                # request: place it once more only, never let it end phase after phase.
                if placement == MAX_PLACEMENTS or (unexpected and not not_started.expected):
                    self._answer_not_started()
                    return
                unexpected = unexpected or not not_started.expected
                log.info("placing %s again", request.command)
        finally:
            self.close_fds()

    def _header(self, request: CommandRequest, extended: bool,
                process: PhaseProcess) -> RunnerHeader:
        """What the runner needs besides the fds, and which fds go with it: ``self.fds`` is
        set, in place (it is the list handed on), to the args socket and the client's stdio
        fds when both sides speak ``stdio``, else to the legacy three. Flags, for a zeuspy shim
        only: ``s``, those are the stdio fds; ``t``, take the client's terminal (the client
        accepted the extensions too, and one of the streams is a terminal); ``v``, the client
        pid is the kernel's word for the peer, so the shim may read that process's cwd and
        environment when the client sent no world (a legacy client); ``k``, report a signal
        with the status."""
        legacy = [fd for fd in self.received if fd not in self.stdio]
        self.uses_stdio = (extended and process.extensions and "stdio" in process.caps
                              and len(self.stdio) == 3)
        self.fds[:] = [legacy[0], *self.stdio] if self.uses_stdio else legacy
        if not process.extensions:
            return RunnerHeader(request.client_pid, request.argc)
        flags = STDIO_FLAG if self.uses_stdio else ""
        if extended and any(os.isatty(fd) for fd in self.fds[1:]):
            flags += "t"
        if request.client_pid == self.peer_pid:
            flags += "v"
        if "signals" in process.caps:
            flags += SIGNALS_FLAG
        world = self.world if extended and "world" in process.caps else ""
        return RunnerHeader(request.client_pid, request.argc, flags, world)

    async def _wait_for_phase(
        self, request: CommandRequest, extended: bool
    ) -> tuple[socket.socket, PhaseProcess, bool] | None:
        """Wait until the command's phase is ready, make sure it did not load a file that changed
        since, and get a runner from it. When a phase on its path crashed: act at once on a file
        the crash depended on that changed since (a command never gets a stale crash), then run
        the command in the nearest ready ancestor if it may (master/fallback.py, with one line
        on the client's stderr), else refuse with the crash. None: the client was answered
        already (or left)."""
        channel = self.channel
        loop = asyncio.get_running_loop()
        started = loop.time()
        next_note = started + BOOT_NOTE_DELAY
        while True:
            tree = self.server.tree
            spec = tree.command(request.command)
            if spec is None:
                await self._refuse(self._unknown_text(request.command),
                                   EXIT_UNKNOWN_COMMAND)
                return None
            phase = tree.phases[spec.phase]
            crashed = phase.blocking_crash()
            if crashed is not None:
                if await self._refresh_stale(crashed):
                    continue  # the crash is being retried with the saved files
                target = (fallback.fallback_phase(crashed)
                          if fallback.may_fall_back(tree.config, spec.name) else None)
                if target is None:
                    await self._refuse(self._crash_text(crashed), 1)
                    return None
                phase = target
            if self.server.closing:
                await self._refuse("zeus: the master is shutting down.\n", 1)
                return None
            if channel.closed:
                return None
            if _ready(phase):
                if not await self._refresh_stale(phase):
                    if (crashed is not None and not self.detoured
                            and phase.process is not None):
                        self.detoured = True  # one line per request, as the command starts
                        await self._write_error(
                            self._command_stderr(request, extended, phase.process),
                            fallback.note(crashed, spec.name, phase))
                    asked = phase.process
                    assert asked is not None  # ready
                    header = self._header(request, extended, asked)
                    try:
                        return await self.server.supervisor.fork_runner(
                            phase, spec.name, Handover(header), self.fds)
                    except RunnerUnavailable as exc:
                        if _ready(phase) and phase.process is asked:
                            await self._refuse(f"zeus: {exc}; try again.\n", 1)
                            return None
                        # The phase went down meanwhile, or was restarted while the request
                        # waited for its turn (a new process is ready): ask again.
                        continue
                if _ready(phase):
                    continue  # only touched, not changed: run now
            wait = None if self.notes >= BOOT_NOTE_LINES else max(0.0, next_note - loop.time())
            waits = {asyncio.ensure_future(tree.changed()),
                     asyncio.ensure_future(channel.wait_closed()),
                     asyncio.ensure_future(self.server.closed.wait())}
            done, pending = await asyncio.wait(waits, timeout=wait,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if not done and self.notes < BOOT_NOTE_LINES:
                text = (f"zeus: waiting for phase {phase.name} to boot...\n" if self.notes == 0
                        else _still_booting(phase, loop.time() - started))
                self.notes += 1
                next_note += BOOT_NOTE_INTERVAL
                assert self.stderr is not None  # the handshake brought the fds
                await self._write_error(self.stderr, text)

    def _command_stderr(self, request: CommandRequest, extended: bool,
                        process: PhaseProcess) -> int:
        """The fd the command will have as its stderr when ``process`` forks it (the client's
        own stderr under the ``stdio`` extension, else the legacy pair the client relays): a
        note written there reaches the user before anything the command writes."""
        self._header(request, extended, process)  # settles ``self.fds`` in place
        assert self.stderr is not None
        return self.stderr

    async def _refresh_stale(self, phase: Phase) -> bool:
        """The never-stale check, for a ready phase and for a crashed one alike: when a project
        file that ``phase`` or an ancestor loaded (for a crash: also a file its traceback named)
        changed since it was last acted on, act on it now instead of after the debounce delay.
        True when there was such a file (the phase may be restarting: look again)."""
        if self.server.monitor is None:
            return False
        stale = self.server.monitor.stale_files(phase)
        if not stale:
            return False
        await self.server.monitor.refresh_now(stale)
        return True

    def _unknown_text(self, command: str) -> str:
        config = self.server.tree.config
        names = []
        for name, spec in config.commands.items():
            aliases = f" (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
            names.append(name + aliases)
        text = f'Could not find command "{command}".'
        close = difflib.get_close_matches(command, [*config.commands, *config.aliases], n=3)
        if close:
            text += f" Did you mean {' or '.join(close)}?"
        return f"{text}\nAvailable commands: {', '.join(names)}.\n"

    async def _run_command(self, request: CommandRequest, extended: bool,
                           process: PhaseProcess, runner: Channel,
                           handed_over: bool) -> _NotStarted | None:
        """Have the runner (or spare) run the command and answer the client; or, when nothing
        ran and nothing can run from this placement any more, say why without answering (the
        client's fds are kept, so the request may be placed again)."""
        channel = self.channel
        extended = extended and process.extensions
        first: str | None = None
        try:
            if not handed_over:
                try:
                    runner.send(self._header(request, extended, process).format())
                    for fd in self.fds:
                        runner.send_fd(fd)
                except ChannelClosed as exc:
                    # Nobody holds the runner's end: the runner is gone with the header unread
                    # or before it could pass its socket on.
                    raise _NotStarted(f"its runner is gone ({exc})", process.doomed) from None
            first = await _first_message(runner, process)
            registration = parse_registration(first)
        except _NotStarted as exc:
            return exc
        except (asyncio.TimeoutError, ChannelClosed, wire.ProtocolError, _PhaseEnded) as exc:
            if (isinstance(exc, wire.ProtocolError) and process.extensions
                    and _killed_unregistered(first)):
                return _NotStarted("the process that took it was killed before its command "
                                   "started")
            log.warning("runner for %s did not report its command: %s", request.command,
                        exc or type(exc).__name__)
            self._answer_not_started()
            return None
        # A legacy client's output streams, kept to see that it read them all (see
        # LEGACY_DRAIN_TIMEOUT); the master's copies of everything else go now: keeping them
        # would leak and block EOF.
        outputs = [] if self.extended else _dup_all(self.fds[1:])
        self.close_fds()
        try:
            self.command_pid = registration.pid
            flags = ""
            if extended and "t" in registration.flags:
                flags += "t"
            if self.uses_stdio:
                flags += STDIO_FLAG
            send_quietly(channel, CommandStarted(registration.pid, flags).format())
            if self.server.closing:
                # It registered after the master began to stop (a busy master reads late): it
                # is hung up as those running then were, not killed when their grace ends.
                self.server.hang_up(self)
            status = await self._await_status(request, runner, registration.pid)
            if outputs:
                await _drained(outputs, LEGACY_DRAIN_TIMEOUT)
            send_quietly(channel, status.format(with_signal=self.extended))
        finally:
            wire.close_fds(outputs)
        return None

    async def _await_status(self, request: CommandRequest, runner: Channel,
                            pid: int) -> ExitStatus:
        """The command's status: from its runner socket, from the master's own reaping, or 1
        when it is gone without one; stops the command when the client leaves first."""
        channel = self.channel
        loop = asyncio.get_running_loop()
        # A runner socket shut for reading after a late registration (_first_message) brings
        # no status: the master's own reaping does (its phase is gone).
        status_task: asyncio.Future[str] = (loop.create_future() if runner.exhausted
                                             else asyncio.ensure_future(runner.message()))
        gone = asyncio.ensure_future(channel.wait_closed())
        self.reaped = loop.create_future()
        vanished = asyncio.ensure_future(self._watch_command(pid))
        waits: set[asyncio.Future[Any]] = {status_task, gone, self.reaped, vanished}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        vanished.cancel()
        if vanished.done() and not vanished.cancelled() and not status_task.done():
            # Neither the command nor its runner will report (both died unreaped by us).
            log.warning("command %s (pid %d) is gone without an exit status", request.command,
                        pid)
            status_task.cancel()
            gone.cancel()
            return ExitStatus(1)
        if self.reaped.done() and not status_task.done():
            # Its phase is gone, so nobody else will report; the command did not either.
            status_task.cancel()
            gone.cancel()
            return self.reaped.result()
        if not status_task.done():
            log.info("client of %s (pid %d) went away; stopping its command",
                     request.command, pid)
            await self._stop_command(pid, status_task, COMMAND_KILL_GRACE)
        gone.cancel()
        return self._status_of(status_task, request.command)

    @staticmethod
    async def _watch_command(pid: int) -> None:
        """Return once ``pid`` has been gone for :data:`STATUS_GRACE` (a datagram socket has no
        EOF: without this a client whose runner and command both died would wait forever)."""
        while True:
            await asyncio.sleep(COMMAND_CHECK_INTERVAL)
            try:
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            await asyncio.sleep(STATUS_GRACE)  # a status sent just before exiting is on its way
            return

    async def _stop_command(self, pid: int, status_task: asyncio.Future[str],
                            grace: float) -> None:
        """SIGHUP, as a closed terminal would send; SIGKILL if it is still running after
        ``grace``."""
        signal_group_or_pid(pid, signal.SIGHUP)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(status_task), grace)
        if not status_task.done():
            signal_group_or_pid(pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(status_task), grace)

    def _status_of(self, status_task: asyncio.Future[str], command: str) -> ExitStatus:
        if not status_task.done():
            status_task.cancel()
            return ExitStatus(1)
        if status_task.cancelled() or status_task.exception() is not None:
            log.warning("runner for %s ended without an exit status", command)
            return ExitStatus(1)
        try:
            return parse_exit_status(status_task.result())
        except wire.ProtocolError:
            return ExitStatus(1)

    def _answer_not_started(self) -> None:
        """Tell the client that nothing ran: pid 0, one line (a client that offered the
        extensions), status 1."""
        send_quietly(self.channel, "0")
        if self.extended:
            send_quietly(self.channel, Note(_NOT_STARTED).format())
        send_quietly(self.channel, "1")

    def _crash_text(self, crashed: Phase) -> str:
        error = crashed.error or f"zeus: phase {crashed.name} crashed"
        return f"{error.rstrip()}\n"

    async def _refuse(self, text: str, status: int) -> None:
        """No command runs: answer pid 0, show ``text`` on the client's stderr, send ``status``."""
        send_quietly(self.channel, "0")
        if self.stderr is not None:
            await self._write_error(self.stderr, text)
        self.close_fds()
        send_quietly(self.channel, str(status))

    async def _write_error(self, fd: int, text: str) -> None:
        """Write to a client's stream without ever blocking the loop (bounded)."""
        data = text.encode("utf-8", "replace")
        loop = asyncio.get_running_loop()
        try:
            os.set_blocking(fd, False)
        except OSError:
            return
        deadline = loop.time() + ERROR_WRITE_TIMEOUT
        while data and loop.time() < deadline:
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()

                def writable(ready: asyncio.Future[None] = ready) -> None:
                    if not ready.done():
                        ready.set_result(None)

                loop.add_writer(fd, writable)
                try:
                    await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                finally:
                    loop.remove_writer(fd)
            except OSError:
                break
        try:
            os.set_blocking(fd, True)
        except OSError:
            pass


def send_quietly(channel: Channel, text: str) -> None:
    """Send ``text`` unless the peer is gone."""
    with contextlib.suppress(ChannelClosed):
        channel.send(text)


def _still_booting(phase: Phase, waited: float) -> str:
    """The periodic note to a client that has waited ``waited`` seconds for ``phase``: the
    phase that is booting (``phase``, or the ancestor it waits for) and since when, else (no
    process booting now: between a death and its restart) how long the client waited."""
    node: Phase | None = phase
    while node is not None and node.state is not PhaseState.BOOTING:
        node = node.parent
    if node is None:
        return (f"zeus: still waiting for phase {phase.name} after {waited:.0f} s "
                f"(its output: {PHASE_OUTPUT})\n")
    booting = time.monotonic() - node.boot_started
    return (f"zeus: phase {node.name} still booting after {booting:.0f} s "
            f"(its output: {PHASE_OUTPUT})\n")


def _dup_all(fds: list[int]) -> list[int]:
    """Copies of ``fds`` (each once), skipping any that cannot be copied."""
    copies = []
    for fd in dict.fromkeys(fds):
        with contextlib.suppress(OSError):
            copies.append(os.dup(fd))
    return copies


class _NotStarted(Exception):
    """Nothing ran, and nothing can run from this placement of the request any more.
    ``expected``: the master caused it (it restarted the phase), so the request itself cannot
    have."""

    def __init__(self, reason: str, expected: bool = False) -> None:
        super().__init__(reason)
        self.expected = expected


#: Why a placement ended when its phase did and nothing registered after it.
_PHASE_ENDED = f"its phase ended and nothing registered within {STATUS_GRACE:.0f} s"


class _PhaseEnded(Exception):
    """The phase asked for the command ended, and no registration came after it (where a late
    one cannot be refused for sure: :data:`REFUSAL_IS_FINAL`)."""

    def __str__(self) -> str:
        return _PHASE_ENDED


def _killed_unregistered(first: str | None) -> bool:
    """Whether the runner socket's first message is the status of a process killed by a
    signal, not a registration: the phase reaped the process that took the request (a spare
    killed while it took it) before its command registered, and a command runs nothing of its
    own before it registers. A process that exited by itself there refused the request (its
    fds or arguments were unusable): placing it again would only fail again."""
    if first is None:
        return False
    try:
        return parse_exit_status(first).signal != 0
    except wire.ProtocolError:
        return False


async def _first_message(runner: Channel, process: PhaseProcess) -> str:
    """The runner's first message (its command's registration), within
    :data:`COMMAND_START_TIMEOUT`. A phase that ends between handing over the runner's socket
    and forking the runner (or handing the request to its spare), restarted or crashed, leaves
    nobody to write on that socket, and a datagram socket has no EOF to say so: once
    ``process``, the phase asked for the command, is dead and :data:`STATUS_GRACE` more went by
    without a message, the socket is shut for reading (a runner or spare that registers later
    fails to, and ends without running the command) and :class:`_NotStarted` is raised, or
    :class:`_PhaseEnded` where that refusal is not known to be final."""
    message = asyncio.ensure_future(runner.message(COMMAND_START_TIMEOUT))
    dead = asyncio.ensure_future(process.dead.wait())
    try:
        await asyncio.wait({message, dead}, return_when=asyncio.FIRST_COMPLETED)
        if not message.done():
            await asyncio.wait({message}, timeout=STATUS_GRACE)
        if message.done():
            return message.result()
        message.cancel()
        # A cancel that comes as the registration does may be swallowed (wait_for, 3.11): the
        # task then ends with ChannelClosed, which nobody needs.
        message.add_done_callback(lambda task: task.cancelled() or task.exception())
        runner.refuse_more()
        with contextlib.suppress(ChannelClosed):  # else it registered between wait and shut-down
            return await runner.message()
        # Only a zeuspy shim's command is known to run nothing when its registration fails.
        if REFUSAL_IS_FINAL and process.extensions:
            raise _NotStarted(_PHASE_ENDED, expected=process.doomed)
        raise _PhaseEnded
    finally:
        dead.cancel()
        message.cancel()


def _unread(fd: int) -> int:
    """Bytes written on ``fd`` that its peer has not read yet: for a socket, the kernel's send
    queue (``SIOCOUTQ``); for a PTY, its output queue where the OS keeps one the other side
    drains (macOS; Linux hands output to the other side at once and reports 0)."""
    import fcntl
    import termios

    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return 0


async def _drained(fds: list[int], timeout: float) -> None:
    """Wait, at most ``timeout``, until the peers of ``fds`` have read what was written on them,
    and then :data:`LEGACY_WRITE_GRACE` for them to pass it on."""
    deadline = time.monotonic() + timeout
    while any(_unread(fd) for fd in fds) and time.monotonic() < deadline:
        await asyncio.sleep(LEGACY_DRAIN_POLL)
    await asyncio.sleep(LEGACY_WRITE_GRACE)
