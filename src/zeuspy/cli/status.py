"""``zeus status``: the running master's phases, for people (a tree) or tools (``--json``).

Exit status: 0 every phase ready, 1 a phase crashed, 3 no master, 4 phases still booting, 5 a
master runs but does not answer (stopped, or wedged). The JSON schema is documented in
docs/status.md (``"schema": 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import deque
from typing import Any

from zeuspy.cli.query import (
    EXIT_NO_ANSWER,
    NoMaster,
    Unresponsive,
    ask,
    project_root,
    stopped_master,
    unresponsive,
)

EXIT_READY, EXIT_CRASHED, EXIT_NO_MASTER, EXIT_BOOTING = 0, 1, 3, 4
#: The JSON printed when no master answered (docs/status.md).
NO_MASTER_JSON: dict[str, Any] = {"schema": 1, "master": None, "phases": [], "commands": []}
#: The width `zeus status` draws for when stdout is not a terminal: in effect, no limit.
UNLIMITED_WIDTH = 100_000
#: Lines of the log shown by --log.
LOG_LINES = 200


def exit_code(snapshot: dict[str, Any]) -> int:
    states = [p["state"] for p in snapshot["phases"]]
    if "crashed" in states:
        return EXIT_CRASHED
    return EXIT_READY if all(s == "ready" for s in states) else EXIT_BOOTING


def show(snapshot: dict[str, Any], color: bool) -> None:
    """Print the status document as the tree of zeuspy/statusview.py (rich, as the master's chart
    draws it): coloured only on a terminal, never wrapped (tools and pipes get whole lines)."""
    from rich.console import Console

    from zeuspy.statusview import status_view

    # Not on a terminal: no width to fit, so none (a tool reads whole lines).
    console = Console(file=sys.stdout, no_color=not color, highlight=False,
                      force_terminal=color, emoji=False,
                      width=None if sys.stdout.isatty() else UNLIMITED_WIDTH)
    console.print(status_view(snapshot), soft_wrap=True, crop=False)


def show_log(root: Any) -> int:
    path = os.path.join(str(root), ".zeus", "master.log")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = deque(f, maxlen=LOG_LINES)
    except OSError:
        print(f"zeus: no log at {path} (has a master run here?)", file=sys.stderr)
        return 1
    print(f"==> {path} (last {LOG_LINES} lines) <==")
    sys.stdout.write("".join(tail))
    return 0


def show_unresponsive(silent: Unresponsive, as_json: bool) -> int:
    """A master process lives but does not answer: say which and why; exit 5."""
    if as_json:
        print(json.dumps({**NO_MASTER_JSON, "unresponsive": silent.as_json()}))
    else:
        print(silent.message(), file=sys.stderr)
    return EXIT_NO_ANSWER


def main(word: str, args: list[str], config: str | None) -> int:
    parser = argparse.ArgumentParser(
        prog="zeus status",
        description="Show the running master's phases. Exit 0: all ready; 1: a phase crashed; "
                    "3: no master; 4: still booting; 5: a master runs but does not answer "
                    "(stopped, or wedged).")
    parser.add_argument("--json", action="store_true",
                        help="print the state as JSON (schema: docs/status.md)")
    parser.add_argument("--log", action="store_true",
                        help="print the end of the log (.zeus/master.log): phase output, "
                             "restarts, errors")
    options = parser.parse_args(args)
    root = project_root(config)
    if options.log:
        return show_log(root)
    # A stopped master cannot answer: say so now rather than after the query's timeout.
    silent = stopped_master(root)
    if silent is not None:
        return show_unresponsive(silent, options.json)
    try:
        snapshot = ask(root, "status")
    except NoMaster as failure:
        silent = unresponsive(root, failure)
        if silent is not None:
            return show_unresponsive(silent, options.json)
        if options.json:
            print(json.dumps(NO_MASTER_JSON))
        else:
            print(f"zeus: no master is running for {root}; start one with `zeus start`.",
                  file=sys.stderr)
        return EXIT_NO_MASTER
    if options.json:
        print(json.dumps(snapshot, indent=2))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        show(snapshot, color)
    return exit_code(snapshot)
