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
from pathlib import Path

from zeuspy import config as config_module
from zeuspy import paths
from zeuspy.config import Config
from zeuspy.errors import ConfigError, ZeusError
from zeuspy.master import watchers
from zeuspy.master.clients import ClientServer
from zeuspy.master.filemonitor import DEFAULT_DELAY, FileMonitor
from zeuspy.master.lock import PidLock, clear_stale_socket
from zeuspy.master.phases import PhaseSupervisor
from zeuspy.master.processes import become_subreaper
from zeuspy.master.status import StatusLines
from zeuspy.master.tree import ProcessTree

log = logging.getLogger("zeuspy.master")

LOG_NAME = "master.log"
#: Exit status per shutdown signal: a requested stop is a success.
EXIT_ON_SIGNAL = {signal.SIGINT: 0, signal.SIGTERM: 0, signal.SIGHUP: 128 + signal.SIGHUP}


def prepare_state_dir(root: Path) -> Path:
    """``.zeus/`` in the project (private, ignored by git); returns the log file's path."""
    state = Path(os.fsdecode(paths.state_dir(os.fsencode(root))))
    state.mkdir(mode=0o700, exist_ok=True)
    ignore = state / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return state / LOG_NAME


class Master:
    """One running master: the tree, the phase supervisor, the client server, the display."""

    def __init__(self, config: Config, log_fd: int, socket_path: str,
                 delay: float = DEFAULT_DELAY, poll: float | None = None) -> None:
        self.config = config
        self.tree = ProcessTree(config)
        self.supervisor = PhaseSupervisor(self.tree, log_fd)
        self.server = ClientServer(self.tree, self.supervisor, socket_path)
        self.status = StatusLines(self.tree)
        self.delay = delay
        self.poll = poll
        self.monitor: FileMonitor | None = None
        self.exit_code = 0
        self._stop = asyncio.Event()
        self._reloading: asyncio.Task[None] | None = None

    def note(self, text: str) -> None:
        """A message of the master's own, for the user and the log."""
        log.info("%s", text)
        self.status.message(text)

    def reload_plan(self, changed: str) -> None:
        """zeus.json or the plan file changed: reboot the whole tree, under the new plan when it
        is valid (a plan of another shape gets a new tree), else keep the running one."""
        name = os.path.basename(changed)
        try:
            config = config_module.load(self.config.path)
        except ConfigError as exc:
            self.note(f"{exc.message} (keeping the running plan until it is fixed)")
            return
        old = self.config
        same_shape = (config.phases, config.commands, config.command) == (
            old.phases, old.commands, old.command)
        self.config = config
        if same_shape:
            self.note(f"{name} changed: restarting every phase")
            self.supervisor.restart_all(f"{name} changed")
            return
        self.note(f"{name} changed the plan: booting the new tree")
        self._reloading = asyncio.ensure_future(self._replace_tree(config, f"{name} changed"))

    async def _replace_tree(self, config: Config, reason: str) -> None:
        tree = ProcessTree(config)
        tree.listeners.append(self.status.on_transition)
        self.tree = tree
        self.server.tree = tree
        if self.monitor is not None:
            self.monitor.replace_tree(tree)
        await self.supervisor.replace_tree(tree, reason)

    def request_stop(self, signum: signal.Signals) -> None:
        log.info("received %s: shutting down", signum.name)
        self.exit_code = EXIT_ON_SIGNAL.get(signum, 0)
        self._stop.set()

    def request_restart(self) -> None:
        log.info("received SIGUSR1: restarting every phase")
        self.status.message("restarting every phase (SIGUSR1)")
        self.supervisor.restart_all("restart requested")

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in EXIT_ON_SIGNAL:
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGUSR1, self.request_restart)
        loop.add_signal_handler(signal.SIGCHLD, self.supervisor.reap)
        become_subreaper()
        self.server.start()
        self.status.message(f"zeus master (pid {os.getpid()}) listening on {self.server.path}")
        watcher = watchers.choose(str(self.config.root), self.poll, self.note)
        self.monitor = FileMonitor(self.tree, watcher, self.supervisor.restart, self.reload_plan,
                                   self.note, self.delay)
        self.monitor.start()
        self.supervisor.on_features = self.monitor.add_features
        self.server.monitor = self.monitor
        self.supervisor.start()
        try:
            await self._stop.wait()
        finally:
            self.status.message("stopping")
            await self.server.close()
            if self.monitor is not None:
                self.monitor.stop()
            await self.supervisor.stop()
            for signum in (*EXIT_ON_SIGNAL, signal.SIGUSR1):
                loop.remove_signal_handler(signum)
        return self.exit_code


def run(config: Config, delay: float = DEFAULT_DELAY, poll: float | None = None) -> int:
    """Run a master for ``config`` until a shutdown signal; the exit status."""
    # Phases run in the project root (their relative paths, the tracking of project files).
    os.chdir(config.root)
    root = os.fsencode(config.root)
    lock = PidLock(os.fsdecode(paths.pid_path(root)))
    lock.acquire()
    try:
        socket_path = os.fsdecode(paths.socket_path(root))
        clear_stale_socket(socket_path)
        log_path = prepare_state_dir(config.root)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
        for warning in config.warnings:
            print(f"zeus: warning: {warning}", file=sys.stderr)
        try:
            return asyncio.run(Master(config, log_fd, socket_path, delay, poll).serve())
        except OSError as exc:
            raise ZeusError(f"zeus: cannot serve on {socket_path}: {exc.strerror or exc}") from None
        finally:
            os.close(log_fd)
            log.removeHandler(handler)
            handler.close()
    finally:
        lock.release()
