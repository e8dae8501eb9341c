"""``zeus restart`` and ``zeus stop``: ask the running master, over its socket (falling back on
signals to the pid in its locked pid file, ``.zeus/master.pid``), and say what happened.

A master that cannot answer is named, not taken for absent (docs/architecture.md, Trust,
Liveness). ``restart`` leaves a stopped (^Z, SIGSTOP) or wedged master as it is and exits 5
(:data:`~zeuspy.cli.query.EXIT_NO_ANSWER`). ``stop`` stops it anyway: a stopped master gets
SIGCONT then SIGTERM, a silent one SIGTERM, and either SIGKILL if it has not exited
:data:`STOP_TIMEOUT` seconds later.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from zeuspy import masterstate, procs
from zeuspy.cli.query import (
    EXIT_NO_ANSWER,
    QUERY_TIMEOUT,
    NoMaster,
    Unresponsive,
    ask,
    project_root,
    stopped_master,
    unresponsive,
)

#: How long `zeus stop` waits for the master to exit once asked (or sent SIGTERM): its own
#: teardown takes at most about 3 s (phases: SIGTERM, SIGKILL after 1 s, 1 s more; commands:
#: SIGHUP, SIGKILL after 0.5 s).
STOP_TIMEOUT = 15.0
#: How long `zeus stop` waits after SIGKILL, its last resort, before giving up.
KILL_TIMEOUT = 2.0
#: How often `zeus stop` looks whether the master is gone.
POLL_INTERVAL = 0.05


def _gone(root: Path, pid: int) -> bool:
    """The master ``pid`` exited: its pid file's lock is free and the process is gone (or a
    zombie: a master started by our caller lingers as one until it is reaped)."""
    holder = masterstate.master_state(os.fsencode(root))
    if holder.state in (procs.RUNNING, procs.STOPPED) and holder.pid == pid:
        return False
    return procs.process_state(pid) in (procs.GONE, procs.ZOMBIE)


def _wait_gone(root: Path, pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the master to exit; continue it whenever it is
    stopped again meanwhile (say, by SIGTTOU for touching its terminal from the background,
    where its shell left it after ^Z): a stopped process never gets to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(root, pid):
            return True
        if procs.process_state(pid) == procs.STOPPED:
            _signal(pid, signal.SIGCONT)
        time.sleep(POLL_INTERVAL)
    return _gone(root, pid)


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # gone already: the wait that follows sees it


def _stop_silent(root: Path, silent: Unresponsive) -> int:
    """Stop a master that cannot answer by signals: a stopped one is continued first, so that it
    acts on SIGTERM (a stopped process only keeps it pending); one whose socket is gone gets
    SIGTERM, which does what ``Q:stop`` would."""
    pid = silent.pid
    if silent.reason == "stopped":
        print(f"zeus: the master (pid {pid}) was stopped (^Z or SIGSTOP): continuing it "
              "(SIGCONT) to stop it (SIGTERM)", file=sys.stderr)
        _signal(pid, signal.SIGCONT)
    elif silent.reason == "no answer":
        print(f"zeus: the master (pid {pid}) did not answer within {QUERY_TIMEOUT:g} s: "
              "sending it SIGTERM", file=sys.stderr)
    _signal(pid, signal.SIGTERM)
    return _wait_stopped(root, pid)


def _wait_stopped(root: Path, pid: int) -> int:
    """Wait for the master to exit; SIGKILL it after :data:`STOP_TIMEOUT` seconds."""
    if _wait_gone(root, pid, STOP_TIMEOUT):
        print(f"zeus: stopped the master (pid {pid})")
        return 0
    print(f"zeus: the master (pid {pid}) did not stop within {STOP_TIMEOUT:g} s: killing it "
          "(SIGKILL; its phases die with it)", file=sys.stderr)
    _signal(pid, signal.SIGKILL)
    if _wait_gone(root, pid, KILL_TIMEOUT):
        print(f"zeus: stopped the master (pid {pid}), by SIGKILL")
        return 0
    print(f"zeus: the master (pid {pid}) is still alive {KILL_TIMEOUT:g} s after SIGKILL",
          file=sys.stderr)
    return 1


def main(word: str, args: list[str], config: str | None) -> int:
    description = ("Reboot every phase of the running master." if word == "restart"
                   else "Stop the running master and everything it started.")
    argparse.ArgumentParser(prog=f"zeus {word}", description=description).parse_args(args)
    root = project_root(config)
    # A stopped master cannot answer: do not wait for the query's timeout to say so.
    silent = stopped_master(root)
    if silent is None:
        try:
            answer = ask(root, word)
        except NoMaster as failure:
            silent = unresponsive(root, failure)
            if silent is None:
                print(f"zeus: no master is running for {root}; start one with `zeus start`.",
                      file=sys.stderr)
                return 1
        else:
            if "error" in answer:
                print(f"zeus: the master refused `{word}`: {answer['error']}", file=sys.stderr)
                return 1
            pid = int(answer.get("pid", 0))
            if word == "restart":
                print(f"zeus: restarting every phase of the master (pid {pid})")
                return 0
            return _wait_stopped(root, pid)
    if word == "stop":
        return _stop_silent(root, silent)
    if silent.reason != "not listening":
        print(silent.message(), file=sys.stderr)
        return EXIT_NO_ANSWER
    # It runs but its socket is gone (removed by hand, say): the signal does what Q: would.
    _signal(silent.pid, signal.SIGUSR1)
    print(f"zeus: restarting every phase of the master (pid {silent.pid})")
    return 0
