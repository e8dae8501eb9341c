"""A pytest project for tests/e2e/test_pytest_plan.py: a pyproject.toml (no zeus.json, so the
built-in Python plan runs), a package of its own, a root conftest.py with a fixture and hooks, a
tests/conftest.py with fixtures of every scope, and tests whose outcomes cover what pytest
reports (passed, failed, error, skipped, xfailed, xpassed, warnings).

It uses no third-party plugin (pytest-timeout, hypothesis and pytest-django are installed in the
venv: they load, but nothing here configures or uses them).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

#: Printed by a passing test (captured, so hidden) and by a failing one (shown in its report).
PASS_MARK = "CAPTURED-PASS-MARKER"
FAIL_MARK = "CAPTURED-FAIL-MARKER"
#: The root conftest.py's pytest_report_header line.
HEADER_MARK = "fixture-project: root conftest loaded"

#: The outcome counts of a full run (no arguments), as pytest's summary line gives them.
FULL_COUNTS = {"failed": 5, "passed": 48, "skipped": 5, "xfailed": 2, "xpassed": 1, "errors": 1,
               "warnings": 1}

FILES: dict[str, str] = {
    "pyproject.toml": """
        [project]
        name = "fixtureproj"
        version = "0.1"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        markers = ["slow: a slow test (fixture project)"]
        """,
    "calc/__init__.py": """
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """,
    "conftest.py": """
        import pytest

        import calc


        @pytest.fixture
        def root_value():
            return calc.add(40, 2)


        def pytest_report_header(config):
            return "%(header)s"


        def pytest_collection_modifyitems(config, items):
            for item in items:
                if "slow_" in item.name:
                    item.add_marker(pytest.mark.slow)
        """,
    "tests/conftest.py": """
        import pytest

        SESSION_STATE = {"setups": 0, "teardowns": 0}


        @pytest.fixture(scope="session")
        def session_resource():
            SESSION_STATE["setups"] += 1
            yield SESSION_STATE
            SESSION_STATE["teardowns"] += 1


        @pytest.fixture(scope="module")
        def module_counter():
            return {"calls": 0}


        @pytest.fixture
        def yielded_list():
            items = [1, 2, 3]
            yield items
            items.clear()


        @pytest.fixture
        def broken_fixture():
            raise RuntimeError("fixture setup fails")
        """,
    "tests/test_basic.py": """
        import pytest

        import calc


        def test_add():
            assert calc.add(1, 2) == 3


        def test_mul():
            assert calc.mul(3, 4) == 12


        def test_string():
            assert "zeus".upper() == "ZEUS"


        def test_root_fixture(root_value):
            assert root_value == 42


        def test_slow_marked(request):
            assert request.node.get_closest_marker("slow") is not None


        def test_fail_simple():
            value = calc.add(1, 1)
            assert value == 3


        def test_fail_introspection():
            assert [1, 2, 3] == [1, 2, 4]


        def test_fail_dict():
            assert {"a": 1, "b": 2} == {"a": 1, "b": 3}


        def test_raises():
            with pytest.raises(ZeroDivisionError):
                1 / 0


        def test_warns():
            import warnings

            warnings.warn("fixture-project warning", UserWarning)
            assert True
        """,
    "tests/test_params.py": """
        import pytest

        import calc


        @pytest.mark.parametrize("a, b, expected", [(i, i + 1, 2 * i + 1) for i in range(20)])
        def test_add_many(a, b, expected):
            assert calc.add(a, b) == expected


        @pytest.mark.parametrize("n", [1, 2, 3, 4])
        def test_param_fail_odd(n):
            assert n % 2 == 0 or n == 3


        @pytest.mark.parametrize("x", ["a", "b"])
        @pytest.mark.parametrize("y", [1, 2])
        def test_product(x, y):
            assert (x * y).startswith(x)


        @pytest.fixture(params=["one", "two"])
        def named(request):
            return request.param


        def test_param_fixture(named):
            assert named in ("one", "two")
        """,
    "tests/test_skips.py": """
        import sys

        import pytest


        @pytest.mark.skip(reason="skipped on purpose")
        def test_skip_marker():
            raise AssertionError("never runs")


        @pytest.mark.skipif(sys.platform != "nonexistent-os", reason="not that OS")
        def test_skipif_true():
            raise AssertionError("never runs")


        @pytest.mark.skipif(sys.version_info < (3, 0), reason="python 2")
        def test_skipif_false():
            assert True


        def test_skip_imperative():
            pytest.skip("decided at run time")


        @pytest.mark.parametrize("n", [1, 2])
        @pytest.mark.skip(reason="skipped parametrized")
        def test_skip_param(n):
            pass


        @pytest.mark.xfail(reason="known bug")
        def test_xfail():
            assert 1 == 2


        @pytest.mark.xfail(reason="raises", raises=ZeroDivisionError)
        def test_xfail_raises():
            1 / 0


        @pytest.mark.xfail(reason="not really broken")
        def test_xpass():
            assert True
        """,
    "tests/test_fixtures.py": """
        def test_session_one(session_resource):
            assert session_resource["setups"] == 1


        def test_session_two(session_resource):
            assert session_resource["setups"] == 1
            assert session_resource["teardowns"] == 0


        def test_module_first(module_counter):
            module_counter["calls"] += 1
            assert module_counter["calls"] == 1


        def test_module_second(module_counter):
            module_counter["calls"] += 1
            assert module_counter["calls"] == 2


        def test_yield_fixture(yielded_list):
            assert yielded_list == [1, 2, 3]


        def test_yield_fixture_again(yielded_list):
            yielded_list.append(4)
            assert len(yielded_list) == 4


        def test_setup_error(broken_fixture):
            pass


        def test_request_fixture(request):
            assert request.node.name == "test_request_fixture"
        """,
    "tests/test_capture.py": """
        import sys


        def test_print_pass():
            print("%(pass_mark)s")
            print("%(pass_mark)s on stderr", file=sys.stderr)


        def test_print_fail():
            print("%(fail_mark)s")
            assert False, "this one fails"


        def test_capsys(capsys):
            print("inside capsys")
            assert capsys.readouterr().out == "inside capsys\\n"
        """,
    "tests/test_tmp.py": """
        def test_tmp_path(tmp_path):
            target = tmp_path / "hello.txt"
            target.write_text("hi")
            assert target.read_text() == "hi"
            assert tmp_path.is_dir()


        def test_monkeypatch(monkeypatch):
            monkeypatch.setenv("FIXTURE_PROJECT_VAR", "1")
            import os

            assert os.environ["FIXTURE_PROJECT_VAR"] == "1"
        """,
}


def write_project(root: Path) -> Path:
    """Write the fixture project into ``root`` (created); returns ``root``."""
    marks = {"header": HEADER_MARK, "pass_mark": PASS_MARK, "fail_mark": FAIL_MARK}
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) % marks if "%(" in text else textwrap.dedent(text))
    return root
