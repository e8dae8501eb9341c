"""The built-in subcommands (``zeus start``, ``init``, ``status`` ...), one module each.

Each module has ``main(args, config) -> int``; :data:`BUILTINS` maps the word to the module.
"""

from __future__ import annotations

import importlib
import sys

from zeuspy.errors import ZeusError

#: word -> module under zeuspy.builtins, and the one-line summary shown by `zeus help`.
BUILTINS: dict[str, tuple[str, str]] = {
    "start": ("start", "start the master: boot the plan's phases and serve commands"),
    "init": ("init", "write zeus.json and zeus_plan.py for this project"),
    "commands": ("listing", "list the commands of the plan and their aliases"),
    "status": ("status", "show the running master's phases (--json for tools)"),
    "restart": ("control", "reboot every phase of the running master"),
    "stop": ("control", "stop the running master"),
}


def run(word: str, args: list[str], config: str | None) -> int:
    module = importlib.import_module(f"zeuspy.builtins.{BUILTINS[word][0]}")
    try:
        return int(module.main(word, args, config))
    except ZeusError as exc:
        message = exc.message if exc.message.startswith("zeus") else f"zeus: {exc.message}"
        print(message, file=sys.stderr)
        return exc.exit_code
