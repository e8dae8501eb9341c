"""``zeus restart`` and ``zeus stop``: ask the running master, over its socket (falling back on
signals to the pid in its locked pid file, ``.zeus/master.pid``), and say what happened."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from zeuspy.builtins.query import NoMaster, ask, project_root

#: How long `zeus stop` waits for the master to exit.
STOP_TIMEOUT = 15.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Our own child would linger as a zombie; a detached master is not our child.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return True


def main(word: str, args: list[str], config: str | None) -> int:
    from zeuspy.master.lock import master_pid

    description = ("Reboot every phase of the running master." if word == "restart"
                   else "Stop the running master and everything it started.")
    argparse.ArgumentParser(prog=f"zeus {word}", description=description).parse_args(args)
    root = project_root(config)
    try:
        answer = ask(root, word)
        if "error" in answer:
            print(f"zeus: the master refused `{word}`: {answer['error']}", file=sys.stderr)
            return 1
        pid = int(answer.get("pid", 0))
    except NoMaster:
        pid = master_pid(str(root)) or 0
        if not pid:
            print(f"zeus: no master is running for {root}; start one with `zeus start`.",
                  file=sys.stderr)
            return 1
        os.kill(pid, signal.SIGUSR1 if word == "restart" else signal.SIGTERM)
    if word == "restart":
        print(f"zeus: restarting every phase of the master (pid {pid})")
        return 0
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if master_pid(str(root)) is None and not _alive(pid):
            print(f"zeus: stopped the master (pid {pid})")
            return 0
        time.sleep(0.05)
    print(f"zeus: the master (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s; "
          f"`kill -9 {pid}` ends it", file=sys.stderr)
    return 1
