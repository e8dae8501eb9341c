"""`zeus init` in a plain package, a pytest project and a Django project: the files it writes
(`create`, then `exists` and nothing changed: the built-in plan's tree and a subclass of it), and
that the generated plan boots and its commands run."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.master import running_master
from tests.harness.project import VENV_BIN, Project

FILES = ("zeus.json", "zeus_plan.py")


def blank(project: Project) -> Path:
    """The project folder without the fixture's own plan."""
    for name in FILES:
        (project.root / name).unlink()
    return project.root


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def init(project: Project, kind: str) -> None:
    """`zeus init` writes both files; a second run finds them and changes nothing."""
    result = project.run("init")
    assert result.returncode == 0, result
    out = result.stdout.decode()
    assert out.splitlines()[0] == f"zeus: a {kind} project in {project.root}", out
    for name in FILES:
        assert re.search(rf"^\s+create\s+{re.escape(name)}$", out, re.MULTILINE), out
        assert (project.root / name).is_file()
    before = {name: ((project.root / name).read_bytes(), (project.root / name).stat().st_mtime_ns)
              for name in FILES}
    again = project.run("init")
    assert again.returncode == 0, again
    out = again.stdout.decode()
    for name in FILES:
        assert re.search(rf"^\s+exists\s+{re.escape(name)}$", out, re.MULTILINE), out
    assert "create" not in out
    after = {name: ((project.root / name).read_bytes(), (project.root / name).stat().st_mtime_ns)
             for name in FILES}
    assert after == before


def test_init_package_project(project: Project) -> None:
    root = blank(project)
    write(root, {
        "mypkg/__init__.py": "X = 42\n",
        "mypkg/util.py": "def double(n):\n    return 2 * n\n",
        "script.py": """
            import sys
            import mypkg
            print("script", sys.argv, mypkg.X)
            sys.exit(3)
            """,
    })
    init(project, "Python")
    assert "class Plan(PythonPlan):" in (root / "zeus_plan.py").read_text()
    with running_master(project, "boot", "app"):
        result = project.run("commands")
        assert result.returncode == 0
        assert "run" in result.stdout.decode() and "python" in result.stdout.decode()
        code = "import mypkg, sys; print(mypkg.X, 'mypkg' in sys.modules)"
        result = project.run("run", "-c", code)
        assert result.returncode == 0, result
        assert result.stdout == b"42 True\n"
        result = project.run("run", "script.py", "a", "b")
        assert result.returncode == 3, result
        assert result.stdout == b"script ['script.py', 'a', 'b'] 42\n"
        result = project.run("python", "-m", "mypkg.util")  # the alias, and -m
        assert result.returncode == 0, result


PYTEST_FILES = {
    "calc/__init__.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": """
        import pytest
        from calc import add

        def test_pass():
            assert add(1, 2) == 3

        def test_fail():
            assert add(1, 2) == 4

        @pytest.mark.skip(reason="not today")
        def test_skip():
            pass
        """,
}

SUMMARY = re.compile(rb"(\d+ failed, \d+ passed, \d+ skipped)")


def test_init_pytest_project(project: Project) -> None:
    root = blank(project)
    write(root, PYTEST_FILES)
    init(project, "Python")
    plain = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=root, capture_output=True, timeout=60, env=project.env())
    assert plain.returncode == 1, plain
    expected = SUMMARY.search(plain.stdout)
    assert expected and expected.group(1) == b"1 failed, 1 passed, 1 skipped", plain.stdout
    with running_master(project, "boot", "app", "test_environment"):
        result = project.run("pytest", "-q", "-p", "no:cacheprovider", timeout=60)
        assert result.returncode == plain.returncode, result
        found = SUMMARY.search(result.stdout)
        assert found and found.group(1) == expected.group(1), result.stdout
        assert b"assert 3 == 4" in result.stdout  # assertion rewriting still works
        result = project.run("test", "-q", "-p", "no:cacheprovider", "-k", "pass", timeout=60)
        assert result.returncode == 0, result


DJANGO_SKIP = "django is not installed in the test environment (pip install django)"


def test_init_django_project(project: Project) -> None:
    pytest.importorskip("django", reason=DJANGO_SKIP)
    admin = VENV_BIN / "django-admin"
    if not admin.exists():
        pytest.skip(f"no {admin}")
    root = blank(project)
    made = subprocess.run([str(admin), "startproject", "site1", "."], cwd=root,
                          capture_output=True, timeout=60, env=project.env())
    assert made.returncode == 0, made
    init(project, "Django")
    assert "class Plan(DjangoPlan):" in (root / "zeus_plan.py").read_text()
    with running_master(project, "boot", "django"):
        result = project.run("manage", "check", timeout=60)
        assert result.returncode == 0, result
        assert b"System check identified no issues" in result.stdout + result.stderr
        result = project.run("manage", "diffsettings", "--all", timeout=60)
        assert result.returncode == 0, result
        assert b"ROOT_URLCONF = 'site1.urls'" in result.stdout
