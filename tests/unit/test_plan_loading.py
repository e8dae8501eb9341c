"""A plan file, checked by the master (parsed, never run) and loaded by the root phase: one table,
and both sides must agree on which class is the plan, or both refuse the file."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from zeuspy import config
from zeuspy.errors import ConfigError
from zeuspy.planfile import PlanLoadError, load_plan

TREE = {"boot": {"hello": None}}
METHODS = """
    def boot(self): pass
    def hello(self, argv): pass
"""

#: name -> (plan file, the class both sides take, or (the check's error, the load's error)).
CASES: dict[str, tuple[str, str | tuple[str, str]]] = {
    "one plan": (f"import zeuspy\nclass P(zeuspy.Plan):{METHODS}", "P"),
    "from-import": (f"from zeuspy import Plan\nclass P(Plan):{METHODS}", "P"),
    "leaf of a chain": (
        f"import zeuspy\nclass Base(zeuspy.Plan):{METHODS}\nclass Mine(Base):\n    pass\n",
        "Mine"),
    "a built-in plan extended": (
        "from zeuspy.plans import PythonPlan\nclass Mine(PythonPlan):\n"
        "    def hello(self, argv): pass\n", "Mine"),
    "helpers beside the plan": (
        f"import zeuspy\nclass Helper:\n    pass\nclass P(zeuspy.Plan):{METHODS}", "P"),
    "no plan": ("class P:\n    pass\n", ("defines no subclass of zeuspy.Plan", "found none")),
    "two plans": (
        f"import zeuspy\nclass A(zeuspy.Plan):{METHODS}\nclass B(zeuspy.Plan):{METHODS}",
        ("defines several plans (A, B)", "found A, B")),
}


@pytest.fixture
def clean_modules() -> Iterator[None]:
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.modules.pop("zeus_plan", None)


@pytest.mark.parametrize("name", list(CASES))
def test_check_and_load_agree(name: str, tmp_path: Path, clean_modules: None) -> None:
    source, expected = CASES[name]
    tree = TREE if "built-in" not in name else {"boot": {"app": {"hello": None}}}
    (tmp_path / "zeus.json").write_text(json.dumps({"plan": tree}))
    plan_file = tmp_path / "zeus_plan.py"
    plan_file.write_text(textwrap.dedent(source))
    if isinstance(expected, str):
        config.load(tmp_path / "zeus.json")  # the master's check passes
        assert type(load_plan(str(plan_file))).__name__ == expected
        return
    check_error, load_error = expected
    with pytest.raises(ConfigError, match=re.escape(check_error)):
        config.load(tmp_path / "zeus.json")
    with pytest.raises(PlanLoadError, match=load_error):
        load_plan(str(plan_file))


def test_a_builtin_plan_loads_by_module_and_class() -> None:
    assert type(load_plan("zeuspy.plans.python:PythonPlan")).__name__ == "PythonPlan"
    with pytest.raises(PlanLoadError, match=re.escape("not a subclass of zeuspy.Plan")):
        load_plan("zeuspy.plans.python:Path")
