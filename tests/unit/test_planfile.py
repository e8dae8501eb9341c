"""The static check of a Python plan file (parsed, never run)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from zeuspy import config
from zeuspy.errors import ConfigError

TREE = {"boot": {"app": {"test": ["t"], "my-cmd": None}}}


def project(tmp_path: Path, source: str, tree: object = None) -> Path:
    (tmp_path / "zeus.json").write_text(json.dumps({"plan": tree or TREE}))
    (tmp_path / "zeus_plan.py").write_text(textwrap.dedent(source))
    return tmp_path / "zeus.json"


def load_error(tmp_path: Path, source: str, tree: object = None) -> str:
    path = project(tmp_path, source, tree)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = info.value.message
    assert "\n" not in message, f"not one line: {message!r}"
    return message


FULL_BODY = """
    def boot(self): pass
    def app(self): pass
    def test(self, argv): pass
    def my_cmd(self, argv): pass
"""


@pytest.mark.parametrize("header", [
    "import zeuspy\nclass MyPlan(zeuspy.Plan):",
    "from zeuspy import Plan\nclass MyPlan(Plan):",
    "from zeuspy import Plan as Base\nclass MyPlan(Base):",
    "import zeuspy as z\nclass MyPlan(z.Plan):",
    "from zeuspy.plan import Plan\nclass MyPlan(Plan):",
    "import os\nimport zeuspy\nclass MyPlan(zeuspy.Plan, object):",
    # no import at all: `Plan` by name is still recognised
    "class MyPlan(Plan):",
])
def test_plan_class_detected(tmp_path: Path, header: str) -> None:
    loaded = config.load(project(tmp_path, header + FULL_BODY))
    assert loaded.plan_file == tmp_path / "zeus_plan.py"


def test_plan_class_via_dotted_import(tmp_path: Path) -> None:
    source = "import zeuspy.plan\nclass MyPlan(zeuspy.plan.Plan):" + FULL_BODY
    config.load(project(tmp_path, source))


@pytest.mark.parametrize("source", [
    # through another class of the file, methods split between them
    """
    import zeuspy
    class Base(zeuspy.Plan):
        def boot(self): pass
        def app(self): pass
    class MyPlan(Base):
        def test(self, argv): pass
        def my_cmd(self, argv): pass
    """,
    # two levels, and a mixin of the file that is not a plan
    """
    from zeuspy import Plan
    class Mixin:
        def my_cmd(self, argv): pass
    class A(Plan):
        def boot(self): pass
    class B(A):
        async def app(self): pass
    class MyPlan(B, Mixin):
        test = B.app
    """,
])
def test_plan_through_other_classes(tmp_path: Path, source: str) -> None:
    config.load(project(tmp_path, source))


@pytest.mark.parametrize(("missing", "kind", "signature"), [
    ("boot", "phase", "def boot(self):"),
    ("app", "phase", "def app(self):"),
    ("test", "command", "def test(self, argv):"),
    ("my_cmd", "command", "def my_cmd(self, argv):"),
])
def test_missing_method(tmp_path: Path, missing: str, kind: str, signature: str) -> None:
    body = "\n".join(line for line in FULL_BODY.splitlines() if f" {missing}(" not in line)
    message = load_error(tmp_path, "import zeuspy\nclass MyPlan(zeuspy.Plan):" + body + "\n")
    node = "my-cmd" if missing == "my_cmd" else missing
    assert message.startswith(str(tmp_path / "zeus_plan.py"))
    assert f'{kind} "{node}" has no method in plan MyPlan' in message
    assert f"add `{signature}`" in message


def test_method_on_a_non_leaf_base_counts_but_not_on_a_sibling(tmp_path: Path) -> None:
    source = """
    import zeuspy
    class Base(zeuspy.Plan):
        def boot(self): pass
    class MyPlan(Base):
        def app(self): pass
        def test(self, argv): pass
    class Unrelated:
        def my_cmd(self, argv): pass
    """
    assert 'command "my-cmd" has no method in plan MyPlan' in load_error(tmp_path, source)


def test_unknown_external_base_is_trusted(tmp_path: Path) -> None:
    source = """
    import zeuspy
    from myapp.plans import Mixin
    class MyPlan(zeuspy.Plan, Mixin):
        def boot(self): pass
    """
    config.load(project(tmp_path, source))  # app, test, my-cmd may come from Mixin


def test_zeuspy_base_is_resolved_not_trusted(tmp_path: Path) -> None:
    # unlike an unknown base, zeuspy.Plan is imported and inspected: a missing method is reported
    source = "from zeuspy.plan import Plan\nclass P(Plan):\n    def boot(self): pass\n"
    message = load_error(tmp_path, source, {"boot": {"run": None}})
    assert 'command "run" has no method in plan P' in message


def test_several_leaf_plans(tmp_path: Path) -> None:
    source = """
    import zeuspy
    class A(zeuspy.Plan):
        pass
    class B(zeuspy.Plan):
        pass
    class C(A):
        pass
    """
    message = load_error(tmp_path, source)
    assert "defines several plans (B, C)" in message
    assert "keep one subclass of zeuspy.Plan" in message


@pytest.mark.parametrize("source", [
    "",
    "class P:\n    def boot(self): pass\n",
    "from myapp import Base\nclass P(Base):\n    def boot(self): pass\n",
    "import zeuspy\nPlan = zeuspy.Plan\n",
])
def test_no_plan(tmp_path: Path, source: str) -> None:
    message = load_error(tmp_path, source)
    assert message == f"{tmp_path / 'zeus_plan.py'}: defines no subclass of zeuspy.Plan; " \
                      "see docs/plans.md"


def test_syntax_error_has_file_line_column(tmp_path: Path) -> None:
    source = "import zeuspy\n\nclass P(zeuspy.Plan):\n    def boot(self:\n        pass\n"
    message = load_error(tmp_path, source)
    assert message.startswith(f"{tmp_path / 'zeus_plan.py'}:4:")
    line, column = message.split(": syntax error")[0].rsplit(":", 2)[1:]
    assert (line, column.isdigit()) == ("4", True)
    assert "syntax error in the plan file" in message


def test_plan_file_is_not_run(tmp_path: Path) -> None:
    source = "import zeuspy\nraise SystemExit('ran!')\nclass P(zeuspy.Plan):" + FULL_BODY
    config.load(project(tmp_path, source))


@pytest.mark.parametrize("node", ["a.b", "1abc", "é-x.y", "after_fork"])
def test_node_names_not_identifiers(tmp_path: Path, node: str) -> None:
    source = "import zeuspy\nclass P(zeuspy.Plan):\n    def boot(self): pass\n"
    message = load_error(tmp_path, source, {"boot": {node: None}})
    assert message.startswith(str(tmp_path / "zeus.json"))
    assert f'node "{node}" cannot be a plan method name' in message


def test_keyword_node_names_are_refused(tmp_path: Path) -> None:
    source = "import zeuspy\nclass P(zeuspy.Plan):\n    def boot(self): pass\n"
    message = load_error(tmp_path, source, {"boot": {"import": None}})
    assert "def import(" not in message


def test_plan_file_undecodable(tmp_path: Path) -> None:
    project(tmp_path, "")
    (tmp_path / "zeus_plan.py").write_bytes(b"# \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"zeus_plan.py:1:3: the plan file is not UTF-8"):
        config.load(tmp_path / "zeus.json")
