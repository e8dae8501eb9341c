"""``zeus start``: wire the master together, run it, tear it down in reverse order.

Start-up: pid lock -> log -> socket -> root phase. Teardown (SIGINT, SIGTERM, SIGHUP): stop
accepting and end client sessions (their commands get SIGHUP, then SIGKILL) -> kill every phase
(SIGTERM, then SIGKILL) and reap -> remove the socket and the pid file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zeuspy import __version__, paths
from zeuspy import config as config_module
from zeuspy.config import Config
from zeuspy.errors import ConfigError, ZeusError
from zeuspy.master import statefiles, watchers
from zeuspy.master.display import LiveChart, StatusLines
from zeuspy.master.filemonitor import DEFAULT_DELAY, FileMonitor
from zeuspy.master.kills import become_subreaper
from zeuspy.master.lock import PidLock, clear_stale_socket, ensure_private_dir
from zeuspy.master.phases import PhaseSupervisor
from zeuspy.master.server import ClientServer
from zeuspy.master.tree import ProcessTree

log = logging.getLogger(__name__)
#: The logger every master module logs under (each as ``getLogger(__name__)``): .zeus/master.log.
MASTER_LOG = logging.getLogger("zeuspy.master")

LOG_NAME = "master.log"
#: How often a master with an idle timeout checks whether it has been idle long enough.
IDLE_CHECK = 1.0
#: Exit status per shutdown signal: a requested stop is a success.
EXIT_ON_SIGNAL = {signal.SIGINT: 0, signal.SIGTERM: 0, signal.SIGHUP: 128 + signal.SIGHUP}


def prepare_state_dir(root: Path) -> Path:
    """``.zeus/`` in the project (private, ignored by git); returns the log file's path. Neither
    the folder nor a file in it is followed if it is a symlink, and each must be of its type
    (master/statefiles.py): else a one-line :class:`~zeuspy.errors.ZeusError`."""
    return Path(statefiles.prepare(str(root)))


STATUS_SCHEMA = 1


def plan_source(config: Config) -> dict[str, str | None]:
    """Where the running plan comes from, for ``zeus status``: ``config``, the path of zeus.json
    (None when there is none: a built-in plan, or zeus.json removed since it was read), and
    ``builtin``, the built-in plan's name ("python", "django") or None."""
    exists = config.builtin is None and config.path.is_file()
    return {"config": str(config.path) if exists else None, "builtin": config.builtin}


class TransitionTrace:
    """``zeus start --log FILE``: one line per state transition, with wall and boot times."""

    def __init__(self, path: str) -> None:
        """Raises :class:`~zeuspy.errors.UsageError` (one line) when ``path`` cannot be opened
        for appending (a folder, a missing folder, no permission)."""
        from zeuspy.errors import UsageError

        try:
            self.file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"{path}: cannot open the --log file: {exc.strerror or exc}") \
                from None
        self.path = path

    def on_transition(self, phase: Any, old: Any, new: Any) -> None:
        if self.file.closed:
            return
        took = f" ({phase.boot_seconds:.3f} s)" if new.value == "ready" else ""
        # One clock read for seconds and milliseconds: two reads could straddle a second and
        # stamp a line a second earlier than the one before it.
        now = time.time()
        millis = int(now % 1 * 1000)
        try:
            self.file.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(now))}"
                            f".{millis:03d} {phase.name} {old.value} -> {new.value}{took}\n")
        except OSError as exc:  # a full disk ends the trace, never the master
            log.warning("stopped writing the --log trace to %s: %s", self.path, exc)
            try:
                self.file.close()
            except OSError:
                pass


@dataclass
class MasterOptions:
    """How ``zeus start`` was asked to run."""

    delay: float = DEFAULT_DELAY
    poll: float | None = None
    chart: bool = True
    color: bool = True
    trace: TransitionTrace | None = None
    idle_timeout: float | None = None
    #: Phases import the library modules their commands imported (shim/learned.py).
    learn_imports: bool = True


class Master:
    """One running master: the tree, the phase supervisor, the client server, the display."""

    def __init__(self, config: Config, log_fd: int, socket_path: str,
                 options: MasterOptions | None = None) -> None:
        options = options or MasterOptions()
        self.options = options
        self.config = config
        self.tree = ProcessTree(config)
        self.supervisor = PhaseSupervisor(self.tree, log_fd, learn_imports=options.learn_imports)
        self.server = ClientServer(self.tree, self.supervisor, socket_path)
        self.server.on_query = self.query
        self.supervisor.on_reaped = self.server.command_reaped
        self.started = time.time()
        self.monitor: FileMonitor | None = None
        self.status: StatusLines | LiveChart
        if options.chart and sys.stdout.isatty():
            self.status = LiveChart(self.tree, self.status_document, f"zeus · {config.root}",
                                    color=options.color)
        else:
            self.status = StatusLines(self.tree)
        if options.trace is not None:
            self.tree.listeners.append(options.trace.on_transition)
        delay, poll = options.delay, options.poll
        self.delay = delay
        self.poll = poll
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None

    def note(self, text: str) -> None:
        """A message of the master's own, for the user and the log."""
        log.info("%s", text)
        self.status.message(text)

    def reload_plan(self, changed: str) -> bool:
        """zeus.json or the plan file changed: reboot the whole tree, under the new plan when it
        is valid (a plan of another shape gets a new tree), else keep the running one. True when
        the tree restarts."""
        name = os.path.basename(changed)
        try:
            config = config_module.reload(self.config)
        except ConfigError as exc:
            self.note(f"{exc.message} (keeping the running plan until it is fixed)")
            return False
        if self.monitor is not None:
            self.monitor.watch_plan(config)
        old = self.config
        same_shape = (config.phases, config.commands, config.command) == (
            old.phases, old.commands, old.command)
        self.config = config
        if same_shape:
            self.note(f"{name} changed: restarting every phase")
            self.supervisor.restart_all(f"{name} changed")
            return True
        self.note(f"{name} changed the plan: booting the new tree")
        self._reloading = asyncio.ensure_future(self._rebuild_tree(config, f"{name} changed"))
        return True

    async def _rebuild_tree(self, config: Config, reason: str) -> None:
        """A plan of another shape: the one tree takes its phases (everyone holds that tree),
        and the files the old phases loaded are forgotten."""
        if self.monitor is not None:
            self.monitor.forget_owners()
        await self.supervisor.rebuild_tree(config, reason)

    def request_stop(self, signum: signal.Signals) -> None:
        log.info("received %s: shutting down", signum.name)
        self.exit_code = EXIT_ON_SIGNAL.get(signum, 0)
        self._stop.set()

    def request_restart(self, why: str = "SIGUSR1") -> None:
        log.info("restarting every phase (%s)", why)
        self.status.message(f"restarting every phase ({why})")
        self.supervisor.restart_all("restart requested")

    def query(self, request: str) -> dict[str, Any]:
        """A question of ``zeus status`` / ``restart`` / ``stop``, asked on the socket."""
        if request == "restart":
            self.request_restart("zeus restart")
            return {"ok": True, "pid": os.getpid()}
        if request == "stop":
            self.request_stop(signal.SIGTERM)
            return {"ok": True, "pid": os.getpid()}
        return self.status_document()

    def status_document(self) -> dict[str, Any]:
        """The status document (docs/status.md): what `zeus status` gets, and what the live
        chart draws; built here only."""
        snapshot = self.tree.snapshot()
        snapshot.update({
            "schema": STATUS_SCHEMA,
            "master": {"pid": os.getpid(), "root": str(self.config.root),
                       **plan_source(self.config), "socket": self.server.path,
                       "version": __version__, "started": self.started,
                       "watcher": self.monitor.watcher.name if self.monitor else None},
        })
        return snapshot

    async def _idle_watch(self, timeout: float) -> None:
        """Stop after ``timeout`` seconds without a command (a detached master's option)."""
        while True:
            await asyncio.sleep(min(IDLE_CHECK, timeout))
            idle = time.monotonic() - self.server.last_activity
            if not self.server.requests and idle >= timeout:
                self.note(f"no command for {timeout:g} s: stopping (idle_timeout)")
                self.request_stop(signal.SIGTERM)
                return

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in EXIT_ON_SIGNAL:
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGUSR1, self.request_restart)
        loop.add_signal_handler(signal.SIGCHLD, self.supervisor.reap)
        loop.add_signal_handler(signal.SIGWINCH, self.status_resized)
        become_subreaper()
        idle = None
        try:  # whatever fails while starting, the teardown below still runs
            self.server.start()
            self.status.message(
                f"zeus master (pid {os.getpid()}) listening on {self.server.path}")
            watcher = watchers.choose(str(self.config.root), self.poll, self.note)
            self.monitor = FileMonitor(self.tree, watcher, self.supervisor.restart,
                                       self.reload_plan, self.note, self.delay)
            self.monitor.start()
            self.supervisor.on_features = self.monitor.add_features
            self.server.monitor = self.monitor
            self.supervisor.start()
            if self.options.idle_timeout:
                idle = asyncio.ensure_future(self._idle_watch(self.options.idle_timeout))
            await self._stop.wait()
        finally:
            self.status.message("stopping")
            await self.server.close()
            if self.monitor is not None:
                self.monitor.stop()
            await self.supervisor.stop()
            if idle is not None:
                idle.cancel()
            for signum in (*EXIT_ON_SIGNAL, signal.SIGUSR1, signal.SIGWINCH):
                loop.remove_signal_handler(signum)
            self.status.close()
        return self.exit_code

    def status_resized(self) -> None:
        if isinstance(self.status, LiveChart):
            self.status.redraw()


def run(config: Config, options: MasterOptions | None = None) -> int:
    """Run a master for ``config`` until a shutdown signal; the exit status."""
    # Phases run in the project root (their relative paths, the tracking of project files).
    os.chdir(config.root)
    root = os.fsencode(config.root)
    lock = PidLock(os.fsdecode(paths.pid_path(root)))
    lock.acquire()
    try:
        socket_path = os.fsdecode(paths.socket_path(root))
        if socket_path.startswith(os.fsdecode(paths.runtime_dir()) + "/"):
            ensure_private_dir(socket_path)  # ours alone, as clients check (paths.py)
        clear_stale_socket(socket_path)
        prepare_state_dir(config.root)
        log_fd = statefiles.open_log(str(config.root))  # never through a symlink
        # The handler writes on our own fd, not by path (a path could be swapped for a link).
        log_stream = open(os.dup(log_fd), "a", encoding="utf-8", errors="replace")  # noqa: SIM115
        handler = logging.StreamHandler(log_stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        MASTER_LOG.addHandler(handler)
        MASTER_LOG.setLevel(logging.DEBUG)
        for warning in config.warnings:
            print(f"zeus: warning: {warning}", file=sys.stderr)
        try:
            return asyncio.run(Master(config, log_fd, socket_path, options).serve())
        except OSError as exc:
            raise ZeusError(f"zeus: cannot serve on {socket_path}: {exc.strerror or exc}") from None
        finally:
            os.close(log_fd)
            MASTER_LOG.removeHandler(handler)
            handler.close()
            log_stream.close()
    finally:
        lock.release()
