"""The plan API is typed for users (PEP 561): mypy checks a plan file against it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PLAN = '''\
import zeuspy
from zeuspy.plans import DjangoPlan, PythonPlan


class Plan(PythonPlan):
    boot_env = ("MODE",)

    def app(self) -> None:
        super().app()
        zeuspy.track("config.yaml")

    def worker(self, argv: list[str]) -> int:
        return len(argv)


class Site(DjangoPlan):
    def boot_default(self, name: str) -> str | None:
        return super().boot_default(name)


@zeuspy.after_fork
def reconnect() -> None:
    pass


wrong: int = Plan().run(["x.py"])
'''


def test_mypy_checks_a_plan_file_against_the_api(tmp_path: Path) -> None:
    plan = tmp_path / "zeus_plan.py"
    plan.write_text(PLAN)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", str(plan)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
    # One error, and the right one: run() returns int | None, which is not an int. Everything
    # else type-checks, which it could not if zeuspy shipped no types (import-untyped errors).
    lines = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(lines) == 1, done.stdout + done.stderr
    wrong = PLAN.splitlines().index('wrong: int = Plan().run(["x.py"])') + 1
    assert f"zeus_plan.py:{wrong}:" in lines[0] and "int | None" in lines[0], lines
