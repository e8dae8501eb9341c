"""``zeus start``: run the master in this terminal, or in the background with ``--detach``."""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from zeuspy import config as config_module
from zeuspy import launcher
from zeuspy.errors import ZeusError

#: How long `--detach` waits for the background master to listen.
DETACH_TIMEOUT = 30.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zeus start",
        description="Start the master: boot the plan's phases, keep them warm, serve "
                    "`zeus COMMAND` and restart phases whose files change.")
    p.add_argument("--config", metavar="PATH", help="the zeus.json to use")
    p.add_argument("--detach", action="store_true",
                   help="run in the background (output in .zeus/master.log); return once it "
                        "listens")
    p.add_argument("--file-change-delay", type=float, default=0.3, metavar="SECONDS",
                   help="gather file changes this long before restarting phases (default 0.3)")
    p.add_argument("--poll", type=float, nargs="?", const=1.0, default=None, metavar="SECONDS",
                   help="watch files by polling every SECONDS (default 1) instead of OS events")
    p.add_argument("--simple-status", action="store_true",
                   help="one plain line per change instead of the live chart")
    p.add_argument("--no-color", action="store_true",
                   help="no colours (also when NO_COLOR is set)")
    p.add_argument("--log", metavar="FILE",
                   help="append a trace of every phase state transition, with times, to FILE")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help=argparse.SUPPRESS)
    return p


#: Longest --file-change-delay or --poll interval accepted (an hour: longer is a typo).
MAX_DELAY = 3600.0


def main(word: str, args: list[str], config: str | None) -> int:
    options = parser().parse_args(args)
    for name, value, low in (("--file-change-delay", options.file_change_delay, 0.0),
                             ("--poll", options.poll, 0.0)):
        # nan and inf parse as floats; a watcher thread would die on them later, in a traceback.
        if value is not None and not (math.isfinite(value) and low <= value <= MAX_DELAY
                                      and (name != "--poll" or value > 0)):
            parser().error(f"{name} must be a number of seconds from 0 to {MAX_DELAY:g}"
                           + (" (above 0)" if name == "--poll" else ""))
    # Once per installation in effect: every later client call saves the exec of /bin/sh.
    launcher.make_fast(sys.argv[0])
    chosen = options.config or config
    plan = config_module.load(Path(chosen)) if chosen else config_module.discover()
    foreign = foreign_environment(plan.root)
    if foreign is not None:
        print(foreign, file=sys.stderr)
    if options.detach:
        return detach(plan, args)
    from zeuspy.master import app

    trace = app.TransitionTrace(options.log) if options.log else None
    return app.run(plan, app.MasterOptions(
        delay=options.file_change_delay,
        poll=options.poll,
        chart=not options.simple_status,
        color=not options.no_color and not os.environ.get("NO_COLOR"),
        trace=trace,
        idle_timeout=options.idle_timeout,
    ))


#: Where pipx and `uv tool install` keep the environments of the tools they install.
TOOL_ENVIRONMENTS = ("/pipx/venvs/", "/uv/tools/")


def foreign_environment(root: Path) -> str | None:
    """One line (what, why it matters, what to do) when this zeus runs on another Python
    environment than the project's: the active virtualenv (``VIRTUAL_ENV``), else a
    ``.venv``/``venv`` in the project, else any environment pipx or ``uv tool`` made. The phases
    import the project's packages from the environment zeus runs on; None when they are one."""
    here = os.path.realpath(sys.prefix)
    active = os.environ.get("VIRTUAL_ENV")
    found = [active] if active else [str(root / name) for name in (".venv", "venv")
                                     if (root / name / "pyvenv.cfg").is_file()]
    for env in found:
        if os.path.realpath(env) != here:
            return (f"zeus: warning: zeus runs on {sys.prefix}, not on the project's environment "
                    f"{env}, so the phases cannot import what is installed there; install zeuspy "
                    f"in it ({env}/bin/python -m pip install zeuspy) and run {env}/bin/zeus")
    if not found and any(mark in here + "/" for mark in TOOL_ENVIRONMENTS):
        return (f"zeus: warning: zeus runs on {sys.prefix}, an environment of its own (pipx or "
                "uv tool), where the project's packages are not installed; install zeuspy in "
                "the project's environment (python -m pip install zeuspy) and run its zeus")
    return None


def detach(plan: config_module.Config, args: list[str]) -> int:
    """Start ``zeus start`` in a new session, its output appended to .zeus/master.log; return
    once it listens (or explain why it did not)."""
    from zeuspy.cli.query import NoMaster, ask
    from zeuspy.master.app import prepare_state_dir
    from zeuspy.master.lock import master_pid

    other = master_pid(str(plan.root))
    if other is not None:
        raise ZeusError(f"zeus: a master is already running for {plan.root} (pid {other}); "
                        "use it, or stop it first with `zeus stop`")
    log_path = prepare_state_dir(plan.root)
    forwarded = [a for a in args if a != "--detach"]
    # The background master runs in the project root: make a relative --log mean the same there.
    for index, arg in enumerate(forwarded):
        if arg == "--log" and index + 1 < len(forwarded):
            forwarded[index + 1] = os.path.abspath(forwarded[index + 1])
        elif arg.startswith("--log="):
            forwarded[index] = "--log=" + os.path.abspath(arg.partition("=")[2])
    if plan.idle_timeout is not None and "--idle-timeout" not in forwarded:
        forwarded += ["--idle-timeout", str(plan.idle_timeout)]
    # A built-in plan has no zeus.json to name: the master finds the project from its cwd.
    chosen = [] if plan.builtin else ["--config", str(plan.path)]
    command = [sys.executable, "-m", "zeuspy", "start", *chosen, "--simple-status", *forwarded]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, cwd=plan.root, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True)
    deadline = time.monotonic() + DETACH_TIMEOUT
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            raise ZeusError(f"zeus: the background master exited with status {code}; see "
                            f"{log_path}")
        try:
            answer = ask(plan.root, "status")
        except NoMaster:
            time.sleep(0.05)
            continue
        if (answer.get("master") or {}).get("pid") != child.pid:
            time.sleep(0.05)  # another master answered; ours will exit (see the log)
            continue
        print(f"zeus: master started in the background (pid {child.pid}); log: {log_path}")
        return 0
    raise ZeusError(f"zeus: the background master (pid {child.pid}) did not listen within "
                    f"{DETACH_TIMEOUT:.0f} s; see {log_path}")
