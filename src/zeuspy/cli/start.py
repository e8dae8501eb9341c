"""``zeus start``: run the master in this terminal, or in the background with ``--detach``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from zeuspy import config as config_module
from zeuspy import launcher, settings
from zeuspy.errors import ZeusError

#: How long `--detach` waits for the background master to listen.
DETACH_TIMEOUT = 30.0


def parser() -> argparse.ArgumentParser:
    """``zeus start``'s flags: ``--config``, ``--detach``, and one per setting that has a flag
    (zeuspy/settings.py)."""
    p = argparse.ArgumentParser(
        prog="zeus start",
        description="Start the master: boot the plan's phases, keep them warm, serve "
                    "`zeus COMMAND` and restart phases whose files change.",
        epilog="Every setting may also be given in zeus.json or in [tool.zeus] of "
               "pyproject.toml; a flag wins over both (README, Settings).")
    p.add_argument("--config", metavar="PATH", help="the zeus.json to use")
    p.add_argument("--detach", action="store_true",
                   help="run in the background (output in .zeus/master.log); return once it "
                        "listens")
    for setting in settings.SETTINGS:
        if setting.flag is None:
            continue
        words = argparse.SUPPRESS if setting.hidden else setting.doc + (
            f" (default {setting.default:g})" if isinstance(setting.default, float) else "")
        if setting.flag_type is None:
            p.add_argument(setting.flag, dest=setting.name, action="store_true", default=None,
                           help=words)
        elif setting.const is not None:  # `--poll` alone means `--poll 1`
            p.add_argument(setting.flag, dest=setting.name, type=setting.flag_type,
                           metavar=setting.metavar, default=None, help=words, nargs="?",
                           const=setting.const)
        else:
            p.add_argument(setting.flag, dest=setting.name, type=setting.flag_type,
                           metavar=setting.metavar, default=None, help=words)
    return p


def resolve(options: argparse.Namespace, plan: config_module.Config) -> dict[str, object]:
    """Each setting's value for this master: its flag, else its environment variable, else
    zeus.json or [tool.zeus] (``plan.settings``), else its default. ``idle_timeout`` is the
    flag's only: `--detach` passes the plan's on to the background master it starts, and a
    master in the foreground never stops by itself."""
    values: dict[str, object] = {}
    for setting in settings.SETTINGS:
        given = getattr(options, setting.name, None)
        try:
            if given is not None:
                values[setting.name] = setting.parse(given)
                continue
            from_env = settings.from_env(setting, os.environ)
        except settings.SettingError as exc:
            where = setting.flag if given is not None else setting.env
            parser().error(f"{where} {exc}")
        if setting.name == "idle_timeout":
            values[setting.name] = None
        elif from_env is not None:
            values[setting.name] = from_env
        else:
            values[setting.name] = plan.settings.get(setting.name, setting.default)
    return values


def main(word: str, args: list[str], config: str | None) -> int:
    options = parser().parse_args(args)
    # Once per installation in effect: every later client call saves 3-5 ms (launcher.py).
    launcher.make_fast(sys.argv[0])
    chosen = options.config or config
    plan = config_module.load(Path(chosen)) if chosen else config_module.discover()
    values = resolve(options, plan)
    foreign = foreign_environment(plan.root)
    if foreign is not None:
        print(foreign, file=sys.stderr)
    if options.detach:
        return detach(plan, args)
    from zeuspy.master import app

    log = values["log"]
    return app.run(plan, app.MasterOptions(
        delay=float(values["file_change_delay"]),  # type: ignore[arg-type]
        poll=values["poll"],  # type: ignore[arg-type]
        chart=not values["simple_status"],
        color=not values["no_color"],
        trace=app.TransitionTrace(str(log)) if log else None,
        idle_timeout=options.idle_timeout,
        learn_imports=values["learn_imports"] is not False,
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
