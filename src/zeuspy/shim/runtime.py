"""A phase's life: register with the master, run the action, report, then fork on request.

Runs synchronously, one phase per process. Protocol steps refer to docs/protocol.md.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import NoReturn

from zeuspy.errors import ZeusError
from zeuspy.plan import Plan, method_name, run_after_fork
from zeuspy.planfile import PlanLoadError, load_plan
from zeuspy.protocol import wire
from zeuspy.protocol.messages import (
    EXTENSION_VERSION,
    OFFER_ENV,
    SHIM_CAPABILITIES,
    BootResult,
    Extension,
    Registration,
    parse_handover,
)
from zeuspy.shim import hygiene, learned, process, runner, spare, world
from zeuspy.shim.spares import Spare, Spares
from zeuspy.shim.tracking import Tracker, pth_files, traceback_files

MASTER_FD_ENV = "ZEUS_MASTER_FD"
ROOT = "boot"
#: How often an idle phase looks for modules imported lazily (by a thread or a timer).
LAZY_IMPORT_CHECK = 0.5
#: How long a phase waits for the ``H:`` message and fds that follow ``C:`` (sent together).
HANDOVER_TIMEOUT = 5.0


class PhaseLoop:
    """One phase process: the shim's side of the master's phase handle."""

    def __init__(self, plan_source: str, plan: Plan | None, bootstrap: socket.socket,
                 extensions: bool, tracker: Tracker) -> None:
        self.plan_source = plan_source
        self.tracker = tracker
        self.plan = plan
        self.bootstrap = bootstrap
        self.extensions = extensions
        self.children: set[int] = set()
        self.sock: socket.socket | None = None
        #: Requests received and not handled yet (a hand-over can arrive with the next ``C:``).
        self.inbox: deque[str] = deque()
        #: The extensions this shim accepted (announced in its ``X:`` message).
        self.accepted = frozenset(SHIM_CAPABILITIES) if extensions else frozenset()
        self.wake: tuple[int, int] = (-1, -1)
        #: What this phase learns from its commands' imports (made when it starts serving).
        self.learner: learned.Learner | None = None
        #: The waiting spare, the commands handed to spares, when the next spare is due.
        self.spares = Spares()
        #: True while this process holds a phase's fds (from registration until a fork of the
        #: shim's own sheds them): what the after-fork hook closes in forks of the user's code.
        self.holding = False
        #: The thread making a fork of the shim's own (a phase, runner or spare), else None.
        self._shim_fork: int | None = None
        #: This process's pid as a registered phase (a child of the user's code has another).
        self.pid = 0
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    # -- protocol step 2 ----------------------------------------------------------------------
    def register(self, identifier: str, parent_pid: int) -> None:
        local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        wire.send_fd(self.bootstrap, remote.fileno())
        remote.close()
        wire.send_message(local, Registration(os.getpid(), parent_pid, identifier).format())
        read_end, write_end = os.pipe()
        wire.send_fd(local, read_end)
        os.close(read_end)
        if self.extensions:
            offer = Extension({"zeuspy": EXTENSION_VERSION, "caps": ",".join(SHIM_CAPABILITIES)})
            wire.send_message(local, offer.format())
        self.sock = local
        self.tracker.attach(write_end)
        self.pid = os.getpid()
        self.holding = True

    # -- protocol step 3 ----------------------------------------------------------------------
    def boot(self, identifier: str, parent_pid: int) -> None:
        """Register, run the action, report ``R:``; on success serve requests forever."""
        self.register(identifier, parent_pid)
        assert self.sock is not None
        hygiene.current_phase = identifier
        process.set_title(f"zeus phase: {identifier}")
        print(f"zeus: phase {identifier} (pid {os.getpid()}) booting", file=sys.stderr, flush=True)
        self.tracker.begin_action()
        world.reading(True)
        try:
            if self.plan is None:
                self.plan = load_plan(self.plan_source)
            if identifier != ROOT:
                hygiene.renew_after_fork()
                run_after_fork(self.plan)
            action = getattr(self.plan, method_name(identifier), None)
            if action is None:
                raise PlanLoadError(
                    f"plan {type(self.plan).__name__} has no method {method_name(identifier)}() "
                    f"for phase {identifier!r}"
                )
            action()
        except BaseException as exc:
            if os.getpid() != self.pid:
                _end_user_child(exc)
            tb = exc.__traceback__
            if isinstance(exc, ZeusError):
                text = f"zeus: {exc.message}\n"  # a settings problem: one line says it all
            else:
                # Drop this frame: the user's code is what failed.
                text = "".join(traceback.format_exception(type(exc), exc,
                                                          tb.tb_next if tb else None))
            print(text, file=sys.stderr, end="", flush=True)
            world.reading(False)
            self.tracker.end_action()
            self.tracker.report(traceback_files(exc))
            wire.send_message(self.sock, BootResult(text.rstrip("\n")).format())
            os._exit(1)
        if os.getpid() != self.pid:
            _end_user_child(None)
        world.reading(False)
        self.tracker.end_action()
        self.tracker.report(pth_files() if identifier == ROOT else ())
        sys.stdout.flush()
        wire.send_message(self.sock, BootResult().format())
        self.serve(identifier)

    # -- protocol step 5 ----------------------------------------------------------------------
    def serve(self, identifier: str) -> None:
        """Answer ``S:`` and ``C:`` and reap children until the master's socket closes; then
        exit. Signals only wake the loop (through the wakeup fd)."""
        assert self.sock is not None
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake = (wake_r, wake_w)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, _wake_only)
        self.learner = learned.Learner()
        learning = self.learner.fileno()
        waited = [self.sock.fileno(), wake_r, *([learning] if learning is not None else [])]
        reader = wire.FrameReader()
        while True:
            # A lesson waits: look again at once (a request still comes first, below).
            busy = self.learner.busy()
            timeout = 0.0 if busy else self.spares.timeout(LAZY_IMPORT_CHECK)
            ready, _, _ = select.select(waited, [], [], timeout)
            if self.sock.fileno() not in ready:  # only when no request waits
                if learning in ready:
                    self.learner.absorb()
                elif busy and self.learner.step():
                    self.spares.discard()  # it lacks what the lesson taught
            if self.tracker.report():
                self.spares.discard()  # it lacks modules imported since (by a thread, a timer)
            # Forked after the lessons (``due`` forgets that it was due: ask it last).
            if not self.learner.busy() and self.spares.due():
                self._fork_spare()
            if wake_r in ready:
                self._reap()
            if self.sock.fileno() in ready:
                self._read_requests(reader, identifier)

    def _receive(self, reader: wire.FrameReader) -> None:
        assert self.sock is not None
        try:
            data, fds = wire.receive(self.sock)
        except wire.ProtocolError:
            return
        except TimeoutError:
            raise  # a bounded wait ran out (_take_handover): not the master's EOF
        except OSError:
            data, fds = b"", []
        reader.feed(data, fds)
        self.inbox.extend(reader.messages())
        if reader.eof:
            os._exit(0)  # the master is gone

    def _read_requests(self, reader: wire.FrameReader, identifier: str) -> None:
        self._receive(reader)
        while self.inbox:
            message = self.inbox.popleft()
            if message.startswith("S:"):
                self.fork_phase(message[2:])
            elif message.startswith("C:"):
                handover = self._take_handover(reader) if "handover" in self.accepted else None
                self.fork_runner(message[2:], handover)
            else:
                print(f"zeus: phase {identifier}: unknown request {message[:40]!r}",
                      file=sys.stderr, flush=True)
        wire.close_fds(reader.fds)  # only hand-overs carry fds to a phase
        reader.fds.clear()

    def _take_handover(self, reader: wire.FrameReader) -> tuple[str, list[int]] | None:
        """The ``H:`` message and the fds that follow ``C:`` under the ``handover`` extension
        (three, or four with the ``stdio`` flag; they are sent together: wait for them,
        bounded)."""
        assert self.sock is not None
        self.sock.settimeout(HANDOVER_TIMEOUT)
        try:
            while not self.inbox:
                self._receive(reader)
            header = self.inbox[0]
            try:
                count = parse_handover(header).header.fd_count
            except wire.ProtocolError:
                return None
            while len(reader.fds) < count:
                self._receive(reader)
        except (TimeoutError, OSError):
            return None
        finally:
            self.sock.settimeout(None)
        self.inbox.popleft()
        fds, reader.fds[:count] = reader.fds[:count], []
        return header[2:], fds

    def _reap(self) -> None:
        """SIGCHLD: reap the child phases, runners and commands that exited; report for a
        command that did not."""
        try:
            while os.read(self.wake[0], 512):
                pass
        except OSError:
            pass
        for pid in list(self.children):
            wait_status = self._reap_child(pid)
            if wait_status is not None:
                self.spares.reaped(pid, wait_status)

    def _reap_child(self, pid: int) -> int | None:
        """The wait status of child ``pid`` if it has exited (it is reaped and forgotten), else
        None."""
        try:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, wait_status = pid, 1 << 8  # reaped elsewhere: report status 1
        if not done:
            return None
        self.children.discard(pid)
        return wait_status

    def fork_runner(self, command: str, handover: tuple[str, list[int]] | None = None) -> None:
        """``C:``: hand the master the runner's socket first; then give it (and the client's
        header and fds, when the master sent them along) to the spare command, or fork a runner
        (the fork overlaps the master's answer)."""
        assert self.sock is not None and self.plan is not None
        # Once the master has the runner's socket, the request must reach the spare or a runner,
        # else the master waits for a command that never registers: a restart's SIGTERM waits
        # until then (the runner is in a session of its own before its mask is reset).
        previous = process.block_termination()
        runner_child = False
        try:
            local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                wire.send_fd(self.sock, remote.fileno())
            finally:
                remote.close()
            work = runner.Work(command, local, handover)
            placed = handover is not None and self.spares.place(work, self._reap_child)
            # The next spare is due SPARE_DELAY after this request (a phase that runs commands
            # keeps one from now on); without a spare, or with one that died, fork a runner.
            self.spares.want()
            if placed:
                return
            runner_child = self._fork() == 0
            if not runner_child:
                work.close()
                return
        finally:
            if not runner_child:
                process.restore_mask(previous)
        plan = self.plan
        self._become_runner(lambda parent: runner.run_runner(plan, work, parent))

    def _fork_spare(self) -> None:
        """Fork the spare command (:meth:`Spares.due` says when), only for a master that sends
        the hand-over along (spare.py)."""
        if self.plan is None or "handover" not in self.accepted:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_r, status_w = os.pipe()
        # Until its setsid the spare is in the phase's process group: a restart's SIGTERM to
        # that group must not end it, for the phase may hand it a request meanwhile (then
        # nobody would report that command; the master would wait COMMAND_START_TIMEOUT).
        pid = self._fork(hold_termination=True)
        if pid:
            theirs.close()
            os.close(status_w)
            os.set_blocking(status_r, False)
            self.spares.keep(Spare(pid, ours, status_r))
            return
        ours.close()
        os.close(status_r)
        plan = self.plan
        self._become_runner(lambda parent: spare.spare_command(plan, theirs, status_w, parent))

    def _become_runner(self, run: Callable[[int], None]) -> NoReturn:
        """In a freshly forked child: shed the phase role (and the bootstrap socket, which only
        phases use) and run ``run(phase pid)``; never returns. It leads a session of its own
        first, so that the signals a restart sends the phase's group never reach it."""
        try:
            os.setsid()
            process.discard_pending_termination()
            parent = self._drop_phase_role()
            self.bootstrap.close()
            run(parent)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)

    def _fork(self, hold_termination: bool = False) -> int:
        """Fork (after the before-fork hooks); 0 in the child. ``hold_termination``: the
        terminating signals are blocked around ``os.fork`` only (not while the hooks, user code,
        run) and stay blocked in the child, until :meth:`_become_runner` drops them."""
        if self.tracker.report():
            self.spares.discard()  # the spare lacks what was just reported
        process.prepare_fork()
        previous = process.block_termination() if hold_termination else None
        self._shim_fork = threading.get_ident()
        pid = -1
        try:
            pid = os.fork()
        finally:
            self._shim_fork = None
            if previous is not None and pid != 0:
                process.restore_mask(previous)
        if pid:
            self.children.add(pid)
        return pid

    def _drop_phase_role(self) -> int:
        """In a child of :meth:`_fork`: reset the signals and close what belongs to this phase
        (:meth:`_release_role`); returns the parent's pid."""
        parent = os.getppid()
        process.reset_signals()
        self._release_role()
        return parent

    def _release_role(self) -> None:
        """Close the phase's fds in a forked child: its stream socket to the master, feature pipe,
        wakeup pipe, and its ends of the spare's and the handed commands' sockets and pipes.
        Idempotent (closed ends are forgotten), so a later fork finds nothing to close."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.tracker.close()
        wire.close_fds([fd for fd in self.wake if fd >= 0])
        self.wake = (-1, -1)
        if self.learner is not None:
            self.learner.close()
            self.learner = None
        self.spares.release()
        self.children = set()
        self.inbox.clear()  # the parent's pending requests are the parent's
        self.holding = False

    def _after_fork_in_child(self) -> None:
        """``os.register_at_fork``: in a child forked by the user's code (a multiprocessing
        worker, a daemon helper, a ``preexec_fn``), let go of the phase's fds and the shim's
        signal wake-up. A helper that kept the phase's socket open would hide the phase's death
        from the master (no EOF) for as long as the helper lives. Children of :meth:`_fork` (the
        shim's own) shed the role in :meth:`_drop_phase_role` instead, and the child phases
        among them keep the bootstrap socket to register with."""
        if not self.holding or self._shim_fork == threading.get_ident():
            return
        try:  # a user's own SIGCHLD handler and wake-up fd stay; the shim's go
            if signal.getsignal(signal.SIGCHLD) is _wake_only:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            if self.wake[1] >= 0:
                previous = signal.set_wakeup_fd(-1)
                if previous not in (-1, self.wake[1]):
                    signal.set_wakeup_fd(previous)
        except ValueError:  # not the main thread (cannot happen in a fresh fork)
            pass
        self._release_role()
        self.bootstrap.close()

    def fork_phase(self, identifier: str) -> None:
        if self._fork():
            return
        try:
            parent = self._drop_phase_role()
            os.setpgid(0, 0)  # its own group: a restart kills the phase and what it started
            process.die_with_parent(parent)
            self.boot(identifier, parent)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(1)


def _end_user_child(exc: BaseException | None) -> NoReturn:
    """A child forked by the phase's action returned into the shim instead of exiting (it fell
    off the end of the action, or raised): end it as the end of a script would, with its exit
    status (``sys.exit``'s, 1 and the traceback for an exception, else 0); never run the phase's
    part, whose fds it let go of (:meth:`PhaseLoop._after_fork_in_child`)."""
    code = 0
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            print(exc.code, file=sys.stderr)
    elif exc is not None:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _wake_only(signum: int, frame: object) -> None:
    """A Python-level handler makes the interpreter write to the wakeup fd; nothing else to do."""


def main(argv: list[str]) -> int:
    """``python -m zeuspy.shim <plan file>``: the root phase, started by ``zeus start``."""
    if len(argv) != 1:
        print("usage: python -m zeuspy.shim PLAN_FILE|MODULE:CLASS (started by `zeus start`)",
              file=sys.stderr)
        return 2
    raw_fd = os.environ.pop(MASTER_FD_ENV, "")
    extensions = os.environ.pop(OFFER_ENV, "") == EXTENSION_VERSION
    world.remember_boot_environment()  # before any plan code: what the user's shell gave us
    world.record_reads()
    hygiene.record_thread_starts()
    if not raw_fd.isdigit():
        print(f"zeuspy.shim: {MASTER_FD_ENV} is not set; this module is run by `zeus start`",
              file=sys.stderr)
        return 2
    bootstrap = socket.socket(fileno=int(raw_fd))
    bootstrap.set_inheritable(False)
    # Phase output goes to the master's log: keep it in order with the master's own lines.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        except AttributeError:
            pass
    process.die_with_parent(os.getppid())
    process.remember_master()
    tracker = Tracker(os.getcwd())
    source = argv[0] if ":" in argv[0] and not os.path.exists(argv[0]) else os.path.abspath(argv[0])
    PhaseLoop(source, None, bootstrap, extensions, tracker).boot(ROOT, 0)
    return 0
