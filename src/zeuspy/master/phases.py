"""PhaseSupervisor: starts the root phase, registers phases, boots children, keeps them alive.

Everything here runs on the master's event loop and changes phase states only through
:meth:`ProcessTree.transition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from zeuspy.config import Config
from zeuspy.master.channel import Channel, ChannelClosed
from zeuspy.master.kills import end_group, peer_credentials, terminate
from zeuspy.master.tasks import TaskSet
from zeuspy.master.tree import Phase, PhaseProcess, PhaseState, ProcessTree
from zeuspy.protocol import wire
from zeuspy.protocol.messages import (
    EXTENSION_VERSION,
    OFFER_ENV,
    BootResult,
    Extension,
    ForkCommand,
    ForkPhase,
    Handover,
    parse_phase_message,
    parse_registration,
)
from zeuspy.shim import learned

log = logging.getLogger(__name__)

FeatureListener = Callable[[Phase, list[str]], None]

MASTER_FD_ENV = "ZEUS_MASTER_FD"
#: How long a forked phase may take to register (it registers before running its action).
REGISTRATION_TIMEOUT = 30.0
#: How long a ready phase may take to hand over a runner for a command.
RUNNER_FORK_TIMEOUT = 10.0
#: Unexpected deaths within this window count toward the restart back-off.
DEATH_WINDOW = 30.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
#: Linux: a shut-down reading end still gives what was queued, then EOF (on BSDs, macOS, it
#: drops what was queued).
_SHUTDOWN_KEEPS_DATA = sys.platform.startswith("linux")


class RunnerUnavailable(Exception):
    """The phase could not fork a runner (it died, or answered with something else)."""


class PhaseSupervisor:
    """Owns the phase processes of one :class:`ProcessTree`."""

    def __init__(self, tree: ProcessTree, log_fd: int, learn_imports: bool = True) -> None:
        self.tree = tree
        self.learn_imports = learn_imports
        self.config = tree.config
        self.log_fd = log_fd
        self.root_pid: int | None = None
        self.root_status: int | None = None
        self.root_dead = asyncio.Event()
        self.stopping = False
        self._bootstrap: socket.socket | None = None
        self._bootstrap_remote: socket.socket | None = None
        self._tasks = TaskSet("phase supervisor")
        self._runner_locks: dict[int, asyncio.Lock] = {}
        #: id(process) -> the reader of its feature pipe (to drain it when the process ends).
        self._feature_readers: dict[int, Callable[[], None]] = {}
        #: Told about every file a phase reports (the FileMonitor); else they are only stored.
        self.on_features: FeatureListener | None = None
        #: Told about other processes we reaped: commands orphaned by a restarted phase.
        self.on_reaped: Callable[[int, int], None] | None = None
        #: pid -> the registered phase process with that pid, until its end is handled.
        self._live: dict[int, tuple[Phase, PhaseProcess]] = {}

    # -- tasks ------------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return self._tasks.spawn(coro, name)

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        local.setblocking(False)
        self._bootstrap, self._bootstrap_remote = local, remote
        asyncio.get_running_loop().add_reader(local.fileno(), self._on_bootstrap)
        self._start_root()

    def _start_root(self) -> None:
        if self.root_pid is not None:
            log.warning("not starting a root phase: pid %d still runs", self.root_pid)
            return
        root = self.tree.root
        assert self._bootstrap_remote is not None
        remote_fd = self._bootstrap_remote.fileno()
        env = dict(os.environ)
        env[MASTER_FD_ENV] = str(remote_fd)
        env[OFFER_ENV] = EXTENSION_VERSION
        env[learned.ENABLE_ENV] = "1" if self.learn_imports else "0"  # read by shim/learned.py
        self.root_dead = asyncio.Event()
        self.root_status = None
        self.tree.transition(root, PhaseState.BOOTING, "starting the root phase")
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.set_inheritable(remote_fd, True)
            self.root_pid = os.posix_spawnp(
                self.config.command[0],
                list(self.config.command),
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, self.log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, self.log_fd, 2),
                ],
                setsid=True,
            )
        except OSError as exc:
            self.root_pid = None
            root.error = (f"zeus: cannot start the root phase `{' '.join(self.config.command)}`: "
                          f"{exc.strerror or exc}")
            self.tree.transition(root, PhaseState.CRASHED, "command failed to start")
            return
        finally:
            os.set_inheritable(remote_fd, False)
            os.close(null)
        log.info("root phase started: pid %d: %s", self.root_pid, " ".join(self.config.command))
        self._expect_registration(root)

    def reap(self) -> None:
        """SIGCHLD: reap every child (the root phase, and orphans re-parented to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.root_pid:
                self.root_status = os.waitstatus_to_exitcode(status)
                self.root_pid = None
                self.root_dead.set()
                self._root_exited()
            elif pid in self._live:  # a phase orphaned by its parent's death
                self._seen_dead(*self._live[pid])
            else:
                log.debug("reaped pid %d (status %d)", pid, status)
                if self.on_reaped is not None:
                    self.on_reaped(pid, status)

    def _root_exited(self) -> None:
        root = self.tree.root
        if root.state is PhaseState.BOOTING and root.process is None and not self.stopping:
            root.error = (f"zeus: the root phase command `{' '.join(self.config.command)}` exited "
                          f"with status {self.root_status} before registering; its output is in "
                          ".zeus/master.log")
            self.tree.transition(root, PhaseState.CRASHED, "exited before registering")
        if root.process is not None:
            self._seen_dead(root, root.process)

    # -- deaths the kernel reports --------------------------------------------------------------
    def _watch_death(self, phase: Phase, process: PhaseProcess) -> None:
        """Learn of ``process``'s death from the kernel, through a pidfd (Linux 5.3+), whoever
        its parent is: not only when the last copy of its socket closes, which a process it
        forked can hold off (one that escaped the shim's after-fork hook, or any child of a
        legacy shim)."""
        self._live[process.pid] = (phase, process)
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            return
        try:
            process.pidfd = pidfd_open(process.pid)
        except ProcessLookupError:
            # Dead and reaped by its parent phase before the master read its registration: no
            # pidfd will say so, and a helper it forked may keep its socket open (no EOF).
            self._seen_dead(phase, process)
            return
        except OSError:  # a kernel without pidfds: its EOF or our reaping says it ended
            return
        asyncio.get_running_loop().add_reader(process.pidfd, self._seen_dead, phase, process)

    def _unwatch(self, process: PhaseProcess) -> None:
        if self._live.get(process.pid, (None, None))[1] is process:
            del self._live[process.pid]
        if process.pidfd is not None:
            asyncio.get_running_loop().remove_reader(process.pidfd)
            os.close(process.pidfd)
            process.pidfd = None

    def _seen_dead(self, phase: Phase, process: PhaseProcess) -> None:
        """The kernel says ``process`` is gone (its pidfd, or we reaped it): its end is handled
        now. A ready phase leaves the tree at once (``zeus status`` never shows a dead pid as
        ready); otherwise its socket is shut for reading, so that the registration task reads
        what the process sent before dying (a boot result), then EOF."""
        self._unwatch(process)
        if process.dead.is_set():
            return
        process.dead.set()
        if _SHUTDOWN_KEEPS_DATA:
            with contextlib.suppress(OSError):
                process.channel.sock.shutdown(socket.SHUT_RD)
        if phase.process is process and phase.state is PhaseState.READY:
            self._process_ended(phase, process)

    # -- registration (protocol "Master <-> phase", step 2) -----------------------------------
    def _on_bootstrap(self) -> None:
        assert self._bootstrap is not None
        while True:
            try:
                _, fds = wire.receive(self._bootstrap)
            except (BlockingIOError, InterruptedError):
                return
            except (OSError, wire.ProtocolError) as exc:
                log.warning("bad datagram on the bootstrap socket: %s", exc)
                continue
            for fd in fds:
                try:
                    sock = socket.socket(fileno=fd)
                except OSError:
                    wire.close_fds([fd])
                    continue
                if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
                    log.warning("ignoring a registration socket that is not a Unix stream")
                    sock.close()
                    continue
                self._spawn(self._register(sock), "register")

    def _expect_registration(self, phase: Phase) -> None:
        generation = phase.generation

        async def watchdog() -> None:
            await asyncio.sleep(REGISTRATION_TIMEOUT)
            if (phase.generation == generation and phase.state is PhaseState.BOOTING
                    and phase.process is None and not self.stopping):
                phase.error = (
                    f"zeus: phase {phase.name} did not register within "
                    f"{REGISTRATION_TIMEOUT:.0f} s of being started; see .zeus/master.log"
                )
                self.tree.transition(phase, PhaseState.CRASHED, "no registration")

        self._spawn(watchdog(), "registration watchdog")

    async def _register(self, sock: socket.socket) -> None:
        channel = Channel(sock, name="phase")
        try:
            text = await channel.message(REGISTRATION_TIMEOUT)
            registration = parse_registration(text)
        except (asyncio.TimeoutError, ChannelClosed, wire.ProtocolError) as exc:
            log.warning("dropping a phase connection that did not register: %s", exc)
            channel.close()
            return
        phase = self.tree.phases.get(registration.identifier)
        credentials = peer_credentials(sock)
        trusted_pid = credentials is not None and credentials[0] == registration.pid
        if phase is None:
            log.warning("a process (pid %d) registered as unknown phase %r; ignoring it",
                        registration.pid, registration.identifier)
            channel.close()
            return
        parent = phase.parent
        wrong_parent = (parent is not None and (parent.process is None
                                                 or registration.parent_pid != parent.process.pid))
        if (phase.state is not PhaseState.BOOTING or phase.process is not None or self.stopping
                or wrong_parent):
            log.info("late registration of %s (pid %d) after a restart; stopping it",
                     phase.name, registration.pid)
            channel.close()
            if trusted_pid:
                with contextlib.suppress(ProcessLookupError):  # it may have died already
                    os.kill(registration.pid, signal.SIGKILL)
            return
        process = PhaseProcess(registration.pid, channel)
        phase.process = process
        log.info("phase %s registered: pid %d", phase.name, registration.pid)
        if trusted_pid:
            self._watch_death(phase, process)
        try:
            process.features_fd = await channel.fd(REGISTRATION_TIMEOUT)
            self._read_features(phase, process)
            while True:
                message = parse_phase_message(await channel.message())
                if isinstance(message, BootResult):
                    self._boot_result(phase, process, message)
                elif isinstance(message, Extension):
                    process.extensions = message.fields.get("zeuspy") == EXTENSION_VERSION
                    if process.extensions:
                        process.caps = frozenset(message.fields.get("caps", "").split(","))
                else:
                    log.warning("phase %s sent an unexpected registration; ignored", phase.name)
        except (asyncio.TimeoutError, ChannelClosed, wire.ProtocolError) as exc:
            if isinstance(exc, wire.ProtocolError):
                log.warning("phase %s broke the protocol: %s", phase.name, exc)
        finally:
            channel.close()
            process.dead.set()
            self._process_ended(phase, process)

    def _boot_result(self, phase: Phase, process: PhaseProcess, result: BootResult) -> None:
        if phase.process is not process or phase.state is not PhaseState.BOOTING:
            return
        if result.error is None:
            self.tree.transition(phase, PhaseState.READY)
            for child in phase.children:
                self._boot_child(child)
        else:
            phase.error = result.error
            self.tree.transition(phase, PhaseState.CRASHED, "its action failed")

    def _boot_child(self, child: Phase) -> None:
        parent = child.parent
        if (self.stopping or parent is None or parent.process is None
                or parent.state is not PhaseState.READY or child.state is not PhaseState.UNBOOTED
                or child.process is not None):
            return
        try:
            parent.process.channel.send(ForkPhase(child.name).format())
        except ChannelClosed:
            return
        self.tree.transition(child, PhaseState.BOOTING)
        self._expect_registration(child)

    def _read_features(self, phase: Phase, process: PhaseProcess) -> None:
        fd = process.features_fd
        if fd is None:
            return
        os.set_blocking(fd, False)
        loop = asyncio.get_running_loop()
        pending = b""

        def on_readable() -> None:
            nonlocal pending
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                os.close(fd)
                process.features_fd = None
                self._feature_readers.pop(id(process), None)
                return
            *lines, pending = (pending + data).split(b"\n")
            paths = [os.fsdecode(line) for line in lines if line]
            if phase.process is not process or not paths:
                return
            if self.on_features is not None:
                self.on_features(phase, paths)
            else:
                phase.features.update(paths)

        loop.add_reader(fd, on_readable)
        self._feature_readers[id(process)] = on_readable

    def _drain_features(self, process: PhaseProcess) -> None:
        """Read what a dead phase process wrote on its feature pipe and was not read yet: a
        crashed phase reports the files its traceback named just before ``R:``, and its death
        can be seen first; without them a fix to those files would not be noticed."""
        reader = self._feature_readers.pop(id(process), None)
        while reader is not None and process.features_fd is not None:
            try:
                readable = bool(select.select([process.features_fd], [], [], 0)[0])
            except (OSError, ValueError):
                readable = True  # the reader meets the error too, and closes the pipe
            if not readable:
                return  # a live writer with nothing more to say (a doomed phase)
            reader()

    # -- death and restarts ---------------------------------------------------------------------
    def _process_ended(self, phase: Phase, process: PhaseProcess) -> None:
        """``process`` is dead (or its socket closed): close what the master held of it, and,
        when it was its phase's current process, crash or restart the phase. Idempotent."""
        self._unwatch(process)
        self._drain_features(process)
        if process.features_fd is not None:
            asyncio.get_running_loop().remove_reader(process.features_fd)
            os.close(process.features_fd)
            process.features_fd = None
        self._runner_locks.pop(id(process), None)
        if phase.process is not process:
            return
        phase.process = None
        if process.doomed or self.stopping:
            return
        self._spawn(end_group(process.pid, f"phase {phase.name}"), "end the group")
        if phase.state is PhaseState.BOOTING:
            phase.error = (f"zeus: phase {phase.name} (pid {process.pid}) exited while booting, "
                           "without reporting a result; its output is in .zeus/master.log")
            self.tree.transition(phase, PhaseState.CRASHED, "died while booting")
            self._stop_subtree_processes(phase)
        elif phase.state is PhaseState.READY:
            now = time.monotonic()
            phase.deaths = [t for t in phase.deaths if now - t < DEATH_WINDOW] + [now]
            delay = min(BACKOFF_FIRST * 2 ** (len(phase.deaths) - 1), BACKOFF_MAX)
            log.warning("phase %s (pid %d) died unexpectedly; restarting in %.1f s",
                        phase.name, process.pid, delay)
            self.restart(phase, "its process died", delay=delay)

    def _stop_subtree_processes(self, phase: Phase) -> None:
        for child in phase.children:
            if child.state is not PhaseState.UNBOOTED:
                self.restart(child, f"its parent {phase.name} went down", boot=False)

    def restart(self, phase: Phase, reason: str, *, delay: float = 0.0,
                boot: bool = True) -> asyncio.Task[None]:
        """Kill ``phase`` and everything below it, then boot it again from its parent.

        The states change at once (a client asking now waits for the new boot); the killing and
        booting happen in the returned task. Commands are their own sessions and are not touched.
        A restart superseded by a newer one (of this phase or an ancestor) stops quietly.
        """
        nodes = phase.subtree()
        for node in nodes:
            node.generation += 1
            node.features = set()
            if node.state is not PhaseState.UNBOOTED:
                self.tree.transition(node, PhaseState.UNBOOTED, reason)
        doomed = []
        for node in nodes:
            if node.process is not None:
                node.process.doomed = True
                doomed.append((node, node.process))
                node.process = None
        return self._spawn(self._finish_restart(phase, phase.generation, doomed, delay, boot),
                           "restart")

    async def _finish_restart(self, phase: Phase, generation: int,
                              doomed: list[tuple[Phase, PhaseProcess]], delay: float,
                              boot: bool) -> None:
        root_included = phase is self.tree.root
        # The root process this restart is about: a root started by a later restart is not ours.
        root_pid, root_dead = self.root_pid, self.root_dead
        await asyncio.gather(*(self._end_process(proc, f"phase {node.name}")
                               for node, proc in doomed))
        if root_included and root_pid is not None:
            await terminate(root_pid, root_dead, "root phase")
        if delay:
            await asyncio.sleep(delay)
        if not boot or self.stopping or phase.generation != generation:
            return
        if phase.state is not PhaseState.UNBOOTED:
            return
        if root_included:
            self._start_root()
        else:
            self._boot_child(phase)

    @staticmethod
    async def _end_process(process: PhaseProcess, what: str) -> None:
        """Kill a phase process (escalating), then what is left of its group: helpers its code
        forked outlive it when it died first (of its parent's death signal, say)."""
        await terminate(process.pid, process.dead, what)
        await end_group(process.pid, what)

    def restart_all(self, reason: str) -> None:
        """Reboot the whole tree (SIGUSR1, `zeus restart`, a changed plan file)."""
        self.restart(self.tree.root, reason)

    async def rebuild_tree(self, config: Config, reason: str) -> None:
        """Kill every phase, then rebuild the tree for ``config`` (a plan of another shape) and
        boot it."""
        await self.restart(self.tree.root, reason, boot=False)
        self.config = config
        self.tree.rebuild(config)
        if not self.stopping:
            self._start_root()

    # -- commands ---------------------------------------------------------------------------------
    async def fork_runner(self, phase: Phase, command: str,
                          handover: Handover | None = None,
                          fds: list[int] | None = None) -> tuple[socket.socket, PhaseProcess, bool]:
        """Ask a ready phase to fork a runner for ``command``: the runner's datagram socket, the
        phase process it came from, and whether the client's header (``handover``, built for
        ``phase.process``) and ``fds`` went with the request already (a shim that accepted the
        ``handover`` extension). Raises :class:`RunnerUnavailable`."""
        process = phase.process
        if process is None or phase.state is not PhaseState.READY:
            raise RunnerUnavailable(f"phase {phase.name} is not ready")
        direct = handover is not None and fds is not None and "handover" in process.caps
        lock = self._runner_locks.setdefault(id(process), asyncio.Lock())
        async with lock:  # one request in flight per phase, so each fd answers its own request
            try:
                process.channel.send(ForkCommand(command).format())
                if direct:
                    assert handover is not None and fds is not None
                    process.channel.send(handover.format())
                    for fd in fds:
                        process.channel.send_fd(fd)
                fd = await process.channel.fd(RUNNER_FORK_TIMEOUT)
            except (ChannelClosed, asyncio.TimeoutError) as exc:
                if isinstance(exc, asyncio.TimeoutError) and phase.process is process:
                    # Its answer may still come and would then answer the next request:
                    # a phase that cannot keep up is restarted instead.
                    self.restart(phase, "it did not answer a command request in time")
                raise RunnerUnavailable(
                    f"phase {phase.name} did not start a runner for {command!r}: "
                    f"{exc or 'timed out'}") from None
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            wire.close_fds([fd])
            raise RunnerUnavailable(f"phase {phase.name} sent an unusable runner socket") from None
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_DGRAM:
            sock.close()
            raise RunnerUnavailable(f"phase {phase.name} sent a runner socket of the wrong type")
        return sock, process, direct

    # -- stop -------------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Kill every phase (escalating), reap the root, close the bootstrap socket."""
        self.stopping = True
        processes = [(p, p.process) for p in self.tree.root.subtree() if p.process is not None]
        for _, process in processes:
            process.doomed = True
        await asyncio.gather(*(self._end_process(proc, f"phase {phase.name}")
                               for phase, proc in reversed(processes)))
        if self.root_pid is not None:
            await terminate(self.root_pid, self.root_dead, "root phase")
        self.reap()
        await self._tasks.close()
        if self._bootstrap is not None:
            asyncio.get_running_loop().remove_reader(self._bootstrap.fileno())
            self._bootstrap.close()
        if self._bootstrap_remote is not None:
            self._bootstrap_remote.close()
