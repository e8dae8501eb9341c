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
#: Lines of a crashed phase's error shown in the tree.
ERROR_LINES = 6
#: Lines of the log shown by --log.
LOG_LINES = 200
COLORS = {"ready": "32", "booting": "33", "waiting": "34", "crashed": "1;31"}


def exit_code(snapshot: dict[str, Any]) -> int:
    states = [p["state"] for p in snapshot["phases"]]
    if "crashed" in states:
        return EXIT_CRASHED
    return EXIT_READY if all(s == "ready" for s in states) else EXIT_BOOTING


def render(snapshot: dict[str, Any], color: bool) -> str:
    """The tree as text: state, pid and boot time per phase, the start of each error."""
    def paint(text: str, state: str) -> str:
        return f"\033[{COLORS[state]}m{text}\033[0m" if color else text

    phases = snapshot["phases"]
    children: dict[str | None, list[dict[str, Any]]] = {}
    for phase in phases:
        children.setdefault(phase["parent"], []).append(phase)
    width = max(len(p["name"]) + 4 * p["depth"] for p in phases)
    master = snapshot["master"]
    # A zero-config project has no zeus.json to name: say which plan runs instead.
    plan = (f" · built-in {master['builtin']} plan (no zeus.json)" if master.get("builtin")
            else "")
    lines = [f"master pid {master['pid']} · {master['root']}{plan} · watching files by "
             f"{master.get('watcher') or '?'}"]

    def walk(phase: dict[str, Any], prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        name = f"{prefix}{branch}{phase['name']}"
        details = [phase["state"]]
        if phase["pid"]:
            details.append(f"pid {phase['pid']}")
        if phase["boot_seconds"] is not None and phase["state"] == "ready":
            details.append(f"booted in {phase['boot_seconds']:.2f} s")
        if phase.get("blocked_by"):
            details.append(f"waiting for {phase['blocked_by']}")
        lines.append(f"{name.ljust(width + 2)}{paint('  '.join(details), phase['state'])}")
        inner = prefix + ("" if top else ("    " if last else "│   "))
        if phase["error"]:
            error = phase["error"].strip().splitlines()
            if len(error) > ERROR_LINES:  # the start, and the exception itself at the end
                error = [*error[: ERROR_LINES - 2], "...", *error[-2:]]
            for text in error:
                lines.append(f"{inner}    {paint(text, 'crashed')}")
        kids = children.get(phase["name"], [])
        for index, child in enumerate(kids):
            walk(child, inner, index == len(kids) - 1, False)

    for root in children.get(None, []):
        walk(root, "", True, True)
    return "\n".join(lines)


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
        print(render(snapshot, color))
    return exit_code(snapshot)
