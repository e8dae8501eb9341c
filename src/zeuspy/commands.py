"""The built-in subcommands that talk to the master process rather than through it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from zeuspy import config as config_module
from zeuspy import paths
from zeuspy.errors import ZeusError

#: How long `zeus stop` waits for the master to exit before saying so.
STOP_TIMEOUT = 15.0


def _project_root(config: str | None) -> Path:
    if config:
        return Path(config).absolute().parent
    return Path(os.fsdecode(paths.project_root()))


def run_builtin(word: str, args: list[str], config: str | None) -> int:
    try:
        if word == "start":
            return start(args, config)
        if word in ("restart", "stop"):
            parser = argparse.ArgumentParser(prog=f"zeus {word}")
            parser.parse_args(args)
            return signal_master(word, _project_root(config))
    except ZeusError as exc:
        message = exc.message if exc.message.startswith("zeus") else f"zeus: {exc.message}"
        print(message, file=sys.stderr)
        return exc.exit_code
    raise AssertionError(word)


def start(args: list[str], config: str | None) -> int:
    parser = argparse.ArgumentParser(
        prog="zeus start",
        description="Start the master: boot the plan's phases and serve `zeus COMMAND`.",
    )
    parser.add_argument("--config", default=config, help="the zeus.json to use")
    parser.add_argument(
        "--file-change-delay", type=float, default=0.3, metavar="SECONDS",
        help="gather file changes this long before restarting phases (default 0.3)")
    parser.add_argument(
        "--poll", type=float, nargs="?", const=1.0, default=None, metavar="SECONDS",
        help="watch files by polling every SECONDS (default 1) instead of OS events")
    options = parser.parse_args(args)
    if options.file_change_delay < 0 or (options.poll is not None and options.poll <= 0):
        parser.error("delays must be positive")
    path = Path(options.config) if options.config else config_module.find_config()
    plan = config_module.load(path)
    from zeuspy.master import app

    return app.run(plan, app.MasterOptions(delay=options.file_change_delay, poll=options.poll))


def signal_master(word: str, root: Path) -> int:
    from zeuspy.master.lock import running_master

    pid = running_master(os.fsdecode(paths.pid_path(os.fsencode(root))))
    if pid is None:
        print(f"zeus: no master is running for {root}. Start one with `zeus start`.",
              file=sys.stderr)
        return 1
    if word == "restart":
        os.kill(pid, signal.SIGUSR1)
        print(f"zeus: asked the master (pid {pid}) to restart every phase")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    pid_file = os.fsdecode(paths.pid_path(os.fsencode(root)))
    while time.monotonic() < deadline:
        if running_master(pid_file) is None:
            print(f"zeus: stopped the master (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"zeus: the master (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s", file=sys.stderr)
    return 1
