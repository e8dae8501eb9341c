"""``zeus commands``: the commands of the plan, their aliases and their phases."""

from __future__ import annotations

import argparse
from pathlib import Path

from zeuspy import config as config_module


def main(word: str, args: list[str], config: str | None) -> int:
    parser = argparse.ArgumentParser(prog="zeus commands",
                                     description="List the commands of the plan.")
    parser.parse_args(args)
    plan = config_module.load(Path(config)) if config else config_module.discover()
    width = max((len(name) for name in plan.commands), default=0)
    for name, spec in plan.commands.items():
        aliases = f"  (alias: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"{name.ljust(width)}  in {spec.phase}{aliases}")
    return 0
