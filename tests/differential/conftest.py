"""The differential suite's project: one zero-config Python project and one real master per test
module (``zeus_project``), leak-checked when the module ends.

A module adds files to the project with a module-level ``PROJECT_FILES = {"name": "text"}``
(bytes values are written as they are). Every module gets :data:`BASE_FILES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.master import master_for
from tests.harness.project import PyProject, python_project

#: A zero-config project: pyproject.toml and nothing zeus-specific (the built-in Python plan).
BASE_FILES: dict[str, str | bytes] = {
    "pyproject.toml": '[project]\nname = "demo"\nversion = "0.1"\n',
}
#: Inherited variables that change how python runs (the machine running the tests may set
#: PYTHONUNBUFFERED=1): unset for the module's master and both sides, so that "without -u" means
#: what it says. A test sets one explicitly (``VAR=1 $PY ...``) to compare it.
UNSET = ("PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONWARNINGS", "PYTHONFAULTHANDLER",
         "PYTHONDEVMODE", "PYTHONINSPECT", "PYTHONVERBOSE", "PYTHONUTF8", "PYTHONSAFEPATH",
         "PYTHONMALLOC", "PYTHONNOUSERSITE", "PYTHONOPTIMIZE")
#: pytest's installed plugins are not needed in test_environment: a faster boot.
BASE_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.fixture(scope="module")
def zeus_project(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyProject]:
    """The module's project with a running master (boot and app ready, so ``zeus run`` is)."""
    files = {**BASE_FILES, **getattr(request.module, "PROJECT_FILES", {})}
    folder = tmp_path_factory.mktemp("diff") / "proj"
    texts = {name: body for name, body in files.items() if isinstance(body, str)}
    with pytest.MonkeyPatch.context() as patch, python_project(folder, texts, BASE_ENV) as project:
        for name in UNSET:
            patch.delenv(name, raising=False)
        for name, body in files.items():
            if isinstance(body, bytes):
                path = Path(project.root, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
        with master_for(project, "boot", "app"):
            yield project
