"""``zeus init``: write out the plan zeuspy would use here without one, to edit.

zeus.json gets the built-in plan's tree (Django's when a ``manage.py`` sets
``DJANGO_SETTINGS_MODULE``, else the Python plan's) and zeus_plan.py a subclass of that plan.
Prints ``create`` or ``exists`` per file and never overwrites one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zeuspy.cli.templates import plan_file
from zeuspy.plans import DjangoPlan, PythonPlan, project


def plan_for(root: Path) -> tuple[str, dict[str, Any], str]:
    """(kind, zeus.json content, plan file text) for the project in ``root``."""
    if project.django_settings(root):
        return "Django", {"plan": DjangoPlan.TREE}, plan_file("DjangoPlan")
    return "Python", {"plan": PythonPlan.TREE}, plan_file("PythonPlan")


def main(word: str, args: list[str], config: str | None) -> int:
    parser = argparse.ArgumentParser(
        prog="zeus init",
        description="Write zeus.json and zeus_plan.py for the project in this folder: the "
                    "built-in plan zeuspy uses without them (Django or Python), to edit. Never "
                    "overwrites a file.")
    parser.add_argument("folder", nargs="?", default=".", help="the project folder")
    options = parser.parse_args(args)
    root = Path(options.folder).absolute()
    kind, tree, plan = plan_for(root)
    print(f"zeus: a {kind} project in {root}")
    for name, text in (("zeus.json", json.dumps(tree, indent=2) + "\n"),
                       ("zeus_plan.py", plan)):
        path = root / name
        if path.exists():
            print(f"  exists  {name}")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"  create  {name}")
    print("Now run `zeus start`, then `zeus commands` in another terminal.")
    return 0
