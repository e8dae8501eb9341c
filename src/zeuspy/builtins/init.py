"""``zeus init``: write zeus.json and zeus_plan.py suited to the project found here.

- Django, when a ``manage.py`` sets ``DJANGO_SETTINGS_MODULE``;
- a pytest suite, when tests are found (``tests/``, ``test_*.py``, ``conftest.py``);
- a plain Python package otherwise.

Prints ``create`` or ``exists`` per file and never overwrites one.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from zeuspy.builtins.templates import DJANGO_PLAN, PACKAGE_PLAN, PYTEST_PLAN

SKIP_DIRS = {"tests", "test", "docs", "build", "dist", "examples", "venv", ".venv", "node_modules"}
SETTINGS = re.compile(r"""DJANGO_SETTINGS_MODULE['"]\s*,\s*['"]([\w.]+)['"]""")


def django_settings(root: Path) -> str | None:
    manage = root / "manage.py"
    try:
        found = SETTINGS.search(manage.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return found.group(1) if found else None


def has_tests(root: Path) -> bool:
    if (root / "conftest.py").exists() or (root / "tests").is_dir() or (root / "test").is_dir():
        return True
    if any(root.glob("test_*.py")) or any(root.glob("*_test.py")):
        return True
    try:
        return "[tool.pytest" in (root / "pyproject.toml").read_text(errors="replace")
    except OSError:
        return False


def packages(root: Path) -> list[str]:
    """The project's own top-level packages (src/ layout included) and single modules."""
    found: list[str] = []
    for base in (root / "src", root):
        if not base.is_dir():
            continue
        for entry in sorted(base.iterdir()):
            name = entry.name
            if name.startswith((".", "_")) or name in SKIP_DIRS or not name.isidentifier():
                continue
            if entry.is_dir() and (entry / "__init__.py").exists():
                found.append(name)
    return found


def plan_for(root: Path) -> tuple[str, dict[str, Any], str]:
    """(kind, zeus.json content, plan file text) for the project in ``root``."""
    settings = django_settings(root)
    tree: dict[str, Any]
    if settings:
        tree = {"boot": {"django": {"manage": None, "runserver": None, "shell": ["console"],
                                    "test_environment": {"test": None}}}}
        return "Django", {"plan": tree}, DJANGO_PLAN.replace("@SETTINGS@", settings)
    preload = repr(packages(root))
    if has_tests(root):
        tree = {"boot": {"app": {"run": ["python"], "shell": ["console"],
                                 "test_environment": {"pytest": ["test"]}}}}
        return "pytest", {"plan": tree}, PYTEST_PLAN.replace("@PRELOAD@", preload)
    tree = {"boot": {"app": {"run": ["python"], "shell": ["console"]}}}
    return "Python package", {"plan": tree}, PACKAGE_PLAN.replace("@PRELOAD@", preload)


def main(word: str, args: list[str], config: str | None) -> int:
    parser = argparse.ArgumentParser(
        prog="zeus init",
        description="Write zeus.json and zeus_plan.py for the project in this folder "
                    "(Django, pytest suite or plain package); never overwrites a file.")
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
